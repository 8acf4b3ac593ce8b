#!/bin/bash
# Thirty-second session: the scale benchmark's 100,000-product synthetic catalog built and
# queried through IVF-PQ (`benchmarks/scale.py build --index ivfpq` / `query`: early,
# intermediate and late fusion, recall@15 against exact search, p50 / p99), with this
# checkout and, when OLD names a checkout of earlier code (e.g. a worktree at 981ed26: plain
# inner-product codes only), with that one — one after the other, the same data and machine.
# JSON results go to docs/benchmarks/scale/{build,query}-100k-ivfpq-{new,old}.json.
# NEW_TAG / OLD_TAG (default new / old) name the JSON files (thirty-fourth session: pq64 / pq32).
# Usage: [WORK=/tmp/prodfusion-scale] [N=100000] [OLD=/tmp/wt31] [NEW_TAG=new OLD_TAG=old]
#        bash benchmarks/ivfpq_scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PY=${PY:-$PWD/.venv/bin/python}  # not realpath: that leaves the venv
WORK=$(realpath -m "${WORK:-/tmp/prodfusion-scale}")
N=${N:-100000}
REPO=$PWD
OUT=$REPO/docs/benchmarks/scale
DATA=$WORK/ivfpq_$N
[ -f "$DATA/meta.json" ] || $PY benchmarks/scale.py gen --n "$N" --out "$DATA" | tail -n 2
run() {  # run TAG [PYTHONPATH]
  local tag=$1 m=$DATA/model-ivfpq-$1
  rm -rf "$m"
  (cd /tmp && PYTHONPATH=${2:-} $PY "$REPO/benchmarks/scale.py" build --data "$DATA" \
     --index ivfpq --model "$m" --json "$OUT/build-100k-ivfpq-$tag.json" 2>&1 \
     | grep -v '^WARNING clustering' | tail -n 2)
  (cd /tmp && PYTHONPATH=${2:-} $PY "$REPO/benchmarks/scale.py" query --model "$m" \
     --json "$OUT/query-100k-ivfpq-$tag.json" 2>&1 | grep -v '^WARNING clustering' | tail -n 2)
}
run "${NEW_TAG:-new}"
[ -n "${OLD:-}" ] && run "${OLD_TAG:-old}" "$OLD"
echo done
