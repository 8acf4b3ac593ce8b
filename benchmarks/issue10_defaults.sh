#!/bin/bash
# Issue 10, "defaults that work" (ninth session): what `prodfusion build` gives a new user who
# passes no fusion option. H&M built exactly as the README's command (photos, co-purchase pairs
# and customer-day baskets) — lexical and cooc added and the weights tuned on the build's own
# interactions — and the same build with --tune off (the untuned default: the two title
# modalities share one weight); DIGINETICA's viewed items with the default build (clicks +
# cooc, tuned); the demo's synthetic shop with the default build. Each evaluated as the other issue 10 reports are, beside every single modality,
# the paper's fusion and the reference baselines. Model folders go to runs/ (not committed).
# Usage: bash benchmarks/issue10_defaults.sh   (about 18 min on the 2-core VM, H&M photos cached)
# STEPS=digi / STEPS=demo: DIGINETICA's or the demo shop's default build alone; SUFFIX=_x
# writes their reports to docs/results/diginetica_defaults_x / demo_defaults_x and their
# folders to runs/digid_x / runs/demod_x (twenty-fourth session: the default --n0 grid with
# min:2 and min:5, SUFFIX=_min)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
D=$DATA/diginetica
V=benchmarks/variants
mkdir -p runs
CAT="--catalog $H/articles.csv --id-col article_id --title-col prod_name --category-col product_type_name --image-root $H/images --image-template {product_id}.jpg"
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
T="/usr/bin/time -v"
STEPS=${STEPS:-all}  # STEPS=demo_untuned: the last step alone (needs runs/demo_data); STEPS=hm: H&M's tuned default build alone
SUFFIX=${SUFFIX:-}
DD="--interactions runs/demo_data/sessions.csv --session-cols session_id --item-col product_id --time-col timestamp"
VARS="$V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json $V/paper_int3.json $V/tuned5.json baseline cooc tfidf popular cooc+tfidf"
if [[ $STEPS == all || $STEPS == hm ]]; then
$T prodfusion build $CAT $INTER --workers 1 --out runs/hmd > runs/hmd_build.log 2>&1
$T prodfusion evaluate retrieval runs/hmd $INTER --workers 1 --variants $VARS \
  --note "model=runs/hmd: prodfusion build with its defaults (lexical, cooc, tuned on both sources)" --out docs/results/hm_defaults > runs/hmd_eval.log 2>&1
fi
if [[ $STEPS == hm ]]; then exit 0; fi
if [[ $STEPS == all ]]; then
$T prodfusion build $CAT $INTER --workers 1 --tune off --out runs/hmd_off > runs/hmd_off_build.log 2>&1
$T prodfusion evaluate retrieval runs/hmd_off $INTER --workers 1 --variants $V/model5.json \
  $V/split_titles_image.json $V/paper_text_image.json $V/paper_text_image_lexical.json $V/paper_int3.json \
  $V/split_titles.json $V/single_text.json \
  $V/single_image.json $V/single_lexical.json tfidf cooc+tfidf \
  --note "model=runs/hmd_off: prodfusion build --tune off (untuned defaults: text and lexical share the title's weight)" --out docs/results/hm_defaults_untuned > runs/hmd_off_eval.log 2>&1
fi
if [[ $STEPS == all || $STEPS == digi ]]; then
python benchmarks/diginetica_catalogs.py viewed --data "$D"
$T prodfusion build --catalog runs/digi_catalog.csv --text none --image none $DI --workers 1 \
  --cache-dir none --out runs/digid$SUFFIX > runs/digid${SUFFIX}_build.log 2>&1
$T prodfusion evaluate retrieval runs/digid$SUFFIX $DI --workers 1 --variants $V/single_clicks.json $V/single_cooc.json \
  $V/tuned_digi.json cooc popular \
  --note "model=runs/digid$SUFFIX: prodfusion build with its defaults (--text none --image none: clicks + cooc, tuned)" --out docs/results/diginetica_defaults$SUFFIX > runs/digid${SUFFIX}_eval.log 2>&1
fi
if [[ $STEPS == all || $STEPS == demo ]]; then
# the demo's synthetic shop (titles, photos, sessions; a catalog no issue 10 choice was made on)
python -c "
from prodfusion.data import make_synthetic
from prodfusion.demo import SIMILAR_RATE
make_synthetic('runs/demo_data', n_products=2400, seed=0, similar_rate=SIMILAR_RATE)"
$T prodfusion build --catalog runs/demo_data/catalog.csv --image-col image --image-root runs/demo_data $DD \
  --workers 1 --out runs/demod$SUFFIX > runs/demod${SUFFIX}_build.log 2>&1
$T prodfusion evaluate retrieval runs/demod$SUFFIX $DD --workers 1 --variants $VARS \
  --note "model=runs/demod$SUFFIX: prodfusion build with its defaults on the demo's synthetic shop (lexical, cooc, tuned)" --out docs/results/demo_defaults$SUFFIX > runs/demod${SUFFIX}_eval.log 2>&1
fi
if [[ $STEPS == digi || $STEPS == demo ]]; then exit 0; fi
# tenth session: the untuned title split checked on the demo's shop (a second catalog with
# titles; the split was chosen on H&M). STEPS=demo_untuned runs this step alone.
$T prodfusion build --catalog runs/demo_data/catalog.csv --image-col image --image-root runs/demo_data $DD \
  --workers 1 --tune off --out runs/demod_off > runs/demod_off_build.log 2>&1
$T prodfusion evaluate retrieval runs/demod_off $DD --workers 1 --variants $V/model5.json \
  $V/split_titles_image.json $V/paper_text_image.json $V/paper_text_image_lexical.json $V/paper_int3.json \
  $V/split_titles.json $V/single_text.json $V/single_image.json $V/single_lexical.json tfidf cooc+tfidf \
  --note "model=runs/demod_off: prodfusion build --tune off on the demo's synthetic shop (untuned defaults: text and lexical share the title's weight)" --out docs/results/demo_defaults_untuned > runs/demod_off_eval.log 2>&1
echo "done: docs/results/{hm_defaults,hm_defaults_untuned,diginetica_defaults,demo_defaults,demo_defaults_untuned}; times in runs/*.log"
