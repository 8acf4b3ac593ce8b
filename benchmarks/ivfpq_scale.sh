#!/bin/bash
# Thirty-second session: the scale benchmark's 100,000-product synthetic catalog built and
# queried through IVF-PQ (`benchmarks/scale.py build --index ivfpq` / `query`: early,
# intermediate and late fusion, recall@15 against exact search, p50 / p99), with this
# checkout and, when OLD names a checkout of earlier code (e.g. a worktree at 981ed26: plain
# inner-product codes only), with that one — one after the other, the same data and machine.
# JSON results go to docs/benchmarks/scale/{build,query}-100k-ivfpq-{new,old}.json.
# NEW_TAG / OLD_TAG (default new / old) name the JSON files (thirty-fourth session: pq64 / pq32);
# NEW names a checkout for the "new" run too (default: this one); DATA an existing catalog
# of `scale.py gen` (e.g. the 1M one of run_scale.sh), FUSIONS the fusions built and queried,
# JOBS the indexes built at once. JSON names carry the size (100k, 1m).
# Usage: [WORK=/tmp/prodfusion-scale] [N=100000] [DATA=DIR] [OLD=/tmp/wt31] [NEW=DIR]
#        [NEW_TAG=new OLD_TAG=old] [FUSIONS="early intermediate late"] [JOBS=1]
#        bash benchmarks/ivfpq_scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PY=${PY:-$PWD/.venv/bin/python}  # not realpath: that leaves the venv
WORK=$(realpath -m "${WORK:-/tmp/prodfusion-scale}")
N=${N:-100000}
REPO=$PWD
OUT=$REPO/docs/benchmarks/scale
DATA=$(realpath -m "${DATA:-$WORK/ivfpq_$N}")
SIZE=$([ "$N" -ge 1000000 ] && echo "$((N / 1000000))m" || echo "$((N / 1000))k")
FUSIONS=${FUSIONS:-early intermediate late}
[ -f "$DATA/meta.json" ] || $PY benchmarks/scale.py gen --n "$N" --out "$DATA" | tail -n 2
run() {  # run TAG [PYTHONPATH]
  local tag=$1 m=$DATA/model-ivfpq-$1
  rm -rf "$m"
  # shellcheck disable=SC2086  # FUSIONS is a list of words
  (cd /tmp && PYTHONPATH=${2:-} $PY "$REPO/benchmarks/scale.py" build --data "$DATA" \
     --index ivfpq --jobs "${JOBS:-1}" --fusions $FUSIONS --model "$m" \
     --json "$OUT/build-$SIZE-ivfpq-$tag.json" 2>&1 | grep -v '^WARNING clustering' | tail -n 2)
  # shellcheck disable=SC2086
  (cd /tmp && PYTHONPATH=${2:-} $PY "$REPO/benchmarks/scale.py" query --model "$m" \
     --fusions $FUSIONS --json "$OUT/query-$SIZE-ivfpq-$tag.json" 2>&1 \
     | grep -v '^WARNING clustering' | tail -n 2)
}
run "${NEW_TAG:-new}" "${NEW:-}"
[ -n "${OLD:-}" ] && run "${OLD_TAG:-old}" "$OLD"
echo done
