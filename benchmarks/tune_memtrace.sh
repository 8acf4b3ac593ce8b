#!/bin/bash
# Peak RSS of `prodfusion tune --dry-run` on a shop of tune_memtrace_shop.py, sampled every
# second beside the tuner's timestamped log lines (where the peak is). Fourteenth session's
# before/after table (docs/results/README.md): run once with CODE_DIR a `git worktree` of the
# previous commit, once without (this checkout). Writes SHOPDIR/{tune,rss}_TAG.*; prints the peak.
# usage: bash benchmarks/tune_memtrace.sh SHOPDIR TAG [CODE_DIR]
cd ${3:-$(cd "$(dirname "$0")/.." && pwd)}
export OMP_NUM_THREADS=1
INTER=$(cat $1/inter.txt)
$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python -m prodfusion.cli tune $1/model $INTER --dry-run > $1/tune_$2.out 2> >(while IFS= read -r l; do echo "$(date +%s) $l"; done > $1/tune_$2.err) &
PID=$!
sleep 1
CPID=$(pgrep -P $PID -f "prodfusion.cli tune" | head -1); [ -z "$CPID" ] && CPID=$PID
: > $1/rss_$2.txt
while kill -0 $PID 2>/dev/null; do
  r=$(grep VmRSS /proc/$PID/status 2>/dev/null | awk '{print $2}')
  [ -n "$r" ] && echo "$(date +%s) $r" >> $1/rss_$2.txt
  sleep 1
done
wait $PID
sort -k2 -n $1/rss_$2.txt | tail -1
