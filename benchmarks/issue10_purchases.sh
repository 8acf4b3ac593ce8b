#!/bin/bash
# Issue 10, sixth session: an out-of-sample check of the fusion and the tuner on data that no
# choice of the earlier sessions was made on — DIGINETICA's purchases (train-purchases.csv:
# 12,630 sessions, of which 2,829 hold two or more items), each session's purchases in time
# order, the last one held out (leave-last-out, sessions by time, as for the views). Same
# whole catalog (184,047 items) and the same commands as the views' whole-catalog run of
# benchmarks/issue10_fusion.sh, with the purchases as interactions:
#   1. clicks + cooc + category + popularity, tuned -> docs/results/diginetica_purchases_fusion
#   2. clicks + cooc only (the issue's "clicks vs cooc"), tuned -> docs/results/diginetica_purchases_clicks_cooc
#   3. as 1, tuned with every product a validation candidate (--n-candidates = catalog size:
#      the tuner's default 200 per modality favours the category's large tied groups)
#      -> docs/results/diginetica_purchases_fullrank   (STEPS=3 runs this step alone)
# Usage: bash benchmarks/issue10_purchases.sh   (about 7 min on the idle 2-core VM)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
D=$DATA/diginetica
V=benchmarks/variants
mkdir -p runs
DP="--interactions $D/train-purchases.csv --session-cols sessionId --item-col itemId --time-col eventdate,timeframe --sep ;"
T="/usr/bin/time -v"
python benchmarks/diginetica_catalogs.py whole --data "$D"
STEPS=${STEPS:-123}
if [[ $STEPS == *1* ]]; then
# 1. four modalities
rm -rf runs/digip runs/digip_t
prodfusion build --catalog runs/digi_full_catalog.csv --category-col category --text none --image none $DP \
  --workers 1 --cooc --category-modality --popularity --cache-dir none --fusion intermediate --index exact \
  --tune off --out runs/digip > runs/digip_build.log 2>&1
cp -r runs/digip runs/digip_t
$T prodfusion tune runs/digip_t $DP --objective ndcg@15 --workers 1 > runs/digip_tune.log 2>&1
prodfusion evaluate retrieval runs/digip_t $DP --workers 1 --variants $V/single_clicks.json $V/single_cooc.json \
  $V/single_category.json $V/single_popularity.json $V/tuned_digi_catpop.json $V/paper_digi_catpop.json \
  cooc popular cooc+category \
  --note "model=runs/digip_t: DIGINETICA purchases as sessions (out-of-sample check), whole catalog, clicks + cooc + category + popularity; tuned by prodfusion tune" \
  --out docs/results/diginetica_purchases_fusion > runs/digip_eval.log 2>&1
fi
if [[ $STEPS == *2* ]]; then
# 2. clicks + cooc only
rm -rf runs/digipc runs/digipc_t
prodfusion build --catalog runs/digi_full_catalog.csv --text none --image none $DP \
  --workers 1 --cooc --cache-dir none --fusion intermediate --index exact --tune off --out runs/digipc > runs/digipc_build.log 2>&1
cp -r runs/digipc runs/digipc_t
$T prodfusion tune runs/digipc_t $DP --objective ndcg@15 --workers 1 > runs/digipc_tune.log 2>&1
prodfusion evaluate retrieval runs/digipc_t $DP --workers 1 --variants $V/single_clicks.json $V/single_cooc.json \
  $V/tuned_digi.json cooc popular \
  --note "model=runs/digipc_t: DIGINETICA purchases as sessions (out-of-sample check), whole catalog, clicks + cooc; tuned by prodfusion tune" \
  --out docs/results/diginetica_purchases_clicks_cooc > runs/digipc_eval.log 2>&1
fi
if [[ $STEPS == *3* ]]; then
# 3. the model of step 1, tuned with full-catalog validation ranks
[ -d runs/digip ] || { echo "run step 1 first (runs/digip)"; exit 1; }
rm -rf runs/digip_full; cp -r runs/digip runs/digip_full
$T prodfusion tune runs/digip_full $DP --objective ndcg@15 --workers 1 --n-candidates 184047 > runs/digip_full_tune.log 2>&1
prodfusion evaluate retrieval runs/digip_full $DP --workers 1 --variants $V/single_cooc.json \
  $V/single_category.json $V/tuned_digi_catpop.json cooc cooc+category \
  --note "model=runs/digip_full: as runs/digip_t, tuned with --n-candidates 184047 (every product a validation candidate)" \
  --out docs/results/diginetica_purchases_fullrank > runs/digip_full_eval.log 2>&1
fi
grep -A14 "^tuned" runs/digip*_tune.log
echo "done: docs/results/diginetica_purchases_{fusion,clicks_cooc,fullrank}; logs in runs/digip*.log"
