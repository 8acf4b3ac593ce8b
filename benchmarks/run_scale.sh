#!/usr/bin/env bash
# Runs the scale benchmarks of docs/benchmarks/scale.md, one process per step.
#   benchmarks/run_scale.sh small     # 10K and 100K catalogs, literal N×N, encoders, Prod2Vec
#   benchmarks/run_scale.sh 1m        # the 1M catalog, float32 then float16 models (~50 min, ~12 GB)
#   TAG=-x F16=0 benchmarks/run_scale.sh 1m   # float32 only, JSON named build-1m-hnsw-x.json etc.
# Work files go to $WORK (default /tmp/prodfusion-scale); JSON results to docs/benchmarks/scale/.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/prodfusion-scale}
OUT=docs/benchmarks/scale
mkdir -p "$OUT" "$WORK"
# One BLAS/OpenMP thread per job: FAISS 1.15's HNSW add is a deterministic, barrier-synchronised
# OpenMP loop that gained little from a second thread here, and on a shared machine two OpenMP
# threads made k-means and HNSW construction 3-6x slower (threads wait at barriers for a
# descheduled sibling). Both cores are used by building JOBS (default 2) indexes at once.
THREADS=${THREADS:-1}
JOBS=${JOBS:-2}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export OMP_WAIT_POLICY=PASSIVE
PY=${PY:-.venv/bin/python}
run() { echo "== $(date +%T) $*"; "$PY" benchmarks/scale.py "$@" 2>&1 | grep -v '^WARNING clustering' | tail -n 3; }

if [[ "${1:-small}" == "small" ]]; then
  run gen --n 10000 --out "$WORK/10k"
  run build --data "$WORK/10k" --index exact --model "$WORK/10k/model-exact" --json "$OUT/build-10k-exact.json"
  run query --model "$WORK/10k/model-exact" --json "$OUT/query-10k-exact.json"
  run build --data "$WORK/10k" --index hnsw --model "$WORK/10k/model-hnsw" --json "$OUT/build-10k-hnsw.json"
  run query --model "$WORK/10k/model-hnsw" --json "$OUT/query-10k-hnsw.json"
  run gen --n 100000 --out "$WORK/100k"
  run build --data "$WORK/100k" --index auto --model "$WORK/100k/model-hnsw" --json "$OUT/build-100k-hnsw.json"
  run query --model "$WORK/100k/model-hnsw" --json "$OUT/query-100k-hnsw.json"
  run build --data "$WORK/100k" --index ivfpq --model "$WORK/100k/model-ivfpq" --json "$OUT/build-100k-ivfpq.json"
  run query --model "$WORK/100k/model-ivfpq" --json "$OUT/query-100k-ivfpq.json"
  run literal --sizes 2500 5000 10000 15000 --workdir "$WORK" --json "$OUT/literal.json"
  run encoders --titles 2000 --images 300 --repeats 2 --json "$OUT/encoders.json"
  run prod2vec --epochs 1 --workers 2 --iterable --workdir "$WORK/prod2vec" --json "$OUT/prod2vec.json"
  run prod2vec-repeat --lines 300000 --repeats 8 --workdir "$WORK/prod2vec" --json "$OUT/prod2vec-repeat.json"
else
  [[ -f "$WORK/1m/meta.json" ]] || run gen --n 1000000 --out "$WORK/1m"
  run build --data "$WORK/1m" --index auto --jobs "$JOBS" --model "$WORK/1m/model" --json "$OUT/build-1m-hnsw${TAG:-}.json"
  run query --model "$WORK/1m/model" --queries 300 --recall 200 --json "$OUT/query-1m-hnsw${TAG:-}.json"
  [[ "${F16:-1}" == "0" ]] && { echo "== $(date +%T) done"; exit 0; }
  run build --data "$WORK/1m" --index auto --jobs "$JOBS" --vector-dtype float16 --model "$WORK/1m/model-f16" --json "$OUT/build-1m-hnsw-f16${TAG:-}.json"
  run query --model "$WORK/1m/model-f16" --queries 300 --recall 200 --json "$OUT/query-1m-hnsw-f16${TAG:-}.json"
fi
echo "== $(date +%T) done"
