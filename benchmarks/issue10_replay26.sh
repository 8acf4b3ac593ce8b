#!/bin/bash
# Issue 10, twenty-sixth session: the offline A/B replay re-run under the leak-free
# leave-last-out protocol of the twenty-fifth session, the H&M reports re-run with the fixed
# "baseline (Prod2Vec, text fallback)" (raw cosines), and the H&M pairs profile's test figures
# on two more draws of the held-out pairs (the pairs split is seeded; the baskets split is by
# time and has no other draw).
# Needs $RUNS/hm_def27 (the README's H&M build: `RUNS=... STEPS=def bash
# benchmarks/issue10_protocol25.sh`); builds DIGINETICA's and the demo shop's default models
# into $RUNS when missing. Data: ../shared/data (PRODFUSION_SHARED_DATA).
# Usage: RUNS=/tmp/base bash benchmarks/issue10_replay26.sh   (11 minutes on the 2-core VM;
# STEPS=eval,replay,seeds,digi,demo selects steps; STEPS=purch, not in the default: the default
# build on DIGINETICA's purchases, data no issue 10 choice was made on, about 1 minute;
# STEPS=cat, not in the default: with the catalog's categories — DIGINETICA's views on the
# whole catalog with the category and popularity modalities, and H&M's build — beside the
# category references `cooc+category` and `popular+category` (the category's bestsellers),
# each model also tuned without the slice rule into profile 'free'; about 10 minutes)
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
STEPS=${STEPS:-eval,replay,seeds,digi,demo}
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
DI="--interactions $D/train-item-views.sample.csv --session-cols session_id --item-col item_id --time-col eventdate,timeframe --sep ;"
HMVARS="$V/single_clicks.json $V/single_cooc.json $V/tuned5.json $V/tuned5_profile_sessions.json $V/tuned5_profile_pairs.json baseline cooc+tfidf"
M=$RUNS/hm_def27
ev() { $PY -m prodfusion.cli evaluate "$@" --workers 1 --quiet; }
if [[ $STEPS == *eval* ]]; then  # the twenty-fifth session's reports, baseline rows by the fixed definition
  ev retrieval "$M" $INTER --variants $HMVARS \
    --note "model=$M: the README's H&M build command unchanged (--tune-profiles auto: profiles 'sessions' and 'pairs' where the sources conflict); re-run in the twenty-sixth session with the fixed baseline" \
    --out $R/hm_default_profiles_v25 > "$RUNS/hm_def27_eval26.log" 2>&1
  ev retrieval "$RUNS/hm_def25" $INTER --variants $HMVARS \
    --note "model=$RUNS/hm_def25: the twenty-fourth session's H&M build (tuned under the old rule), evaluated under the twenty-fifth session's protocol; re-run in the twenty-sixth session with the fixed baseline" \
    --out $R/hm_default_profiles_noise_v25 > "$RUNS/hm_def25_eval26.log" 2>&1
fi
if [[ $STEPS == *replay* ]]; then  # Table IV on H&M: both sources, paired design
  ev replay "$M" $INTER --a baseline \
    --note "model=$M: A = the paper's baseline (Prod2Vec, text fallback, raw cosines), B = the model's own weighting" \
    --out $R/hm_replay_v26_baseline > "$RUNS/hm_replay_v26_baseline.log" 2>&1
  ev replay "$M" $INTER --a tfidf \
    --note "model=$M: A = tfidf of the titles (the best reference on the baskets), B = the model's own weighting" \
    --out $R/hm_replay_v26_tfidf > "$RUNS/hm_replay_v26_tfidf.log" 2>&1
  ev replay "$M" $INTER --a baseline --b $V/tuned5_profile_pairs.json \
    --note "model=$M: A = the paper's baseline (Prod2Vec, text fallback, raw cosines), B = the model's profile 'pairs'" \
    --out $R/hm_replay_v26_pairs > "$RUNS/hm_replay_v26_pairs.log" 2>&1
fi
if [[ $STEPS == *seeds* ]]; then  # the pairs profile on two more draws of held-out pairs
  for s in 1 2; do
    rm -rf "$RUNS/hm_def27_s$s"; cp -r "$M" "$RUNS/hm_def27_s$s"
    $PY -m prodfusion.cli tune "$RUNS/hm_def27_s$s" $INTER --validate-on pairs --profile pairs \
      --eval-seed $s --quiet > "$RUNS/hm_def27_s${s}_tune.log" 2>&1
    ev retrieval "$RUNS/hm_def27_s$s" $INTER --eval-seed $s \
      --variants $V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json \
      $V/single_cooc.json $V/tuned5_profile_pairs.json baseline tfidf cooc popular cooc+tfidf \
      --note "model=$RUNS/hm_def27_s$s: the README's H&M build, profile 'pairs' re-tuned with --eval-seed $s (its test pairs set aside); evaluated on that seed's draw" \
      --out $R/hm_pairs_seed$s > "$RUNS/hm_def27_s${s}_eval.log" 2>&1
  done
