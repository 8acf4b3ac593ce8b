#!/bin/bash
# Issue 10, fifth session: the side runs quoted in docs/results/README.md next to the main
# reports of benchmarks/issue10_fusion.sh (run that first: this reuses runs/digi1,
# runs/digi_catalog.csv, runs/digi_full_catalog.csv and the H&M embedding cache).
#   1. DIGINETICA, catalog of viewed items: cooc + a thousandth of clicks (a tie-break) and,
#      with the category modality, the presence leak (equal raw weights);
#   2. DIGINETICA, whole catalog, category without popularity: tuned and equal raw weights;
#   3. H&M with the category and popularity modalities too (7 modalities), tuned per source;
#   4. benchmarks/issue10_probes.py: category shares and tie-aware vs row-order figures.
# Usage: bash benchmarks/issue10_extra.sh   (about 20 min on the idle 2-core VM)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
D=$DATA/diginetica
V=benchmarks/variants
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
# 1. viewed items: the tie-break (untuned model runs/digi1) and the leak with category
rm -rf runs/digic
prodfusion build --catalog runs/digi_catalog.csv --category-col category --text none --image none $DI \
  --workers 1 --cooc --category-modality --cache-dir none --fusion intermediate --tune off --out runs/digic > runs/digic_build.log 2>&1
prodfusion evaluate retrieval runs/digic $DI --workers 1 --variants $V/single_cooc.json $V/tiebreak_digi.json \
  $V/single_category.json $V/paper_digi_cat.json cooc \
  --note "model=runs/digic: the catalog of viewed items, clicks + cooc + category, not tuned" \
  --out docs/results/diginetica_viewed_category_leak > runs/digic_eval.log 2>&1
# 2. whole catalog, category without popularity
rm -rf runs/digifc runs/digifc_t
prodfusion build --catalog runs/digi_full_catalog.csv --category-col category --text none --image none $DI \
  --workers 1 --cooc --category-modality --cache-dir none --fusion intermediate --index exact \
  --tune off --out runs/digifc > runs/digifc_build.log 2>&1
cp -r runs/digifc runs/digifc_t
prodfusion tune runs/digifc_t $DI --objective ndcg@15 --workers 1 > runs/digifc_tune.log 2>&1
prodfusion evaluate retrieval runs/digifc_t $DI --workers 1 --variants $V/single_cooc.json $V/single_category.json \
  $V/tuned_digi_cat.json $V/paper_digi_cat.json cooc cooc+category \
  --note "model=runs/digifc_t: the whole catalog, clicks + cooc + category (no popularity); tuned by prodfusion tune" \
  --out docs/results/diginetica_whole_category_only > runs/digifc_eval.log 2>&1
# 3. H&M with seven modalities
rm -rf runs/hmc7 runs/hmc7_tb runs/hmc7_tp
prodfusion build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
  --category-col product_type_name --group-col product_code --image-root $H/images \
  --image-template '{product_id}.jpg' $INTER --lexical tfidf --cooc --category-modality --popularity \
  --fusion intermediate --workers 1 --tune off --out runs/hmc7 > runs/hmc7_build.log 2>&1
cp -r runs/hmc7 runs/hmc7_tb; cp -r runs/hmc7 runs/hmc7_tp
/usr/bin/time -v prodfusion tune runs/hmc7_tb $INTER --validate-on sessions --objective ndcg@15 --workers 1 > runs/hmc7_tb.log 2>&1
/usr/bin/time -v prodfusion tune runs/hmc7_tp $INTER --validate-on pairs --objective ndcg@15 --workers 1 > runs/hmc7_tp.log 2>&1
VARS="$V/single_cooc.json $V/single_clicks.json $V/single_text.json $V/single_category.json $V/single_popularity.json $V/tuned7.json cooc+tfidf cooc+category"
prodfusion evaluate retrieval runs/hmc7_tb $INTER --workers 1 --variants $VARS \
  --note "model=runs/hmc7_tb: 7 modalities, tuned on baskets" --out docs/results/hm7_baskets > runs/hmc7_tb_eval.log 2>&1
prodfusion evaluate retrieval runs/hmc7_tp $INTER --workers 1 --variants $VARS \
  --note "model=runs/hmc7_tp: 7 modalities, tuned on pairs" --out docs/results/hm7_pairs > runs/hmc7_tp_eval.log 2>&1
# 4. probes
python benchmarks/issue10_probes.py --data "$DATA" --out docs/results/issue10_probes.md
echo "done: docs/results/{diginetica_viewed_category_leak,diginetica_whole_category_only,hm7_baskets,hm7_pairs,issue10_probes.md}"
