#!/bin/bash
# Run-to-run noise of issue 10's test figures from training randomness alone: the committed
# retrieval reports (Prod2Vec seed 0) re-run with the test part's Prod2Vec retrained from seeds
# 1-4 (`evaluate retrieval --p2v-seed`), every other input unchanged (the tuned weights stay
# the ones in the model folders). Needs the model folders of benchmarks/issue10_fusion.sh and
# benchmarks/issue10_purchases.sh (runs/, not committed). Writes docs/results/seed_noise.md.
# Usage: bash benchmarks/seed_noise.sh   (about 17 min on the 2-core VM, partly shared)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
D=$DATA/diginetica
V=benchmarks/variants
OUT=runs/seed_noise
mkdir -p $OUT
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
DP="--interactions $D/train-purchases.csv --session-cols sessionId --item-col itemId --time-col eventdate,timeframe --sep ;"
HV="$V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json $V/paper_int3.json $V/tuned5.json baseline cooc tfidf popular cooc+tfidf"
DV="$V/single_clicks.json $V/single_cooc.json $V/tuned_digi.json cooc popular"
CV="$V/single_clicks.json $V/single_cooc.json $V/single_category.json $V/single_popularity.json $V/tuned_digi_catpop.json $V/paper_digi_catpop.json cooc popular cooc+category"
for S in 1 2 3 4; do
  prodfusion evaluate retrieval runs/hmc_tb $INTER --workers 1 --variants $HV --p2v-seed $S --quiet --out $OUT/hm_baskets_fusion_s$S
  prodfusion evaluate retrieval runs/hmc_tp $INTER --workers 1 --variants $HV --p2v-seed $S --quiet --out $OUT/hm_pairs_fusion_s$S
  prodfusion evaluate retrieval runs/digi1_t $DI --workers 1 --variants $DV --p2v-seed $S --quiet --out $OUT/diginetica_fusion_s$S
  prodfusion evaluate retrieval runs/digif_t $DI --workers 1 --variants $CV --p2v-seed $S --quiet --out $OUT/diginetica_fusion_category_s$S
  prodfusion evaluate retrieval runs/digip_t $DP --workers 1 --variants $CV --p2v-seed $S --quiet --out $OUT/diginetica_purchases_fusion_s$S
done
python benchmarks/seed_noise.py --runs $OUT --committed docs/results --out docs/results/seed_noise.md
