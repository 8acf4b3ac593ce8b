#!/bin/bash
# Issue 10 (twenty-eighth session on; TAG names a session's models and reports: v28 at
# commit dd652ba, v29 with the bonus for new products): the default build (`--tune-learner auto`: boosted trees
# over the tuned weights, adopted as the model's weighting where they beat the weights and
# every modality alone by more than 1.96 standard errors out of fold) on the shared data,
# evaluated on the test part its tuning set aside, beside each modality alone, the linear
# profiles and the simple references; the offline replay (Table IV) of the H&M default.
# Usage: RUNS=/tmp/base TAG=v29 bash benchmarks/issue10_default.sh
#   (v30: RUNS=/tmp/base TAG=v30 FROM_TAG=v29 STEPS=hm,replay — the v29 build's trees
#   re-learnt with the trees for new queries, then evaluated)
#   STEPS=hm,digi,cat,demo (default; about 45 minutes on the 2-core VM); STEPS=catauto (v42:
#   the whole catalog built with --category-modality auto and off); STEPS=digiprev (v44:
#   FROM_TAG's DIGINETICA views model scored under today's protocol); STEPS=digioff (v45:
#   DIGINETICA's views, clicks + cooc, --category-modality off); STEPS=replay adds
#   the H&M replays (needs STEPS=hm's model; about 5 minutes). The H&M model is built when
#   missing (FRESH=1: always); the other models always.
# Data: ../shared/data (PRODFUSION_SHARED_DATA).
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
R=docs/results
STEPS=${STEPS:-hm,digi,cat,demo}
TAG=${TAG:-v29}
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
ev() { $PY -m prodfusion.cli evaluate "$@" --workers 1 --quiet; }
build() { /usr/bin/time -f "%e s, %M KiB" $PY -m prodfusion.cli build "$@"; }
M=$RUNS/hm_def_$TAG
NOTE="the README's H&M build command (defaults, --tune-learner auto), session $TAG"
if [[ $STEPS == *hm* ]]; then  # the README's H&M build command, unchanged
  [ "${FRESH:-0}" = 1 ] && rm -rf "$M"
  if [ -n "${FROM_TAG:-}" ]; then
    # (v30) the trees re-learnt on a copy of an earlier session's build, as the build's
    # --tune-learner auto learns them (adopted above 1.96 standard errors): the encoders,
    # weights and clicks are that build's, so only what the tuning changed differs
    if [ ! -d "$M" ]; then
      cp -r "$RUNS/hm_def_$FROM_TAG" "$M"
      /usr/bin/time -f "%e s, %M KiB" $PY -m prodfusion.cli tune "$M" --learner gbdt \
        --min-gain-se 1.96 > "$RUNS/hm_def_${TAG}_tune.log" 2>&1
    fi
    NOTE="a copy of $RUNS/hm_def_$FROM_TAG (the README's H&M build command) whose trees were re-learnt by prodfusion tune --learner gbdt --min-gain-se 1.96, session $TAG"
  fi
  [ -d "$M" ] || build --catalog $H/articles.csv --id-col article_id --title-col prod_name \
    --category-col product_type_name --image-root $H/images --image-template '{product_id}.jpg' \
    $INTER --out "$M" > "$RUNS/hm_def_${TAG}_build.log" 2>&1
  ev retrieval "$M" $INTER --variants $V/single_text.json $V/single_image.json \
    $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json $V/own5.json \
    $V/tuned5_profile_weights.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json \
    baseline tfidf cooc popular cooc+tfidf \
    --note "model=$M: $NOTE" \
    --out $R/hm_default_$TAG > "$RUNS/hm_def_${TAG}_eval.log" 2>&1
fi
if [[ $STEPS == *replay* ]]; then  # Table IV on H&M, the default's own weighting as B
  ev replay "$M" $INTER --a baseline \
    --note "model=$M: A = the paper's baseline (Prod2Vec, text fallback, raw cosines), B = the default build's own weighting" \
    --out $R/hm_replay_${TAG}_baseline > "$RUNS/hm_replay_${TAG}_baseline.log" 2>&1
  ev replay "$M" $INTER --a tfidf \
    --note "model=$M: A = tfidf of the titles, B = the default build's own weighting" \
    --out $R/hm_replay_${TAG}_tfidf > "$RUNS/hm_replay_${TAG}_tfidf.log" 2>&1
