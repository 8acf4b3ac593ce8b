#!/bin/bash
# Issue 10, twenty-third session: the README's H&M build run again, what products without
# (or with few) training sessions get, and click confidence min:K. The commands behind
# docs/results/{hm_default_profiles_rerun2,hm_click_min_count,hm_p2v_min_count5} and
# docs/results/cold_queries_hm{,2,_min}.md (cold_queries_demo.md: `prodfusion demo --out DIR`,
# then `python benchmarks/cold_queries.py DIR/model --interactions DIR/data/sessions.csv
# --session-cols session_id --item-col product_id --time-col timestamp`).
# The first re-run (docs/results/hm_default_profiles_rerun) is `RUNS=$RUNS STEPS=def
# DEF_OUT=hm_default_profiles_rerun bash benchmarks/issue10_profiles.sh` (its folder is
# $RUNS/hm_def; it also builds $RUNS/hmc if missing), run first by STEPS=rerun.
# Data: ../shared/data (PRODFUSION_SHARED_DATA). The session ran it with RUNS=/tmp/base.
# Usage: RUNS=/tmp/base bash benchmarks/issue10_min_count.sh   (about an hour on the 2-core VM;
# STEPS=checks adds the validation-only checks quoted in docs/results/README.md, 25 min more;
# STEPS=checks24 the twenty-fourth session's, on $RUNS/hm_def24 of issue10_profiles.sh DEF_DIR=hm_def24, 10 min;
# STEPS=repro25 two builds with the model's Prod2Vec on one thread, their lists compared, 16 min)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
V=benchmarks/variants
STEPS=${STEPS:-rerun,rerun2,min,mc5,cold}
mkdir -p "$RUNS"
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
BUILD="--catalog $H/articles.csv --id-col article_id --title-col prod_name --category-col product_type_name --image-root $H/images --image-template {product_id}.jpg $INTER"
PROFVARS="$V/single_clicks.json $V/single_cooc.json $V/tuned5.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json baseline cooc+tfidf"
if [[ ,$STEPS, == *,rerun,* ]]; then
  RUNS=$RUNS STEPS=def DEF_OUT=hm_default_profiles_rerun bash benchmarks/issue10_profiles.sh
fi
if [[ $STEPS == *rerun2* ]]; then  # the README's build a second time, evaluated as hm_default_profiles
  rm -rf "$RUNS/hm_def2"
  $PY -m prodfusion.cli build $BUILD --out "$RUNS/hm_def2" > "$RUNS/hm_def2_build.log" 2>&1
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_def2" $INTER --workers 1 --variants $PROFVARS \
    --note "model=/tmp/base/hm_def2: the README's H&M build command unchanged, run a second time in the twenty-third session" \
    --out docs/results/hm_default_profiles_rerun2 > "$RUNS/hm_def2_eval.log" 2>&1
fi
if [[ $STEPS == *min* ]]; then  # click confidence min:K tuned, and set by hand on the pairs profile
  rm -rf "$RUNS/hm_q"; cp -r "$RUNS/hm_def2" "$RUNS/hm_q"
  $PY -m prodfusion.cli tune "$RUNS/hm_q" $INTER --validate-on pairs --objective ndcg@15 \
    --n0 none,2,10,min:2,min:5 --profile pairs_min > "$RUNS/hm_q_tune.log" 2>&1
  $PY - "$RUNS/hm_q" <<'PYEOF'
import json, sys
from pathlib import Path
path = Path(sys.argv[1]) / "manifest.json"  # profile pairs_mixmin: profile pairs with n0 min:5
man = json.loads(path.read_text())
prof = man["settings"]["profiles"]
mix = json.loads(json.dumps(prof["pairs"]))
mix["weighting"].update(n0=5.0, confidence="min")
prof["pairs_mixmin"] = mix
path.write_text(json.dumps(man, indent=1))
PYEOF
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_q" $INTER --workers 1 \
    --variants $V/single_clicks.json $V/single_text.json $V/tuned5_profile_pairs.json \
    $V/tuned5_profile_pairs_min.json $V/tuned5_profile_pairs_mixmin.json baseline cooc+tfidf \
    --note "model=/tmp/base/hm_q (twenty-third session): profile pairs (the README build tuning), pairs_min (prodfusion tune --validate-on pairs --n0 none,2,10,min:2,min:5 --profile pairs_min), pairs_mixmin (profile pairs with n0 min:5 set by hand)" \
    --out docs/results/hm_click_min_count > "$RUNS/hm_q_eval.log" 2>&1
