#!/usr/bin/env bash
# The default build on a synthetic shop shaped unlike the demo's, against the generator's own
# probabilities (benchmarks/demo_oracle.py --shop): does `prodfusion build` with no option
# reach what the shop's next clicks allow when their make-up changes? (forty-third session)
#
#   RUNS=/tmp/base bash benchmarks/oracle_shop.sh
#
# The shop: 3,000 products in 10 categories, 8,000 sessions, 80 % of the clicks to a close
# variant of the previous product (the demo: 50 %), 50 % of the rest in the session's
# category (the demo: 85 %), seed 7. About 12 minutes on the 2-core VM.
set -euo pipefail
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
OUT=${OUT:-docs/results/synthetic_oracle_s7.md}
S=$RUNS/oracle_s7
rm -rf "$S" && mkdir -p "$S"
$PY -c "from prodfusion.data.synthetic import make_synthetic
make_synthetic('$S/data', n_products=3000, n_categories=10, n_sessions=8000, similar_rate=0.8,
               in_category_rate=0.5, seed=7, truth=True)"
$PY -m prodfusion.cli build --catalog "$S/data/catalog.csv" --image-col image \
  --image-root "$S/data" --category-col category --interactions "$S/data/sessions.csv" \
  --session-cols session_id --item-col product_id --time-col timestamp --workers 1 \
  --out "$S/model" > "$S/build.log" 2>&1
$PY benchmarks/demo_oracle.py --model "$S/model" --shop "$S/data" --similar-rate 0.8 \
  --in-category-rate 0.5 --out "$OUT"