fi
if [[ ",$STEPS," == *",digi,"* ]]; then  # DIGINETICA's views, no titles: clicks + cooc
  mkdir -p runs; $PY benchmarks/diginetica_catalogs.py viewed --data "$D"
  rm -rf "$RUNS/digid_$TAG"
  build --catalog runs/digi_catalog.csv --text none --image none $DI --workers 1 \
    --cache-dir none --out "$RUNS/digid_$TAG" > "$RUNS/digid_${TAG}_build.log" 2>&1
  # (v42) 85 % of the next views stay in the category: the build adds the category and
  # popularity; evaluated with them and the category references. NB: in this catalog of
  # viewed items every product without training clicks is one viewed in held-out sessions
  # only, which a fusion with the category can recognise (the whole catalog, STEPS=catauto,
  # measures it honestly)
  own=$V/own_digi.json; refs=""; what="clicks + cooc"
  if $PY -c "import json, sys; m = json.load(open(sys.argv[1]))
sys.exit('category' not in m['settings']['modalities'])" "$RUNS/digid_$TAG/manifest.json"; then
    own="$V/single_category.json $V/single_popularity.json $V/own_digi_catpop.json"
    refs="cooc+category popular+category"
    what="clicks + cooc + category + popularity"
  fi
  ev retrieval "$RUNS/digid_$TAG" $DI --variants $V/single_clicks.json $V/single_cooc.json \
    $own cooc popular $refs \
    --note "model=$RUNS/digid_$TAG: prodfusion build with its defaults (--text none --image none: $what; --tune-learner auto)" \
    --out $R/diginetica_default_$TAG > "$RUNS/digid_${TAG}_eval.log" 2>&1
fi
if [[ $STEPS == *digioff* ]]; then  # (v45) DIGINETICA's views, clicks + cooc only (the
  # default until the forty-second session: --category-modality off), under today's protocol
  mkdir -p runs; $PY benchmarks/diginetica_catalogs.py viewed --data "$D"
  rm -rf "$RUNS/digidoff_$TAG"
  build --catalog runs/digi_catalog.csv --text none --image none $DI --workers 1 \
    --category-modality off --cache-dir none --out "$RUNS/digidoff_$TAG" \
    > "$RUNS/digidoff_${TAG}_build.log" 2>&1
  ev retrieval "$RUNS/digidoff_$TAG" $DI --variants $V/single_clicks.json $V/single_cooc.json \
    $V/own_digi.json cooc popular \
    --note "model=$RUNS/digidoff_$TAG: prodfusion build with its defaults and --category-modality off (--text none --image none: clicks + cooc; --tune-learner auto)" \
    --out $R/diginetica_clicks_cooc_$TAG > "$RUNS/digidoff_${TAG}_eval.log" 2>&1
fi
if [[ $STEPS == *digiprev* ]]; then  # (v44) FROM_TAG's model of DIGINETICA's views, tuned
  # before the protocol left out the targets seen only in held-out sessions, scored under it
  P=$RUNS/digid_${FROM_TAG:?FROM_TAG names the earlier model, e.g. v42}
  ev retrieval "$P" $DI --variants $V/single_clicks.json $V/single_cooc.json \
    $V/single_category.json $V/single_popularity.json $V/own_digi_catpop.json cooc popular cooc+category popular+category \
    --note "model=$P: the $FROM_TAG default build (tuned under leave-last-out-all-cases, the rule then), scored with the protocol of session $TAG" \
    --out $R/diginetica_default_${FROM_TAG}_under_$TAG > "$RUNS/digid_${FROM_TAG}_under_${TAG}_eval.log" 2>&1
fi
if [[ ",$STEPS," == *",cat,"* || ",$STEPS," == *",catexact,"* ]]; then  # DIGINETICA's whole catalog with its categories
  mkdir -p runs; $PY benchmarks/diginetica_catalogs.py whole --data "$D"
  rm -rf "$RUNS/digifcp_$TAG"
  build --catalog runs/digi_full_catalog.csv --category-col category --text none \
    --image none $DI --workers 1 --category-modality --popularity --cache-dir none \
    --out "$RUNS/digifcp_$TAG" > "$RUNS/digifcp_${TAG}_build.log" 2>&1
  ev retrieval "$RUNS/digifcp_$TAG" $DI --variants $V/single_clicks.json $V/single_cooc.json \
    $V/single_category.json $V/single_popularity.json $V/own_digi_catpop.json cooc popular \
    cooc+category popular+category \
    --note "model=$RUNS/digifcp_$TAG: DIGINETICA's whole catalog with the category and popularity modalities, built with the defaults (--tune-learner auto)" \
    --out $R/diginetica_category_$TAG > "$RUNS/digifcp_${TAG}_eval.log" 2>&1
