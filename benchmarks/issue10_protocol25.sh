#!/bin/bash
# Issue 10, twenty-fifth session: the leave-last-out protocol without its two leaks (a held-out
# session's prefix trained with its target; co-interaction pairs equal to held-out session
# transitions trained). Re-runs the default builds' reports under the new rule, and shows
# that `--protocol leave-last-out-v24` reproduces the twenty-fourth session's figures.
# Data: ../shared/data (PRODFUSION_SHARED_DATA). The session ran it with RUNS=/tmp/base, on the
# 2-core VM, after `STEPS=def DEF_DIR=hm_def25 DEF_OUT=hm_default_profiles_noise bash
# benchmarks/issue10_profiles.sh` (the twenty-fourth session's H&M build, kept in $RUNS).
# Usage: RUNS=/tmp/base bash benchmarks/issue10_protocol25.sh   (about 20 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
V=benchmarks/variants
STEPS=${STEPS:-v24,old,def,refs,digi,demo}
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
HMVARS="$V/single_clicks.json $V/single_cooc.json $V/tuned5.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json baseline cooc+tfidf"
if [[ $STEPS == *v24* ]]; then  # the old rule on the old build: the old report's figures
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_def25" $INTER --workers 1 --variants $HMVARS \
    --protocol leave-last-out-v24 --quiet --out "$RUNS/hm_def25_v24" > /dev/null
  $PY - "$RUNS/hm_def25_v24/results.json" docs/results/hm_default_profiles_noise/results.json <<'PYEOF'
import json, sys
a, b = (json.load(open(p))["retrieval"]["rows"] for p in sys.argv[1:])
key = lambda r: (r["source"], r["variant"], r["slice"])
old = {key(r): (r["n"], r["hit_rate"]["value"], r["ndcg"]["value"]) for r in b}
new = {key(r): (r["n"], r["hit_rate"]["value"], r["ndcg"]["value"]) for r in a}
diff = [k for k in old if old[k] != new.get(k)]
print(f"--protocol leave-last-out-v24 on hm_def25: {len(old) - len(diff)} of {len(old)} rows "
      "of hm_default_profiles_noise reproduced exactly" + (f"; differ: {diff[:5]}" if diff else ""))
PYEOF
fi
if [[ $STEPS == *old* ]]; then  # the old build (tuned under the old rule), evaluated under the new
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_def25" $INTER --workers 1 --variants $HMVARS \
    --note "model=$RUNS/hm_def25: the twenty-fourth session's H&M build (tuned under the old rule), evaluated under the twenty-fifth session's protocol" \
    --out docs/results/hm_default_profiles_noise_v25 > "$RUNS/hm_def25_v25_eval.log" 2>&1
fi
if [[ $STEPS == *def* ]]; then  # the README's command again: tuned and evaluated under the new rule
  RUNS=$RUNS STEPS=def DEF_DIR=hm_def27 DEF_OUT=hm_default_profiles_v25 bash benchmarks/issue10_profiles.sh
fi
if [[ $STEPS == *refs* ]]; then  # the new build beside every single modality and reference
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_def27" $INTER --workers 1 \
    --variants $V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json \
    $V/single_cooc.json $V/tuned5.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json \
    tfidf cooc popular cooc+tfidf \
    --note "model=$RUNS/hm_def27: the README's H&M build under the twenty-fifth session's protocol, beside every single modality and reference" \
    --out docs/results/hm_default_profiles_v25_refs > "$RUNS/hm_def27_refs_eval.log" 2>&1
fi
if [[ $STEPS == *digi* ]]; then
  STEPS=digi SUFFIX=_v25 bash benchmarks/issue10_defaults.sh
fi
if [[ $STEPS == *demo* ]]; then
  STEPS=demo SUFFIX=_v25 bash benchmarks/issue10_defaults.sh
fi
echo "done: docs/results/{hm_default_profiles_noise_v25,hm_default_profiles_v25,hm_default_profiles_v25_refs,diginetica_defaults_v25,demo_defaults_v25}"
