"""``prodfusion demo``: the built-in main job on a synthetic catalog with a planted answer."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prodfusion._checks import FUSION_METHODS
from prodfusion._outputs import check_replaceable_folder

__all__ = ["run_demo", "SIMILAR_RATE"]

#: Share of the demo's clicks that go to a close variant of the previous product
#: (:func:`prodfusion.data.synthetic.make_synthetic`'s ``similar_rate``).
SIMILAR_RATE = 0.5
#: Marks a folder as the demo's (its data/ and model/ are rewritten by the next demo there).
DEMO_MARKER = ".prodfusion-demo"
#: The paper's three modalities: the demo's "similar products" weighting fuses these.
PAPER_MODALITIES = ("text", "image", "clicks")
#: The weighting profile the demo tunes as ``prodfusion build`` tunes (every modality, click
#: confidence): the lists for "what visitors click next".
NEXT_CLICKS_PROFILE = "next_clicks"


def _ari(vectors: np.ndarray, labels, n_clusters: int, *, seeds=(0, 1, 2)) -> tuple[float, float]:
    """Mean ± std over seeds of :func:`prodfusion.evaluation.clustering.kmeans_ari`, with the
    evaluation's ``n_init = 10`` (with 1 restart the spread between seeds, ±0.05, hid every
    difference between modalities)."""
    from prodfusion.evaluation.clustering import kmeans_ari

    scores = [kmeans_ari(vectors, labels, n_clusters, seed=s, n_init=10, n_jobs=None)
              for s in seeds]
    return float(np.mean(scores)), float(np.std(scores))


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def run_demo(
    out_dir: str | Path | None = None,
    *,
    n_products: int = 2400,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    k: int = 15,
) -> int:
    """Generate synthetic data, build with the packaged encoders, query, and score ARI."""
    from prodfusion.data import clean_sessions, make_synthetic, read_catalog, read_interactions
    from prodfusion.fusion.base import l2_normalize
    from prodfusion.recommender import Prod2VecParams, Recommender

    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="prodfusion-demo-"))
    check_replaceable_folder(out, DEMO_MARKER, "--out")  # its data/ and model/ are rewritten
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).touch()
    _say(f"prodfusion demo: synthetic catalog with a planted answer, in {out}")
    # Visitors browse mostly inside one category and often go to a close variant of what
    # they look at (same product type): the sessions carry the planted answer too.
    paths = make_synthetic(out / "data", n_products=n_products, seed=seed,
                           similar_rate=SIMILAR_RATE, truth=True)
    catalog = read_catalog(paths.catalog)
    inter = read_interactions(
        paths.interactions, session_cols=("session_id",), item_col="product_id", time_col="timestamp"
    )
    sessions = clean_sessions(inter, catalog)
    cats = catalog.categories
    n_cat = len(set(cats))
    _say(f"  {len(catalog):,} products in {n_cat} categories, {len(sessions):,} sessions, "
         f"{sessions.n_clicks:,} clicks ({time.perf_counter() - t0:.1f}s)")

    # one Prod2Vec thread: the same weights and figures on every run (gensim is not
    # bit-reproducible on several threads, and the tuned weights moved between runs); the
    # title n-grams and co-occurrence counts that `prodfusion build` adds by default too, and
    # the category and popularity where the sessions stay in a category, as it decides
    from prodfusion.data.stats import sessions_stay_in_category

    b = sessions_stay_in_category(catalog, sessions)
    by_category = b.holds
    _say(f"  {b.share or 0:.0%} of the sessions' {b.steps:,} steps stay in one category "
         f"(against {b.chance or 0:.0%} by chance): "
         + ("the category and popularity modalities too, as `prodfusion build` adds them"
            if by_category else "no category modality"))
    rec = Recommender(
        fusion="intermediate", prod2vec=Prod2VecParams(seed=seed, workers=1),
        lexical="tfidf", cooc=True, category=by_category, popularity=by_category,
        cache_dir=cache_dir, seed=seed,
    ).build(catalog, sessions)
    rec.data_sources_ = _sources(paths, catalog)  # `prodfusion tune/evaluate MODEL` reuse them
    model_dir = rec.save(out / "model")
    _say(f"  built {model_dir} in {rec.build_info_['seconds']:.1f}s:")
    for m, e in rec.embeddings_.items():
        info = e.info or {}
        extra = ""
        if m == "image":
            extra = f", {info.get('n_missing', 0)} missing + {info.get('n_corrupt', 0)} corrupt images"
        spec = e.spec.removeprefix(f"{m}:")
        _say(f"    {m:<7} {spec:<25} dim {e.dim:>4}  present {e.n_present:,}/{len(catalog):,}{extra}")
    if getattr(rec, "cooc_", None) is not None:
        _say(f"    cooc    {'session co-occurrences':<25} {rec.cooc_.matrix.nnz // 2:>8,} pairs  "
             f"present {rec.cooc_.n_present:,}/{len(catalog):,}")
    if getattr(rec, "category_", None) is not None:
        _say(f"    category {'same category: 1, else 0':<24} {rec.category_.info['n_categories']:>8,} "
             f"values present {rec.category_.n_present:,}/{len(catalog):,}")
    if getattr(rec, "popularity_", None) is not None:
        _say(f"    popularity {'training clicks, log':<22} {rec.popularity_.info['n_clicked']:>8,} "
             f"clicked present {rec.popularity_.n_present:,}/{len(catalog):,}")

    # ------------------------------------------------------------ learned weights
    # "similar products": the paper's three modalities, tuned without click confidence (a
    # popularity prior), so that the lists stay inside the planted categories
    paper = tuple(m for m in PAPER_MODALITIES if m in rec.embeddings_)
    # the demo scores its choices on the held-out next clicks below, so it skips the
    # cross-fitted validation gain (tune_weights' cross_fit) and its searches
    tuned = rec.tune(sessions, objective="ndcg@15", modalities=paper, n0_grid=(None,),
                     max_queries=1000, seed=seed, cross_fit=False)
    _say(f"  similar products: {', '.join(paper)} tuned on held-out next clicks "
         f"({tuned['split']['n_validation_cases']:,} validation cases, {tuned['seconds']:.0f}s): "
         "weights "
         + ", ".join(f"{m}={w:.2f}" for m, w in tuned["weights"].items())
         + f", calibration {tuned['calibration']}; validation nDCG@15 "
         f"{tuned['validation_score']:.3f} (equal weights "
         f"{tuned['reference_scores']['equal weights (calibration none)']:.3f}, best single "
         + max((v, k) for k, v in tuned["reference_scores"].items() if k.endswith("alone"))[1]
         + f" {max(v for k, v in tuned['reference_scores'].items() if k.endswith('alone')):.3f})")
    # "what visitors click next": every modality and click confidence, as `build` tunes
    nxt = rec.tune(sessions, profile=NEXT_CLICKS_PROFILE, objective="ndcg@15",
                   max_queries=1000, seed=seed, cross_fit=False)
    rec.save(model_dir)
    _say(f"  what visitors click next: every modality with click confidence, as `prodfusion "
         f"build` tunes, kept as profile '{NEXT_CLICKS_PROFILE}' ({nxt['seconds']:.0f}s): weights "
         + ", ".join(f"{m}={w:.2f}" for m, w in nxt["weights"].items())
         + f", calibration {nxt['calibration']}, n0 "
         + ("none" if nxt["n0"] is None else
            ("min:" if nxt.get("confidence") == "min" else "") + f"{nxt['n0']:g}")
         + f"; validation nDCG@15 {nxt['validation_score']:.3f}")

    _next_clicks(rec, sessions, paper, k=k, seed=seed, shop=paths)

    # ------------------------------------------------------------ recommendations
    titles = catalog.titles
    ids = catalog.ids
    rng = np.random.default_rng(seed)
    full = np.ones(len(catalog), dtype=bool)
    for e in rec.embeddings_.values():
        full &= e.mask
    picks = [int(rng.choice(np.flatnonzero(full)))]
    for m in ("image", "clicks"):
        if m in rec.embeddings_ and (~rec.embeddings_[m].mask).any():
            picks.append(int(rng.choice(np.flatnonzero(~rec.embeddings_[m].mask))))
    for row in picks:
        lacks = [m for m, e in rec.embeddings_.items() if not e.mask[row]]
        note = f" (no {', '.join(lacks)}: cold start)" if lacks else ""
        _say(f"\nmost similar to {ids[row]} '{titles[row]}' [{cats[row]}]{note} — tuned intermediate fusion:")
        rids, scores = rec.similar(ids[row], k=k)
        rrows = catalog.rows_of(rids)
        same = sum(cats[r] == cats[row] for r in rrows)
        for i, (r, s) in enumerate(zip(rrows, scores, strict=True)):
            if i < 5:
                _say(f"  {i + 1:>2}. {ids[r]}  {s:.3f}  [{cats[r]}] {titles[r]}")
        _say(f"  … {same}/{len(rids)} of the top {k} share its category")

    # ------------------------------------------------------------ ARI vs planted categories
    _say(f"\nAdjusted Rand Index of k-means++ (k={n_cat}) against the planted categories "
         "(mean ± std over 3 seeds):")
    cat_arr = np.asarray(cats)
    for m in paper:
        e = rec.embeddings_[m]
        x = l2_normalize(e.vectors, e.mask)[e.mask]
        mu, sd = _ari(x, cat_arr[e.mask], n_cat)
        _say(f"  {m:<28} {mu:.3f} ± {sd:.3f}   ({e.n_present:,} products)")
    from prodfusion.fusion import EarlyFusion, Weighting

    tuned_vecs = EarlyFusion(modalities=paper, weighting=rec.weighting(paper)).fit(
        rec.embeddings_)  # the tuned weights as block scales: a vector space k-means can use
    present = tuned_vecs.present
    mu, sd = _ari(tuned_vecs.representation()[present], cat_arr[present], n_cat)
    _say(f"  fused: {'tuned weights (blocks)':<21} {mu:.3f} ± {sd:.3f}   ({int(present.sum()):,} products)")
    for method in ("early", "intermediate"):
        f = rec.fuser(method, paper, weighting=Weighting()) if method != "early" \
            else _early_normalized(rec, paper)
        x = f.representation()[f.present]
        mu, sd = _ari(x, cat_arr[f.present], n_cat)
        label = "early (L2-normalised)" if method == "early" else method
        _say(f"  fused: {label:<21} {mu:.3f} ± {sd:.3f}   ({int(f.present.sum()):,} products)")
    # Late fusion has no vector space; score its top-k category precision instead. Every
    # product is a query; a modality alone serves only the products that have it, so the tuned
    # fusion is also shown on those same queries (like for like).
    queries = np.arange(len(catalog))

    def shares(f) -> tuple[np.ndarray, np.ndarray]:
        r, _ = f.topk(queries, k)
        valid = r >= 0
        return (cat_arr[np.where(valid, r, 0)] == cat_arr[:, None]) & valid, valid

    tuned_same, tuned_valid = shares(rec.fuser("intermediate", paper))
    lines = []  # computed first: late fusion's clustering logs would cut the table
    for m in paper:
        same, valid = shares(rec.fuser("intermediate", [m]))
        served = valid.any(axis=1)
        p = same.sum() / max(valid.sum(), 1)
        pt = tuned_same[served].sum() / max(tuned_valid[served].sum(), 1)
        lines.append(f"  {m + ' alone':<22} {p:.4f} on {int(served.sum()):,} queries   "
                     f"tuned fusion on them {pt:.4f}")
    for method in FUSION_METHODS:
        same, valid = shares(rec.fuser(method, paper, weighting=Weighting()))
        lines.append(f"  {method + ' (paper)':<22} {same.sum() / max(valid.sum(), 1):.4f} on "
                     f"{int(valid.any(axis=1).sum()):,} queries")
    lines.append(f"  {'tuned intermediate':<22} "
                 f"{tuned_same.sum() / max(tuned_valid.sum(), 1):.4f} on "
                 f"{int(tuned_valid.any(axis=1).sum()):,} queries")
    nxt_same, nxt_valid = shares(rec.searcher(
        "intermediate", rec.available_modalities, rec.profile_weighting(NEXT_CLICKS_PROFILE)))
    lines.append(f"  {'profile ' + NEXT_CLICKS_PROFILE:<22} "
                 f"{nxt_same.sum() / max(nxt_valid.sum(), 1):.4f} on "
                 f"{int(nxt_valid.any(axis=1).sum()):,} queries")
    _say(f"\nshare of top-{k} recommendations in the query's category, every product a query "
         "(a modality alone serves only the products that have it: the tuned fusion on the "
         "same queries beside it):")
    for line in lines:
        _say(line)
    _say("(paper = equal weights, raw cosines; tuned = the learned weights above; "
         f"{NEXT_CLICKS_PROFILE} = the profile tuned for next clicks)")
    _say(f"\ndone in {time.perf_counter() - t0:.1f}s. Try: prodfusion similar {model_dir} "
         f"{ids[picks[0]]}  (add --profile {NEXT_CLICKS_PROFILE} for what visitors click next)"
         f"\n  or both on one web page: prodfusion serve {model_dir} --page-profile "
         f"{NEXT_CLICKS_PROFILE}")
    sys.stdout.flush()
    return 0


def _sources(paths, catalog) -> dict:
    """The model folder's record of its data, as ``prodfusion build --catalog … --image-col
    image --interactions … --time-col timestamp`` writes it for the same files read the same
    way, so that ``prodfusion tune|evaluate MODEL`` need no options and read the very
    sessions the demo tuned on."""
    from argparse import Namespace

    from prodfusion.sources import DEFAULT_PAIR_COLS, sources_from_args

    return sources_from_args(Namespace(
        catalog=str(paths.catalog), id_col="product_id", title_col="title", image_col="image",
        category_col="category", group_col=None, image_root=str(Path(paths.catalog).parent),
        image_template=None, interactions=str(paths.interactions), pairs=None,
        session_cols=["session_id"], item_col="product_id", time_col="timestamp", sep=None,
        pair_cols=list(DEFAULT_PAIR_COLS), min_session_length=2, max_session_length=200,
        session_gap=None, keep_rows=None),
        catalog)


#: The simple lists the demo's next clicks are compared with (the catalog has categories).
REFERENCES = ("popular", "tfidf", "cooc", "cooc+category", "popular+category")


def _next_clicks(rec, sessions, paper, *, k: int, seed: int, shop=None) -> dict:
    """The held-out next clicks that tuning set aside, scored for both tuned weightings beside
    each of the paper's modalities alone and the simple references (``evaluate retrieval``'s
    protocol and rows); with ``shop`` (written with ``truth=True``), also the shop's own
    odds, what no list can expect to beat
    (:func:`~prodfusion.data.synthetic.next_click_probabilities`)."""
    from prodfusion.evaluation.retrieval import evaluate_retrieval
    from prodfusion.variants import Variant

    every = tuple(rec.available_modalities)
    nxt = f"profile {NEXT_CLICKS_PROFILE}"
    res = evaluate_retrieval(
        rec, sessions=sessions, k=k, seed=seed, progress=False,
        variants=[Variant("intermediate", paper, name="tuned fusion"),
                  Variant("intermediate", every, profile=NEXT_CLICKS_PROFILE, name=nxt),
                  *(Variant("intermediate", (m,), paper=True, name=f"{m} alone") for m in paper),
                  *REFERENCES])
    rows = {r["variant"]: r for r in res["rows"] if r["slice"] == "all"}
    n = res["heldout"]["sessions"]["n"]
    _say(f"\nheld-out next clicks (the last click of {n:,} test sessions: tuning never read "
         f"them, Prod2Vec and co-occurrences recounted without them; {res['seconds']:.0f}s), "
         f"HitRate@{k} / nDCG@{k}:")
    for name, r in rows.items():
        ref = " (reference)" if name in REFERENCES else ""
        _say(f"  {name + ref:<22} {r['hit_rate']['value']:.3f} / {r['ndcg']['value']:.3f}")
    if shop is not None and shop.truth is not None:
        from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks
        from prodfusion.evaluation.split import split_interactions

        held = split_interactions(rec.catalog, sessions, seed=seed).heldout["sessions"]
        t = np.asarray(held.target_rows)
        if len(t) == n:  # the cases evaluate_retrieval scored
            ahead, ties, _ = tie_aware_ranks([shop.next_click_probabilities(held.query_rows)], t)
            label = "the shop's own odds"
            _say(f"  {label:<22} "
                 f"{tie_aware_metric(ahead, ties, k, 'hitrate').mean():.3f} / "
                 f"{tie_aware_metric(ahead, ties, k, 'ndcg').mean():.3f}  (the probability "
                 "the generator gave each product of being clicked next: what no list can "
                 "expect to beat)")
    for d in res["paired"]:
        if d["variant"] in ("tuned fusion", nxt) and (d["slice"], d["kind"]) == (
                "all", "best reference"):
            nd = d["ndcg"]
            _say(f"  {d['variant']} minus {d['comparator']} (the best reference): nDCG@{k} "
                 f"{nd['value']:+.3f} [{nd['ci_lo']:+.3f}, {nd['ci_hi']:+.3f}], {d['verdict']}")
    _say(f"  (the tuned fusion ranks similar products with {', '.join(paper)} only, and stays in "
         f"the planted categories; the profile {NEXT_CLICKS_PROFILE} adds co-occurrence counts, "
         "title n-grams and click confidence"
         + (", and the category and popularity" if "category" in rec.available_modalities
            else "")
         + ", as `prodfusion build` does by default: README, 'What build does by default')")
    return res


def _early_normalized(rec, modalities):
    from prodfusion.fusion import EarlyFusion

    return EarlyFusion(modalities=modalities, normalize=True).fit(rec.embeddings_)
