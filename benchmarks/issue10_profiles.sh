#!/bin/bash
# Issue 10, fifteenth session: ONE H&M model folder serving both kinds of interaction, each
# by its own weighting profile (`prodfusion tune --profile`): "baskets" tuned on the
# customer-day baskets (--validate-on sessions), "pairs" on the co-purchase pairs
# (--validate-on pairs), both on the same `--tune off` build (runs/hmc of
# benchmarks/issue10_fusion.sh, built here if missing). Then one `evaluate retrieval` scores
# both profiles beside every single modality, the paper's fusion and the references, on both
# sources. Writes docs/results/hm_profiles/. STEPS=tp (not in the default): the README's H&M
# build command with --tune-profiles (runs/hm_tp, under /usr/bin/time -v: wall time and peak
# RSS in runs/hm_tp_build.log) and its evaluation, docs/results/hm_tune_profiles/.
# Data: ../shared/data (PRODFUSION_SHARED_DATA).
# Usage: bash benchmarks/issue10_profiles.sh   (about 15 min on the 2-core VM; STEPS=tp 15 more;
# STEPS=def: the README's build as it is, with its default profiles, about 10 min; DEF_OUT=NAME
# writes its report to docs/results/NAME instead of hm_default_profiles, DEF_DIR=NAME builds
# into $RUNS/NAME instead of $RUNS/hm_def)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
V=benchmarks/variants
mkdir -p "$RUNS"
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
if [ ! -d "$RUNS/hmc" ]; then
  $PY -m prodfusion.cli build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
    --category-col product_type_name --group-col product_code --image-root $H/images \
    --image-template '{product_id}.jpg' $INTER --lexical tfidf --cooc --fusion intermediate \
    --workers 1 --tune off --out "$RUNS/hmc" > "$RUNS/hmc_build.log" 2>&1
fi
STEPS=${STEPS:-tune,eval}   # STEPS=eval re-scores the profiles already tuned
if [[ $STEPS == *tune* ]]; then
  rm -rf "$RUNS/hmc_prof"; cp -r "$RUNS/hmc" "$RUNS/hmc_prof"
  $PY -m prodfusion.cli tune "$RUNS/hmc_prof" $INTER --validate-on sessions --objective ndcg@15 --workers 1 --profile baskets > "$RUNS/hmc_prof_baskets.log" 2>&1
  $PY -m prodfusion.cli tune "$RUNS/hmc_prof" $INTER --validate-on pairs --objective ndcg@15 --workers 1 --profile pairs > "$RUNS/hmc_prof_pairs.log" 2>&1
fi
VARS="$V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json $V/paper_int3.json"
REFS="baseline cooc tfidf popular cooc+tfidf"
if [[ $STEPS == *tp* ]]; then
  rm -rf "$RUNS/hm_tp"
  /usr/bin/time -v $PY -m prodfusion.cli build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
    --category-col product_type_name --image-root $H/images --image-template '{product_id}.jpg' \
    $INTER --tune-profiles --out "$RUNS/hm_tp" > "$RUNS/hm_tp_build.log" 2>&1
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hm_tp" $INTER --workers 1 \
    --variants $VARS $V/tuned5.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json $REFS \
    --note "model=runs/hm_tp: the README's H&M build command with --tune-profiles (the model's own weighting tuned on both sources, profiles 'sessions' and 'pairs')" \
    --out docs/results/hm_tune_profiles > "$RUNS/hm_tp_eval.log" 2>&1
fi
if [[ $STEPS == *def* ]]; then  # sixteenth session: the README's command as it is (profiles by default)
  DEF_DIR=${DEF_DIR:-hm_def}
  rm -rf "$RUNS/$DEF_DIR"
  /usr/bin/time -v $PY -m prodfusion.cli build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
    --category-col product_type_name --image-root $H/images --image-template '{product_id}.jpg' \
    $INTER --out "$RUNS/$DEF_DIR" > "$RUNS/${DEF_DIR}_build.log" 2>&1
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/$DEF_DIR" $INTER --workers 1 \
    --variants $V/single_clicks.json $V/single_cooc.json $V/tuned5.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json baseline cooc+tfidf \
    --note "model=$RUNS/$DEF_DIR: the README's H&M build command unchanged (--tune-profiles auto: profiles 'sessions' and 'pairs' where the sources conflict)" \
    --out "docs/results/${DEF_OUT:-hm_default_profiles}" > "$RUNS/${DEF_DIR}_eval.log" 2>&1
fi
[[ $STEPS == *eval* ]] || exit 0
$PY -m prodfusion.cli evaluate retrieval "$RUNS/hmc_prof" $INTER --workers 1 \
  --variants $VARS $V/tuned5_profile_baskets.json $V/tuned5_profile_pairs.json $REFS \
  --note "model=runs/hmc_prof: one --tune off build, two weighting profiles (prodfusion tune --profile baskets --validate-on sessions; --profile pairs --validate-on pairs)" \
  --out docs/results/hm_profiles > "$RUNS/hmc_prof_eval.log" 2>&1
