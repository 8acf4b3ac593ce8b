#!/bin/bash
# Issue 10, twenty-fourth session: the demo's own tuning (`prodfusion demo` tunes without click
# confidence, n0_grid=(None,)) against `prodfusion tune`'s default grid on the same model
# (titles, photos, Prod2Vec), on the held-out next clicks beside every single modality and the
# references. Writes docs/results/demo_default_tune/.
# Usage: RUNS=/tmp/base bash benchmarks/demo_default_tune.sh   (about 3 min on the 2-core VM)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
V=benchmarks/variants
mkdir -p "$RUNS"
rm -rf "$RUNS/demo_dt"
$PY -m prodfusion.cli demo --out "$RUNS/demo_dt" > "$RUNS/demo_dt.log" 2>&1
DD="--interactions $RUNS/demo_dt/data/sessions.csv --session-cols session_id --item-col product_id --time-col timestamp"
$PY -m prodfusion.cli tune "$RUNS/demo_dt/model" $DD --profile dflt > "$RUNS/demo_dt_tune.log" 2>&1
$PY -m prodfusion.cli evaluate retrieval "$RUNS/demo_dt/model" $DD --workers 1 \
  --variants $V/single_text.json $V/single_image.json $V/single_clicks.json $V/tuned3.json \
  $V/tuned3_profile_dflt.json baseline cooc tfidf popular cooc+tfidf \
  --note "model=$RUNS/demo_dt/model: prodfusion demo's model and weighting (tuned with n0_grid=(None,)), and profile dflt: prodfusion tune MODEL --profile dflt (the default --n0 grid)" \
  --out docs/results/demo_default_tune > "$RUNS/demo_dt_eval.log" 2>&1
grep -A3 "^tuned" "$RUNS/demo_dt_tune.log"
echo "done: docs/results/demo_default_tune"
