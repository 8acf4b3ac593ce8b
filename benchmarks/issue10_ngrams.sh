#!/usr/bin/env bash
# Issue 10, thirty-eighth session: the README's H&M build with and without the `ngrams`
# modality (exact title n-gram TF-IDF, pairwise), each tuned as `prodfusion build` tunes by
# default (weights, then trees where they win out of fold), and scored on the same test part
# beside every single modality and the references. The two builds differ only in --ngrams;
# photos and titles come from the embedding cache after the first.
#
#   RUNS=/tmp/base bash benchmarks/issue10_ngrams.sh          # both builds, both evaluations
#   STEPS=ng RUNS=/tmp/base bash benchmarks/issue10_ngrams.sh # the ngrams build only
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
DATA=${PRODFUSION_SHARED_DATA:-../shared/data}
H=$DATA/hm
V=benchmarks/variants
R=docs/results
STEPS=${STEPS:-base,ng}
TAG=${TAG:-v38}
CAT="--catalog $H/articles.csv --id-col article_id --title-col prod_name --category-col product_type_name --image-root $H/images --image-template {product_id}.jpg"
INTER="--interactions $H/transactions.csv --session-cols customer_id,t_dat --item-col article_id --time-col t_dat --pairs $H/copurchase.csv"
mkdir -p "$RUNS"
run() {  # NAME EXTRA_BUILD_ARGS VARIANTS...
  local name=$1 extra=$2; shift 2
  local m="$RUNS/$name"
  [ -d "$m" ] || /usr/bin/time -f "%e s, %M KiB" $PY -m prodfusion.cli build $CAT $INTER $extra \
    --out "$m" > "$RUNS/${name}_build.log" 2>&1
  $PY -m prodfusion.cli evaluate retrieval "$m" $INTER --workers 1 --quiet \
    --variants "$@" baseline tfidf cooc popular cooc+tfidf \
    --note "model=$m: the README's H&M build command$( [ -n "$extra" ] && echo " with $extra"), session $TAG" \
    --out "$R/hm_${name}" > "$RUNS/${name}_eval.log" 2>&1
}
SINGLES="$V/single_text.json $V/single_image.json $V/single_clicks.json $V/single_lexical.json $V/single_cooc.json"
if [[ $STEPS == *base* ]]; then
  run "default_$TAG" "" $SINGLES $V/own5.json
fi
if [[ $STEPS == *ng* ]]; then
  run "ngrams_$TAG" "--ngrams" $SINGLES $V/single_ngrams.json $V/own6.json
fi