fi
if [[ $STEPS == *catauto* ]]; then  # (v42) the whole catalog built with no modality flag:
  # --category-modality auto decides (85 % of the next views stay in the category: on), and
  # the same build with --category-modality off, each beside the category references
  mkdir -p runs; $PY benchmarks/diginetica_catalogs.py whole --data "$D"
  for arm in auto off; do
    rm -rf "$RUNS/digifc${arm}_$TAG"
    build --catalog runs/digi_full_catalog.csv --category-col category --text none \
      --image none $DI --workers 1 --category-modality $arm --cache-dir none \
      --out "$RUNS/digifc${arm}_$TAG" > "$RUNS/digifc${arm}_${TAG}_build.log" 2>&1
    own=$V/own_digi_catpop.json; [ $arm = off ] && own=$V/own_digi.json
    ev retrieval "$RUNS/digifc${arm}_$TAG" $DI --variants $V/single_clicks.json \
      $V/single_cooc.json $own cooc popular cooc+category popular+category \
      --note "model=$RUNS/digifc${arm}_$TAG: DIGINETICA's whole catalog with its categories, prodfusion build with its defaults and --category-modality $arm" \
      --out $R/diginetica_category_${arm}_$TAG > "$RUNS/digifc${arm}_${TAG}_eval.log" 2>&1
  done
fi
if [[ $STEPS == *catexact* ]]; then  # (v30) the same model searched exactly, not by HNSW
  rm -rf "$RUNS/digifcp_${TAG}_exact" && cp -r "$RUNS/digifcp_$TAG" "$RUNS/digifcp_${TAG}_exact"
  sed -i 's/"index": *"auto"/"index": "exact"/' "$RUNS/digifcp_${TAG}_exact/manifest.json"
  ev retrieval "$RUNS/digifcp_${TAG}_exact" $DI --variants $V/own_digi_catpop.json \
    --note "model=$RUNS/digifcp_${TAG}_exact: digifcp_$TAG with index exact (the served lists use HNSW at 184,047 products)" \
    --out $R/diginetica_category_${TAG}_exact > "$RUNS/digifcp_${TAG}_exact_eval.log" 2>&1
fi
if [[ $STEPS == *demo* ]]; then  # the demo's synthetic shop
  DD="--interactions $RUNS/demo_data/sessions.csv --session-cols session_id --item-col product_id --time-col timestamp"
  if [ ! -d "$RUNS/demo_data" ]; then
    $PY -c "from prodfusion.data.synthetic import make_synthetic
from prodfusion.demo import SIMILAR_RATE
make_synthetic('$RUNS/demo_data', n_products=2400, seed=0, similar_rate=SIMILAR_RATE)"
  fi
  rm -rf "$RUNS/demod_$TAG"
  build --catalog "$RUNS/demo_data/catalog.csv" --image-col image --image-root "$RUNS/demo_data" $DD \
    --workers 1 --out "$RUNS/demod_$TAG" > "$RUNS/demod_${TAG}_build.log" 2>&1
  # (v42) the build adds the category and popularity here (87 % of the steps stay in one
  # category): the own weighting over all seven, and the category references beside it
  own=$V/own5.json; refs=""
  if $PY -c "import json, sys; m = json.load(open(sys.argv[1]))
sys.exit('category' not in m['settings']['modalities'])" "$RUNS/demod_$TAG/manifest.json"; then
    own=$V/own7.json; refs="cooc+category popular+category"
  fi
  ev retrieval "$RUNS/demod_$TAG" $DD --variants $V/single_text.json $V/single_image.json \
    $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json $own \
    tfidf cooc popular cooc+tfidf $refs \
    --note "model=$RUNS/demod_$TAG: prodfusion build with its defaults on the demo's synthetic shop (--tune-learner auto)" \
    --out $R/demo_default_$TAG > "$RUNS/demod_${TAG}_eval.log" 2>&1
fi
