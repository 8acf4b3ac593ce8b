#!/bin/bash
# Issue 10's committed fusion reports (docs/results/README.md, first section): H&M baskets and
# co-purchase pairs (build, tune per source, evaluate, replay) and DIGINETICA next views with
# Prod2Vec min_count 1 (the library default) and 2. Model folders go to runs/ (not committed);
# variants are benchmarks/variants/*.json. Data: ../shared/data (PRODFUSION_SHARED_DATA).
# Usage: bash benchmarks/issue10_fusion.sh   (about 8 min on the idle 2-core VM)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
D=$DATA/diginetica
V=benchmarks/variants
mkdir -p runs
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
T="/usr/bin/time -v"
if [ ! -d runs/hmc ]; then
  $T prodfusion build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
    --category-col product_type_name --group-col product_code --image-root $H/images \
    --image-template '{product_id}.jpg' $INTER --lexical tfidf --cooc --fusion intermediate \
    --workers 1 --tune off --out runs/hmc > runs/hmc_build.log 2>&1
fi
rm -rf runs/hmc_tb runs/hmc_tp; cp -r runs/hmc runs/hmc_tb; cp -r runs/hmc runs/hmc_tp
$T prodfusion tune runs/hmc_tb $INTER --validate-on sessions --objective ndcg@15 --workers 1 > runs/hmc_tb.log 2>&1
$T prodfusion tune runs/hmc_tp $INTER --validate-on pairs --objective ndcg@15 --workers 1 > runs/hmc_tp.log 2>&1
VARS="$V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json $V/paper_int3.json $V/tuned5.json baseline cooc tfidf popular cooc+tfidf"
$T prodfusion evaluate retrieval runs/hmc_tb $INTER --workers 1 --variants $VARS \
  --note "model=runs/hmc_tb: tuned by prodfusion tune --validate-on sessions (baskets)" --out docs/results/hm_baskets_fusion > runs/hmc_tb_eval.log 2>&1
$T prodfusion evaluate retrieval runs/hmc_tp $INTER --workers 1 --variants $VARS \
  --note "model=runs/hmc_tp: tuned by prodfusion tune --validate-on pairs (co-purchase pairs)" --out docs/results/hm_pairs_fusion > runs/hmc_tp_eval.log 2>&1
$T prodfusion evaluate replay runs/hmc_tb --a cooc+tfidf --b $V/tuned5.json $INTER --workers 1 --out docs/results/hm_replay_fusion_baskets > runs/replay_tb.log 2>&1
$T prodfusion evaluate replay runs/hmc_tp --a baseline --b $V/tuned5.json $INTER --workers 1 --out docs/results/hm_replay_fusion_pairs > runs/replay_tp.log 2>&1
# DIGINETICA has no titles or photos: a catalog of its viewed items with their categories
python benchmarks/diginetica_catalogs.py viewed --data "$D"
for MC in 1 2; do
  rm -rf runs/digi$MC runs/digi${MC}_t
  $T prodfusion build --catalog runs/digi_catalog.csv --text none --image none $DI --p2v-min-count $MC \
    --workers 1 --cooc --cache-dir none --fusion intermediate --tune off --out runs/digi$MC > runs/digi${MC}_build.log 2>&1
  cp -r runs/digi$MC runs/digi${MC}_t
  $T prodfusion tune runs/digi${MC}_t $DI --objective ndcg@15 --workers 1 > runs/digi${MC}_tune.log 2>&1
done
DV="$V/single_clicks.json $V/single_cooc.json $V/tuned_digi.json cooc popular"
$T prodfusion evaluate retrieval runs/digi1_t $DI --workers 1 --variants $DV \
  --note "model=runs/digi1_t: Prod2Vec library defaults (min_count 1, 20 epochs), cooc; tuned by prodfusion tune" --out docs/results/diginetica_fusion > runs/digi1_eval.log 2>&1
$T prodfusion evaluate retrieval runs/digi2_t $DI --workers 1 --variants $DV \
  --note "model=runs/digi2_t: Prod2Vec --p2v-min-count 2 (the second session's setting), cooc; tuned by prodfusion tune" --out docs/results/diginetica_fusion_mc2 > runs/digi2_eval.log 2>&1
# DIGINETICA with its whole catalog (every item of product-categories.csv, 184,047) and the
# category modality: in the catalog of viewed items above, "no training clicks" means "viewed
# only in held-out sessions"; here most products without clicks were never viewed at all
python benchmarks/diginetica_catalogs.py whole --data "$D"
rm -rf runs/digif runs/digif_t
$T prodfusion build --catalog runs/digi_full_catalog.csv --category-col category --text none --image none $DI \
  --workers 1 --cooc --category-modality --popularity --cache-dir none --fusion intermediate --index exact \
  --tune off --out runs/digif > runs/digif_build.log 2>&1
cp -r runs/digif runs/digif_t
$T prodfusion tune runs/digif_t $DI --objective ndcg@15 --workers 1 > runs/digif_tune.log 2>&1
$T prodfusion evaluate retrieval runs/digif_t $DI --workers 1 --variants $V/single_clicks.json $V/single_cooc.json \
  $V/single_category.json $V/single_popularity.json $V/tuned_digi_catpop.json $V/paper_digi_catpop.json \
  cooc popular cooc+category \
  --note "model=runs/digif_t: the whole catalog (184,047 items of product-categories.csv), clicks + cooc + category + popularity; tuned by prodfusion tune" \
  --out docs/results/diginetica_fusion_category > runs/digif_eval.log 2>&1
echo "done: docs/results/{hm_baskets_fusion,hm_pairs_fusion,hm_replay_fusion_*,diginetica_fusion*}; times in runs/*.log"
