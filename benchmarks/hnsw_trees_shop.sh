#!/bin/bash
# Thirty-first session: a learned weighting (boosted trees) served through HNSW on a synthetic
# shop large enough for it (default 100,000 products; `prodfusion.data.make_synthetic`, one
# session per product, similar_rate 0.5, titles only), built with the defaults (the trees are
# adopted where they win out of fold). Then:
#   * the served lists against the exact search (benchmarks/exact_vs_index.py), with this
#     checkout and, when OLD names a checkout of earlier code (e.g. a worktree at 4f82ff5:
#     the plain inner-product HNSW graph), with that one;
#   * query p50 / p99 of the trees against the tuned weights, with and without explain
#     (benchmarks/learned_query_cost.py --out docs/benchmarks/learned_query_cost_100k.md).
# Usage: RUNS=/tmp/base [N=100000] [OLD=/tmp/wt30] bash benchmarks/hnsw_trees_shop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-$(command -v python)}
N=${N:-100000}
RUNS=$(realpath -m "${RUNS:-runs}")
REPO=$PWD
D=$RUNS/shop_$N
M=$RUNS/shop_${N}_model
if [ ! -d "$M" ]; then
  $PY -c "from prodfusion.data import make_synthetic; make_synthetic('$D', n_products=$N, n_sessions=$N, seed=0, similar_rate=0.5, missing_image_rate=0.999)"
  /usr/bin/time -f "build: %e s, %M KiB" $PY -m prodfusion.cli build --catalog "$D/catalog.csv" \
    --interactions "$D/sessions.csv" --session-cols session_id --item-col product_id \
    --time-col timestamp --workers 1 --image none --cache-dir none --out "$M" \
    > "$RUNS/shop_${N}_build.log" 2>&1
fi
grep -E "^  trees|^trees|weights:" "$RUNS/shop_${N}_build.log" | head -3 || true
echo "served vs exact, this checkout:"
$PY benchmarks/exact_vs_index.py "$M" 2>&1 | grep -v "^index:" | head -1
if [ -n "${OLD:-}" ]; then
  echo "served vs exact, $OLD:"
  (cd /tmp && PYTHONPATH="$OLD" $PY "$REPO/benchmarks/exact_vs_index.py" "$M" 2>&1 \
    | grep -v "^index:" | head -1)
fi
$PY benchmarks/learned_query_cost.py "$M" --profiles weights --queries 300 \
  --out docs/benchmarks/learned_query_cost_${N}.md
