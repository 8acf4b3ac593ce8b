#!/bin/bash
# Issue 10, twentieth session: `tune --shrink` (the tuned weights moved towards equal weights
# as far as one standard error of validation allows) on the real data, beside the same tuning
# without it, on the current code:
#  - H&M: one `--tune off` build (runs/hmc, as benchmarks/issue10_profiles.sh builds it),
#    four weighting profiles — baskets and pairs (as issue10_profiles.sh tunes them) and
#    baskets_shrink, pairs_shrink (the same with --shrink) — scored together by one
#    `evaluate retrieval` beside clicks, cooc and cooc+tfidf: docs/results/hm_shrink/;
#  - DIGINETICA's viewed items (clicks + cooc, as issue10_defaults.sh builds runs/digid),
#    tuned with and without --shrink into two profiles, scored the same way:
#    docs/results/diginetica_shrink/.
# Data: ../shared/data (PRODFUSION_SHARED_DATA).
# Usage: bash benchmarks/issue10_shrink.sh   (about 45 min on the 2-core VM, photos not cached;
# STEPS=digi or STEPS=hm for one of them)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
D=$DATA/diginetica
V=benchmarks/variants
mkdir -p "$RUNS"
STEPS=${STEPS:-digi,hm}
prof() {  # a variant of profile $1 over modalities $2 (JSON list), named $3
  echo "{\"fusion\": \"intermediate\", \"modalities\": $2, \"profile\": \"$1\", \"name\": \"$3\"}" \
    > "$RUNS/variant_$1.json"
  echo "$RUNS/variant_$1.json"
}
if [[ $STEPS == *digi* ]]; then
  DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
  $PY benchmarks/diginetica_catalogs.py viewed --data "$D"
  rm -rf "$RUNS/digis"
  $PY -m prodfusion.cli build --catalog runs/digi_catalog.csv --text none --image none $DI \
    --workers 1 --cache-dir none --tune off --out "$RUNS/digis" > "$RUNS/digis_build.log" 2>&1
  for s in plain shrink; do
    extra=""; [[ $s == shrink ]] && extra="--shrink"
    $PY -m prodfusion.cli tune "$RUNS/digis" $DI --workers 1 --profile "views_$s" $extra \
      > "$RUNS/digis_tune_$s.log" 2>&1
  done
  M='["clicks", "cooc"]'
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/digis" $DI --workers 1 \
    --variants $V/single_clicks.json $V/single_cooc.json \
    "$(prof views_plain "$M" 'tuned (clicks+cooc)')" \
    "$(prof views_shrink "$M" 'tuned --shrink (clicks+cooc)')" cooc popular \
    --note "model=runs/digis: --tune off build of DIGINETICA's viewed items (clicks + cooc), profiles views_plain (prodfusion tune) and views_shrink (prodfusion tune --shrink)" \
    --out docs/results/diginetica_shrink > "$RUNS/digis_eval.log" 2>&1
fi
if [[ $STEPS == *hm* ]]; then
  INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
  if [ ! -d "$RUNS/hmc" ]; then
    $PY -m prodfusion.cli build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
      --category-col product_type_name --group-col product_code --image-root $H/images \
      --image-template '{product_id}.jpg' $INTER --lexical tfidf --cooc --fusion intermediate \
      --workers 1 --tune off --out "$RUNS/hmc" > "$RUNS/hmc_build.log" 2>&1
  fi
  rm -rf "$RUNS/hmc_shr"; cp -r "$RUNS/hmc" "$RUNS/hmc_shr"
  for s in plain shrink; do
    extra=""; [[ $s == shrink ]] && extra="--shrink"
    $PY -m prodfusion.cli tune "$RUNS/hmc_shr" $INTER --validate-on sessions --workers 1 \
      --profile "baskets_$s" $extra > "$RUNS/hmc_shr_baskets_$s.log" 2>&1
    $PY -m prodfusion.cli tune "$RUNS/hmc_shr" $INTER --validate-on pairs --workers 1 \
      --profile "pairs_$s" $extra > "$RUNS/hmc_shr_pairs_$s.log" 2>&1
  done
  M='["text", "image", "clicks", "lexical", "cooc"]'
  $PY -m prodfusion.cli evaluate retrieval "$RUNS/hmc_shr" $INTER --workers 1 \
    --variants $V/single_text.json $V/single_clicks.json $V/single_cooc.json \
    "$(prof baskets_plain "$M" 'tuned (profile baskets)')" \
    "$(prof baskets_shrink "$M" 'tuned --shrink (profile baskets)')" \
    "$(prof pairs_plain "$M" 'tuned (profile pairs)')" \
    "$(prof pairs_shrink "$M" 'tuned --shrink (profile pairs)')" cooc+tfidf \
    --note "model=runs/hmc_shr: --tune off build (runs/hmc), profiles baskets_plain / pairs_plain (prodfusion tune --validate-on sessions / pairs) and baskets_shrink / pairs_shrink (the same with --shrink)" \
    --out docs/results/hm_shrink > "$RUNS/hmc_shr_eval.log" 2>&1
fi
echo "done: docs/results/{diginetica_shrink,hm_shrink}; tunings in $RUNS/*tune*.log, $RUNS/hmc_shr_*.log"