fi
if [[ $STEPS == *digi* ]]; then
  if [ ! -d "$RUNS/digid_v26" ]; then
    mkdir -p runs; $PY benchmarks/diginetica_catalogs.py viewed --data "$D"
    $PY -m prodfusion.cli build --catalog runs/digi_catalog.csv --text none --image none $DI --workers 1 \
      --cache-dir none --out "$RUNS/digid_v26" > "$RUNS/digid_v26_build.log" 2>&1
  fi
  ev replay "$RUNS/digid_v26" $DI --a cooc \
    --note "model=$RUNS/digid_v26: prodfusion build with its defaults (--text none --image none: clicks + cooc, tuned); A = cooc counts, B = the model's own weighting" \
    --out $R/diginetica_replay_v26 > "$RUNS/digid_v26_replay.log" 2>&1
fi
if [[ $STEPS == *demo* ]]; then
  DD="--interactions $RUNS/demo_data/sessions.csv --session-cols session_id --item-col product_id --time-col timestamp"
  if [ ! -d "$RUNS/demod_v26" ]; then
    $PY -c "from prodfusion.data.synthetic import make_synthetic
from prodfusion.demo import SIMILAR_RATE
make_synthetic('$RUNS/demo_data', n_products=2400, seed=0, similar_rate=SIMILAR_RATE)"
    $PY -m prodfusion.cli build --catalog "$RUNS/demo_data/catalog.csv" --image-col image --image-root "$RUNS/demo_data" $DD \
      --workers 1 --out "$RUNS/demod_v26" > "$RUNS/demod_v26_build.log" 2>&1
  fi
  ev replay "$RUNS/demod_v26" $DD --a cooc \
    --note "model=$RUNS/demod_v26: prodfusion build with its defaults on the demo's synthetic shop; A = cooc counts, B = the model's own weighting" \
    --out $R/demo_replay_v26 > "$RUNS/demod_v26_replay.log" 2>&1
fi
if [[ $STEPS == *purch* ]]; then  # out of sample: DIGINETICA's purchases, the default build
  DP="--interactions $D/train-purchases.csv --session-cols sessionId --item-col itemId --time-col eventdate,timeframe --sep ;"
  mkdir -p runs; $PY benchmarks/diginetica_catalogs.py whole --data "$D"
  rm -rf "$RUNS/digipd_v26"
  /usr/bin/time -v $PY -m prodfusion.cli build --catalog runs/digi_full_catalog.csv --text none --image none $DP \
    --workers 1 --cache-dir none --out "$RUNS/digipd_v26" > "$RUNS/digipd_v26_build.log" 2>&1
  ev retrieval "$RUNS/digipd_v26" $DP --variants $V/single_clicks.json $V/single_cooc.json \
    $V/tuned_digi.json cooc popular \
    --note "model=$RUNS/digipd_v26: prodfusion build with its defaults (--text none --image none: clicks + cooc, tuned) on DIGINETICA's purchases (whole catalog; out-of-sample check)" \
    --out $R/diginetica_purchases_defaults_v26 > "$RUNS/digipd_v26_eval.log" 2>&1
fi
if [[ $STEPS == *cat* ]]; then  # with the catalog's categories
  mkdir -p runs; $PY benchmarks/diginetica_catalogs.py whole --data "$D"
  rm -rf "$RUNS/digifcp_v26"
  $PY -m prodfusion.cli build --catalog runs/digi_full_catalog.csv --category-col category --text none \
    --image none $DI --workers 1 --category-modality --popularity --cache-dir none \
    --out "$RUNS/digifcp_v26" > "$RUNS/digifcp_v26_build.log" 2>&1
  $PY -m prodfusion.cli tune "$RUNS/digifcp_v26" --no-slice-safe --profile free --quiet \
    > "$RUNS/digifcp_v26_free.log" 2>&1
  ev retrieval "$RUNS/digifcp_v26" $DI --variants $V/single_clicks.json $V/single_cooc.json \
    $V/single_category.json $V/single_popularity.json $V/tuned_digi_catpop.json \
    $V/tuned_digi_catpop_free.json cooc popular cooc+category popular+category \
    --note "model=$RUNS/digifcp_v26: DIGINETICA's whole catalog (184,047 items) with the category and popularity modalities, tuned by the build; profile 'free' tuned with --no-slice-safe" \
    --out $R/diginetica_category_v26 > "$RUNS/digifcp_v26_eval.log" 2>&1
  rm -rf "$RUNS/hm_def27_free"; cp -r "$M" "$RUNS/hm_def27_free"
  $PY -m prodfusion.cli tune "$RUNS/hm_def27_free" $INTER --no-slice-safe --profile free --quiet \
    > "$RUNS/hm_def27_free.log" 2>&1
  ev retrieval "$RUNS/hm_def27_free" $INTER --variants $V/single_text.json $V/single_image.json \
    $V/single_clicks.json $V/single_lexical.json $V/tuned5.json $V/tuned5_profile_sessions.json \
    $V/tuned5_profile_pairs.json $V/tuned5_profile_free.json tfidf cooc+tfidf cooc+category popular+category \
    --note "model=$RUNS/hm_def27_free: the README's H&M build, with profile 'free' tuned on both sources with --no-slice-safe; beside the category references" \
    --out $R/hm_category_v26 > "$RUNS/hm_def27_free_eval.log" 2>&1
fi
echo "done: $R/{hm_default_profiles_v25,hm_default_profiles_noise_v25,hm_replay_v26_*,hm_pairs_seed1,hm_pairs_seed2,diginetica_replay_v26,demo_replay_v26}"