fi
if [[ $STEPS == *mc5* ]]; then  # products seen fewer than five times without a click vector
  rm -rf "$RUNS/hm_mc5"
  $PY -m prodfusion.cli build $BUILD --p2v-min-count 5 --out "$RUNS/hm_mc5" > "$RUNS/hm_mc5_build.log" 2>&1
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_mc5" $INTER --workers 1 --variants $PROFVARS \
    --note "model=/tmp/base/hm_mc5: the README H&M build command with --p2v-min-count 5 (twenty-third session, an experiment)" \
    --out docs/results/hm_p2v_min_count5 > "$RUNS/hm_mc5_eval.log" 2>&1
fi
if [[ $STEPS == *cold* ]]; then
  for m in hm_def:cold_queries_hm hm_def2:cold_queries_hm2 hm_q:cold_queries_hm_min; do
    $PY benchmarks/cold_queries.py "$RUNS/${m%%:*}" $INTER --out "docs/results/${m##*:}.md" \
      > "$RUNS/${m##*:}.log" 2>&1
  done
fi
if [[ ,$STEPS, == *,checks,* ]]; then  # validation only (dry runs / profiles on copies)
  for opt in "--workers 1" "--workers 2" "--workers 1 --p2v-seed 1" "--workers 1 --p2v-seed 2"; do
    $PY -m prodfusion.cli tune "$RUNS/hm_def" $INTER --validate-on pairs --objective ndcg@15 \
      $opt --profile check --dry-run > "$RUNS/hm_def_check_${opt// /_}.log" 2>&1
  done
  D=$DATA/diginetica
  DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
  mkdir -p runs && $PY benchmarks/diginetica_catalogs.py viewed --data "$D"
  rm -rf "$RUNS/digi1"
  $PY -m prodfusion.cli build --catalog runs/digi_catalog.csv --text none --image none $DI --p2v-min-count 1 \
    --workers 1 --cooc --cache-dir none --fusion intermediate --tune off --out "$RUNS/digi1" > "$RUNS/digi1_build.log" 2>&1
  $PY -m prodfusion.cli tune "$RUNS/digi1" $DI --objective ndcg@15 --workers 1 --n0 none,2,10 --profile def > "$RUNS/digi_tune_def.log" 2>&1
  $PY -m prodfusion.cli tune "$RUNS/digi1" $DI --objective ndcg@15 --workers 1 --n0 none,2,10,min:2,min:5 --profile mn > "$RUNS/digi_tune_mn.log" 2>&1
  rm -rf "$RUNS/demo"; $PY -m prodfusion.cli demo --out "$RUNS/demo" > "$RUNS/demo.log" 2>&1
  $PY -m prodfusion.cli tune "$RUNS/demo/model" --interactions "$RUNS/demo/data/sessions.csv" --session-cols session_id \
    --item-col product_id --time-col timestamp --n0 none,2,10,min:2,min:5 --dry-run > "$RUNS/demo_tune_min.log" 2>&1
fi
if [[ $STEPS == *checks24* ]]; then  # twenty-fourth session: the default build's sessions profile, one thread, with and without min:K (dry runs)
  # under the slice rule of the time (--slice-noise 0: any shortfall in a 20+ case slice vetoes)
  for g in none,2,10 none,2,10,min:2,min:5; do
    $PY -m prodfusion.cli tune "$RUNS/hm_def24" $INTER --validate-on sessions --objective ndcg@15 \
      --workers 1 --slice-noise 0 --n0 $g --profile chk --dry-run > "$RUNS/hm_def24_sessions_${g//[,:]/_}.log" 2>&1
  done
  # the pairs profile with one Prod2Vec thread: the default grid, and the slices of 40+ cases only
  $PY -m prodfusion.cli tune "$RUNS/hm_def24" $INTER --validate-on pairs --objective ndcg@15 \
    --workers 1 --slice-noise 0 --profile chk --dry-run > "$RUNS/hm_def24_pairs_w1.log" 2>&1
  $PY -m prodfusion.cli tune "$RUNS/hm_def24" $INTER --validate-on pairs --objective ndcg@15 \
    --workers 1 --slice-noise 0 --min-slice-cases 40 --profile chk --dry-run > "$RUNS/hm_def24_pairs_w1_ms40.log" 2>&1
  # the same under today's rule (--slice-noise 1, the default): min:5 is kept
  $PY -m prodfusion.cli tune "$RUNS/hm_def24" $INTER --validate-on pairs --objective ndcg@15 \
    --workers 1 --profile chk --dry-run > "$RUNS/hm_def24_pairs_noise.log" 2>&1
fi
if [[ $STEPS == *repro24* ]]; then  # twenty-fourth session: the README's build again (after
  # `STEPS=def DEF_DIR=hm_def25 DEF_OUT=hm_default_profiles_noise bash benchmarks/issue10_profiles.sh`):
  # one-thread tuning, so both builds should tune the same weights and profiles
  rm -rf "$RUNS/hm_def25b"
  $PY -m prodfusion.cli build $BUILD --out "$RUNS/hm_def25b" > "$RUNS/hm_def25b_build.log" 2>&1
  diff <(grep -E "^  (tuned:|profile ')" "$RUNS/hm_def25_build.log" | sed -E 's/, [0-9]+s\b//') \
       <(grep -E "^  (tuned:|profile ')" "$RUNS/hm_def25b_build.log" | sed -E 's/, [0-9]+s\b//') \
    && echo "the two builds tuned the same weights and profiles"
  # and `prodfusion tune` on the first build's folder tunes the build's pairs profile again
  $PY -m prodfusion.cli tune "$RUNS/hm_def25" $INTER --validate-on pairs --objective ndcg@15 \
    --profile chk --dry-run > "$RUNS/hm_def25_pairs_refactor.log" 2>&1
  grep -h "^tuned" "$RUNS/hm_def25_pairs_refactor.log"
fi
if [[ $STEPS == *repro25* ]]; then  # twenty-fifth session: the model's own Prod2Vec on one
  # thread too (up to 2,000,000 clicks), so two builds should serve the same lists
  for d in hm_def26 hm_def26b; do
    rm -rf "$RUNS/$d"
    $PY -m prodfusion.cli build $BUILD --out "$RUNS/$d" > "$RUNS/${d}_build.log" 2>&1
    $PY -m prodfusion.cli export "$RUNS/$d" --out "$RUNS/${d}_lists.parquet" > /dev/null 2>&1
    $PY -m prodfusion.cli export "$RUNS/$d" --profile pairs --out "$RUNS/${d}_pairs.parquet" \
      > /dev/null 2>&1
  done
  diff <(grep -E "^  (tuned:|profile ')" "$RUNS/hm_def26_build.log" | sed -E 's/, [0-9]+s\b//') \
       <(grep -E "^  (tuned:|profile ')" "$RUNS/hm_def26b_build.log" | sed -E 's/, [0-9]+s\b//') \
    && echo "the two builds tuned the same weights and profiles"
  $PY -c "import sys, numpy as np; from prodfusion import Recommender
a, b = (Recommender.load(f'{sys.argv[1]}/{d}') for d in ('hm_def26', 'hm_def26b'))
print('click vectors identical:', np.array_equal(a.embeddings_['clicks'].vectors,
                                                 b.embeddings_['clicks'].vectors))" "$RUNS"
  for f in lists pairs; do
    $PY benchmarks/compare_lists.py "$RUNS/hm_def26_$f.parquet" "$RUNS/hm_def26b_$f.parquet"
  done
fi
echo "done: docs/results/{hm_default_profiles_rerun2,hm_click_min_count,hm_p2v_min_count5,cold_queries_hm*}; logs in $RUNS"
