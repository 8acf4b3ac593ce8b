"""What ``prodfusion build`` does by default, as a library: :func:`build` makes, from a
catalog and its cleaned sessions, the model the command line makes from files — the
``lexical`` and ``cooc`` modalities, the ``category`` and ``popularity`` ones where visitors
browse within a category, the weights tuned on the interactions (slice-safe, cross-fitted),
boosted trees where they win out of fold, a weighting profile per kind of interaction where
the kinds conflict (README, "What build does by default").

``prodfusion build`` runs the same functions (:func:`auto_modalities`, :func:`auto_category`,
:func:`make_recommender`, :func:`tune_after_build`, …) on its parsed options, so the two
cannot drift apart. They read an options object with the command's option names in
snake_case (:data:`BUILD_DEFAULTS`), and their messages (on stderr) name the command-line
options: ``--tune off`` is ``tune="off"`` here.

Examples
--------
::

    from prodfusion import build, clean_sessions, read_catalog, read_interactions

    catalog = read_catalog("catalog.csv")
    sessions = clean_sessions(read_interactions("clicks.csv", time_col="ts"), catalog)
    rec = build(catalog, sessions)          # as `prodfusion build --catalog … --interactions …`
    rec.save("model")
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from prodfusion._wording import called_from, reworded, worded
from prodfusion.errors import ParameterError, ProdfusionError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["build", "BUILD_DEFAULTS", "MIN_AUTO_TUNE_CASES", "MIN_AUTO_TREE_CASES",
           "auto_modalities", "auto_category", "tune_wanted", "tune_after_build",
           "learn_trees", "tune_profiles", "make_recommender", "check_build_options",
           "planned_modalities", "check_weights_named", "prod2vec_params", "none_or",
           "parse_click_n0", "recommended_rows"]

#: ``--tune auto`` keeps the paper's equal weights below this many validation cases.
MIN_AUTO_TUNE_CASES = 100
#: ``--tune-learner auto`` learns trees from this many validation cases of the weight tuning
#: (fewer: the trees' out-of-fold gain stays inside the noise, docs/results/README.md).
MIN_AUTO_TREE_CASES = 1000

#: :func:`build`'s options and their defaults: ``prodfusion build``'s (a test holds them
#: equal), by the option's name in snake_case.
BUILD_DEFAULTS: dict[str, Any] = {
    "text": "default", "image": "default", "no_clicks": False, "lexical": "auto",
    "cooc": True, "cooc_decay": None, "category_modality": "auto", "category_paths": False,
    "popularity": "auto",
    "ngrams": False, "backfill": "popular", "one_per_group": False, "recommend_rows": None,
    "on_offer_cols": None,
    "fusion": "intermediate", "modalities": None,
    "normalize": False, "weights": None, "calibration": None, "tune": "auto",
    "tune_learner": "auto", "tune_objective": "ndcg@15", "tune_repeats": 3,
    "tune_cross_fit": "on", "tune_validate_on": "all", "tune_profiles": "auto",
    "click_n0": None, "late_k": None, "cluster_late": False, "p2v_dim": 512,
    "p2v_window": 5, "p2v_epochs": 20, "p2v_min_count": 1, "workers": None, "seed": 0,
    "vector_dtype": "float32", "batch_size": 64, "index": "auto",
}


def _say(*parts) -> None:
    """A line of the build's on stderr, its options worded for the caller
    (:func:`prodfusion._wording.worded`: ``tune="off"`` from :func:`build`)."""
    print(*(worded(str(p)) for p in parts), file=sys.stderr)


def none_or(s):
    """``None`` for ``"none"``, ``"off"``, ``""`` or None (an option switched off), else ``s``."""
    return None if s is None or str(s).lower() in ("none", "off", "") else s


def parse_click_n0(spec) -> tuple[float, str] | None:
    """``"10"`` → ``(10.0, "ratio")``, ``"min:5"`` → ``(5.0, "min")``, None → None.

    >>> parse_click_n0("10"), parse_click_n0("min:5"), parse_click_n0(None)
    ((10.0, 'ratio'), (5.0, 'min'), None)
    """
    if spec is None or isinstance(spec, tuple):
        return spec
    from prodfusion.fusion.weighting import parse_n0

    n0, form = parse_n0(str(spec), "--click-n0")
    if n0 is None:
        raise ParameterError("--click-n0 takes a number or min:K (leave it out for no click "
                             "confidence)")
    return n0, form


def prod2vec_params(opts, rec):
    """The model's Prod2Vec settings with the options' ``p2v_*``, ``workers`` overrides (what
    a tuning retrains on its fitting parts with)."""
    from dataclasses import replace

    from prodfusion.recommender import Prod2VecParams

    base = getattr(rec, "prod2vec", None) or Prod2VecParams()
    changes = {}
    for opt, name in (("p2v_epochs", "epochs"), ("p2v_dim", "vector_size"),
                      ("p2v_min_count", "min_count"), ("p2v_seed", "seed"),
                      ("workers", "workers")):
        v = getattr(opts, opt, None)
        if v is not None:
            changes[name] = v
    return replace(base, **changes)


def planned_modalities(opts, sessions, lexical, cooc) -> list[str]:
    """The modalities this build will try to make, from its options alone."""
    planned = {"text": none_or(opts.text) is not None, "image": none_or(opts.image) is not None,
               "clicks": not opts.no_clicks and sessions is not None,
               "lexical": lexical is not None, "cooc": bool(cooc),
               "category": bool(opts.category_modality), "popularity": bool(opts.popularity),
               "ngrams": bool(opts.ngrams)}
    wanted = set(opts.modalities) if opts.modalities else None
    return [m for m, on in planned.items() if on and (wanted is None or m in wanted)]


def check_weights_named(opts, modalities, why: str) -> None:
    """Refuse ``--weights`` naming a modality outside ``modalities`` (it would be dropped,
    and the modalities it does not name weighted 0, without a word)."""
    if opts.weights is None:
        return
    from prodfusion.fusion.weights import parse_weights

    extra = [m for m in parse_weights(opts.weights, "--weights") if m not in modalities]
    if extra:
        raise ParameterError(
            f"--weights names {extra}, which {why} (it has {list(modalities)}); name only "
            "those, or drop --weights to weigh them by default.")


def interactions_given(opts) -> bool:
    return bool(opts.interactions or opts.pairs)


def auto_modalities(opts, sessions) -> tuple[str | None, bool]:
    """Resolve ``--lexical auto`` and ``--cooc auto`` (the defaults).

    ``lexical``: the titles' character n-gram TF-IDF wherever the text modality is built —
    cheap, language-agnostic, and the strongest simple title baseline on catalogs we did not
    tune on. ``cooc``: the co-occurrence counts wherever cleaned sessions are given — the
    strongest simple click baseline. Both are only *available* to the fusion: the tuning
    that follows the build (``--tune``) weighs them, possibly at 0. An explicit
    ``--modalities`` list without them leaves them out.
    """
    wanted = set(opts.modalities) if opts.modalities else None
    lexical = opts.lexical
    if lexical == "auto":
        text_on = none_or(opts.text) is not None and (wanted is None or "text" in wanted)
        lexical = "tfidf" if text_on and (wanted is None or "lexical" in wanted) else None
    else:
        lexical = none_or(lexical)
    cooc = opts.cooc
    if cooc is None:
        cooc = (sessions is not None and hasattr(sessions, "frame")
                and (wanted is None or "cooc" in wanted))
    return lexical, bool(cooc)


def _stay_in_a_parent(catalog, sessions, leaf, values: list, sep: str | None) -> tuple:
    """Where the category column holds paths (``values`` with ``sep``, :func:`path_sep`)
    and the steps do not stay in one leaf often enough: the deepest level of the paths
    within which they do (:func:`~prodfusion.data.stats.sessions_stay_in_category` on the
    paths cut there) and the words saying so; else ``(leaf, "")``. The modality scores
    sibling categories by the levels they share (:mod:`prodfusion.fusion.category`), so such
    browsing is what it ranks."""
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.data.stats import sessions_stay_in_category
    from prodfusion.fusion.category import path_prefixes

    if sep is None:
        return leaf, ""
    deepest = max((sum(1 for p in str(v).split(sep) if p.strip()) for v in values
                   if v is not None), default=0)
    for depth in range(deepest - 1, 0, -1):
        cut = Catalog(catalog.frame.with_columns(
            pl.Series("category", path_prefixes(values, sep, depth), pl.Utf8)))
        b = sessions_stay_in_category(cut, sessions)
        if b.holds:
            return b, (f" within their paths' first {depth} level{'s' * (depth > 1)} "
                       f"({sep!r}; {leaf.share or 0:.0%} in one whole path)")
    return leaf, ""


def auto_category(opts, catalog, sessions) -> None:
    """Resolve ``--category-modality`` and ``--popularity`` (``auto``, ``on``, ``off``) into
    booleans on ``opts``, saying why where ``auto`` decided.

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
    wanted = set(opts.modalities) if opts.modalities else None
    category, popularity = opts.category_modality, opts.popularity
    values, sep = None, None  # the category column, and its paths' separator if it has one
    if catalog.has_categories and (wanted is None or "category" in wanted) \
            and opts.category_modality != "off":
        import polars as pl

        from prodfusion.fusion.category import path_sep

        values = catalog.frame["category"].cast(pl.Utf8).to_list()
        sep = path_sep(values)
    if category == "auto":
        category = "off"
        has_clicks = sessions is not None and hasattr(sessions, "frame")
        if catalog.has_categories and sessions is not None and not has_clicks:
            _say("categories: a --corpus file's sessions are not read here, so the share "
                  "that stays in one category is not judged: no category modality "
                  "(--category-modality on: build it)")
        if catalog.has_categories and has_clicks and (wanted is None or "category" in wanted):
            from prodfusion.data.stats import (
                CATEGORY_AUTO_SHARE,
                CATEGORY_AUTO_STEPS,
                sessions_stay_in_category,
            )

            b = sessions_stay_in_category(catalog, sessions)
            paths = ""
            if not b.holds and getattr(opts, "category_paths", False):  # within a parent?
                b, paths = _stay_in_a_parent(catalog, sessions, b, values, sep)
            category = "on" if b.holds else "off"
            kappa = b.beyond_chance
            why = (f"fewer than {CATEGORY_AUTO_STEPS} steps to judge by"
                   if b.steps < CATEGORY_AUTO_STEPS else
                   "one category for every step: it tells nothing" if kappa is None else
                   f"under {CATEGORY_AUTO_SHARE:.0%} of the way from chance to always")
            _say(f"categories: {b.share or 0:.0%} of the sessions' {b.steps:,} steps between "
                  f"two products with a category (column {opts.category_col!r}) stay in one"
                  + paths
                  + (f", against {b.chance:.0%} by chance" if b.chance is not None else "")
                  + ": "
                  + ("the category and popularity modalities are built for the tuning to "
                     "weigh (--category-modality off: not)" if category == "on" else
                     why + ", so no category modality (--category-modality on: build it)"))
    if values is not None:  # how the category's values are read
        from prodfusion.fusion.category import PATH_SEP

        asked = getattr(opts, "category_paths", False)
        if sep is not None and not asked:
            _say(f"categories: the values look like paths ({sep!r}), each read as one label; "
                 "--category-paths scores sibling categories by the levels they share (on "
                 "H&M it did not help: docs/benchmarks/category_paths.md)")
        elif sep is None and asked:
            _say(f"categories: --category-paths, but most values hold no {PATH_SEP!r}: each "
                 "is read as one label")
    if popularity == "auto":
        popularity = "on" if category == "on" and opts.category_modality == "auto" and (
            wanted is None or "popularity" in wanted) else "off"
    opts.category_modality, opts.popularity = category == "on", popularity == "on"


def tune_wanted(opts) -> bool:
    """Whether ``build`` tunes the weights (``--tune auto|on|off``).

    ``auto`` (default) tunes when interactions are given (not a ``--corpus``: tuning splits
    cleaned sessions) and nothing the tuning would replace was asked for: no ``--weights``,
    ``--calibration`` or ``--click-n0``, and intermediate fusion (tuning makes the model's
    fusion intermediate).
    """
    if opts.tune == "off":
        return False
    if opts.tune == "on":
        if opts.corpus or not interactions_given(opts):
            raise ParameterError(
                "--tune on: tuning needs --interactions and/or --pairs (a --corpus file "
                "cannot be split into held-out sessions); drop --tune on, or tune later "
                "with `prodfusion tune MODEL_DIR --interactions ...`.")
        return True
    return (interactions_given(opts) and not opts.corpus and opts.fusion == "intermediate"
            and opts.weights is None and opts.calibration is None and opts.click_n0 is None)


def tune_after_build(opts, rec, interactions: tuple | Callable[[], tuple]
                     ) -> tuple[dict | None, dict | None]:
    """``prodfusion tune`` on the build's own interactions, before the folder is written;
    returns the weights' tuning record and what ``--tune-learner`` did (:func:`learn_trees`).
    ``interactions``: ``(sessions, pairs)`` cleaned, or a function returning them (called
    only when the build tunes; ``prodfusion build`` reads ``--interactions`` / ``--pairs``
    again, ``benchmarks/rolling_origin.py`` passes each test window's older sessions).

    With ``--tune auto`` a tuning the data cannot support (no held-out case left after
    cleaning, or fewer than :data:`MIN_AUTO_TUNE_CASES` validation cases) leaves the
    paper's equal weights and a warning; with ``--tune on`` the first is an error (nothing
    is written) and the second is tuned anyway.
    """
    if not tune_wanted(opts):
        return None, None
    if opts.tune == "auto" and len(rec.available_modalities) < 2:
        return None, None  # one modality: nothing to weigh
    from prodfusion.evaluation.tuning import tune_weights
    from prodfusion.model_state import apply_tuning

    _say("tuning the fusion weights on held-out interactions (`--tune off` skips this; "
          "`prodfusion tune` re-tunes later)")
    try:
        sessions, pairs = interactions() if callable(interactions) else interactions
        res = tune_weights(rec, sessions=sessions, pairs=pairs, objective=opts.tune_objective,
                           validate_on=opts.tune_validate_on, prod2vec=prod2vec_params(opts, rec),
                           repeats=opts.tune_repeats, cross_fit=opts.tune_cross_fit == "on",
                           **({} if opts.cooc_decay is None else {"cooc_decays": ()}),
                           progress=True)
        n = res["split"]["n_validation_cases"]
        if opts.tune == "auto" and n < MIN_AUTO_TUNE_CASES:
            raise ProdfusionError(
                f"only {n:,} validation cases; --tune auto needs {MIN_AUTO_TUNE_CASES} for "
                "a choice that is not noise (--tune on tunes anyway)")
    except ProdfusionError as e:
        if opts.tune == "on":
            raise ProdfusionError(f"--tune on: {e} Nothing was written.") from e
        _say(f"warning: not tuned ({e}); the model keeps the paper's equal weights. Tune "
              "it later with `prodfusion tune MODEL_DIR --interactions ...`, or pass "
              "--tune off to skip.")
        return None, None
    apply_tuning(rec, res, sessions=sessions, pairs=pairs)
    wanted = getattr(opts, "tune_profiles", "off")
    conflict = wanted == "auto" and bool(res.get("slice_safe_but_sources"))
    if conflict:
        _say("the kinds of interaction want different weightings (no weighting kept each "
              "at its best single modality): tuning one weighting profile per kind "
              "(--tune-profiles off skips this)")
    if wanted == "on" or conflict:
        tune_profiles(opts, rec, sessions, pairs)
    return res, learn_trees(opts, rec, res, sessions, pairs)


def learn_trees(opts, rec, res: dict, sessions, pairs) -> dict | None:
    """``--tune-learner``: boosted trees over the tuned weights (``prodfusion tune --learner
    gbdt``), made the model's weighting where they beat, out of fold, the weights and every
    modality alone — ``auto``: by more than 1.96 standard errors, and only learnt from
    :data:`MIN_AUTO_TREE_CASES` validation cases; ``gbdt``: by any margin, always learnt.
    Returns ``{"adopted": bool, "record": the trees' tuning record or None, "why": str}``
    (None for ``off``); the weights stay the model's when the trees are not adopted."""
    mode = getattr(opts, "tune_learner", "off")
    if mode == "off":
        return None
    n = res["split"]["n_validation_cases"]
    if mode == "auto" and n < MIN_AUTO_TREE_CASES:
        return {"adopted": False, "record": None,
                "why": f"{n:,} validation cases; --tune-learner auto learns trees from "
                       f"{MIN_AUTO_TREE_CASES:,} (--tune-learner gbdt learns them anyway)"}
    _say("learning boosted trees over the tuned weights (`--tune-learner off` skips this; "
          "`prodfusion tune MODEL --learner gbdt` learns them later)")
    try:  # adopted (the model's weighting) only when kept: above the bar out of fold
        tr = rec.tune(sessions, pairs, learner="gbdt", objective=opts.tune_objective,
                      validate_on=opts.tune_validate_on, repeats=opts.tune_repeats,
                      prod2vec=prod2vec_params(opts, rec), progress=True,
                      min_gain_se=1.96 if mode == "auto" else 0.0)
    except ProdfusionError as e:
        if mode == "gbdt":
            raise ProdfusionError(f"--tune-learner gbdt: {e} Nothing was written.") from e
        _say(f"warning: no trees learnt ({e}); the model keeps its tuned weights.")
        return {"adopted": False, "record": None, "why": f"not learnt: {e}"}
    g, adopted = tr["gain"], tr["kept"]
    over = "the weights" if g["over"] == "linear" else g["over"]
    why = (f"gain {g['value']:+.4f} over {over} out of fold, one standard error "
           f"{g['se']:.4f}: " + ("above" if adopted else "not above")
           + (" 1.96 standard errors" if mode == "auto" else " zero"))
    return {"adopted": adopted, "record": tr, "why": why}


def tune_profiles(opts, rec, sessions, pairs) -> None:
    """``--tune-profiles``: one weighting profile per kind of interaction given, named
    ``sessions`` and ``pairs``, each tuned as ``prodfusion tune --validate-on KIND --profile
    KIND`` would on the tuned model (same co-occurrences and click counts)."""
    for kind, given in (("sessions", sessions), ("pairs", pairs)):
        if given is None:
            continue
        _say(f"tuning weighting profile {kind!r} (validated on the {kind} only)")
        try:
            rec.tune(sessions, pairs, profile=kind, objective=opts.tune_objective,
                     validate_on=kind, prod2vec=prod2vec_params(opts, rec), repeats=opts.tune_repeats,
                     cross_fit=opts.tune_cross_fit == "on", progress=True)
        except ProdfusionError as e:
            if opts.tune == "on" and opts.tune_profiles == "on":
                raise ProdfusionError(f"--tune-profiles: profile {kind!r}: {e} Nothing was "
                                      "written.") from e
            _say(f"warning: weighting profile {kind!r} not tuned ({e}).")


def check_build_options(opts) -> None:
    """Refuse, before any work, options that cannot go together or that a build would only
    find wrong after encoding (a ``--weights`` typo, ``--tune-learner gbdt`` on a build that
    tunes nothing, a bad objective or number of splits)."""
    from prodfusion.data.offer import parse_on_offer_cols
    from prodfusion.fusion.weights import parse_weights

    parse_weights(opts.weights, "--weights")  # before any encoding: a typo fails fast
    opts.on_offer_cols = parse_on_offer_cols(getattr(opts, "on_offer_cols", None), "build")
    if opts.tune_learner == "gbdt" and not tune_wanted(opts):
        raise ParameterError(
            "--tune-learner gbdt learns trees over the weights the build tunes, and this "
            "build tunes none: give --interactions and/or --pairs (not --corpus), and no "
            "--weights, --calibration, --click-n0 or other fusion (or --tune on).")
    if opts.cooc_decay is not None:
        from prodfusion.fusion.cooc import check_decay

        check_decay(opts.cooc_decay, "--cooc-decay")
    if opts.tune != "off":
        from prodfusion.evaluation.tuning import MAX_REPEATS, parse_objective

        parse_objective(opts.tune_objective, "--tune-objective")
        if not 1 <= opts.tune_repeats <= MAX_REPEATS:  # tune_weights's bounds, before any work
            raise ParameterError(f"--tune-repeats must be an int >= 1 and <= {MAX_REPEATS}, "
                                 f"got {opts.tune_repeats}.")
    if not tune_wanted(opts) and opts.tune_profiles == "on":  # before any work, too
        raise ParameterError(
            "--tune-profiles tunes a weighting per kind of interaction after the model's own "
            "tuning, which this build does not do (it needs --interactions and/or --pairs, "
            "intermediate fusion, and no --tune off, --weights, --calibration or --click-n0).")


def recommended_rows(opts, catalog, where: str = "build") -> np.ndarray | None:
    """The products ``--recommend-rows COLUMN=VALUE[,VALUE…]`` lets lists show (a bool per
    catalog row; None: every one), before any work: a classifieds site's or marketplace's
    archive, sold and expired listings included so that their clicks teach the model, of
    which only the ``status=active`` ones are recommended. The others are retired
    (:meth:`~prodfusion.recommender.Recommender.retire`): vectors, clicks and their own lists
    kept. A spec no product matches (a typo) is refused, naming the column's values."""
    spec = getattr(opts, "recommend_rows", None)
    if not spec:
        return None
    from prodfusion.data.interactions import format_keep_rows, parse_keep_rows

    spec = parse_keep_rows(spec, where, "recommend_rows")
    names = {getattr(opts, o, None): std for o, std in (
        ("id_col", "product_id"), ("title_col", "title"), ("category_col", "category"),
        ("group_col", "group")) if getattr(opts, o, None)}
    mask = catalog.rows_where(spec, where, names=names)
    if not mask.any():
        import polars as pl

        held = []
        for col in spec:
            top = catalog.frame[col if col in catalog.frame.columns else names[col]].cast(
                pl.Utf8).str.strip_chars().value_counts(sort=True).head(6).rows()
            held.append(f"column {col!r} holds " + ", ".join(f"{v!r} ({n:,})" for v, n in top))
        raise ParameterError(
            f"--recommend-rows: no product of {catalog.source} has "
            f"{format_keep_rows(spec, None)}, so none would be recommended; "
            f"{'; '.join(held)}. Nothing was written.")
    return mask


def make_recommender(opts, catalog, sessions, *, cache_dir=None, index_settings=None,
                     recommended=None):
    """The build's :class:`~prodfusion.recommender.Recommender`, built on ``catalog`` and the
    cleaned ``sessions`` (None: none): :func:`auto_modalities` and :func:`auto_category`
    decide what it holds, and where titles are encoded twice (``text`` and ``lexical``) and
    no weighting was asked for, they share the title's weight (the untuned weights).
    ``recommended``: :func:`recommended_rows`'s mask (the other products are retired)."""
    from prodfusion.index.base import IndexSettings
    from prodfusion.recommender import Prod2VecParams, Recommender

    lexical, cooc = auto_modalities(opts, sessions)
    auto_category(opts, catalog, sessions)
    check_weights_named(opts, planned_modalities(opts, sessions, lexical, cooc),
                        "this build does not make")  # before any encoding
    click_n0 = parse_click_n0(opts.click_n0)
    rec = Recommender(
        text=none_or(opts.text), image=none_or(opts.image),
        clicks=None if opts.no_clicks else "prod2vec",
        fusion=opts.fusion, modalities=opts.modalities, normalize=opts.normalize,
        late_k=opts.late_k,
        prod2vec=Prod2VecParams(vector_size=opts.p2v_dim, window=opts.p2v_window,
                                epochs=opts.p2v_epochs, min_count=opts.p2v_min_count,
                                seed=opts.seed, workers=opts.workers),
        cache_dir=cache_dir,
        batch_size=opts.batch_size, seed=opts.seed, vector_dtype=opts.vector_dtype,
        weights=opts.weights, calibration=opts.calibration or "none",
        click_n0=None if click_n0 is None else click_n0[0],
        click_confidence="ratio" if click_n0 is None else click_n0[1],
        lexical=lexical, cooc=cooc, cooc_decay=opts.cooc_decay or 0.0,
        category=opts.category_modality, category_paths=opts.category_paths,
        popularity=opts.popularity, backfill=opts.backfill, ngrams=opts.ngrams,
        one_per_group=opts.one_per_group, index=opts.index, index_settings=index_settings or IndexSettings(),
        on_offer_cols=getattr(opts, "on_offer_cols", None),
        on_offer_time_format=getattr(opts, "time_format", None)
        if getattr(opts, "on_offer_cols", None) else None,
    ).build(catalog, sessions)
    if opts.weights is None and opts.calibration is None and opts.click_n0 is None:
        from prodfusion.fusion.weights import title_split_weights

        split = title_split_weights(rec.available_modalities)
        if split is not None:  # text and lexical share the title's weight (tuning may replace it)
            rec.weights = split
            rec._fusers, rec._searchers = {}, {}
    # a modality planned but not built (e.g. no photo could be read): nothing is written
    check_weights_named(opts, rec.available_modalities, "this build could not make "
                        "(see the lines above); nothing was written")
    if opts.cluster_late:
        rec.cluster_late()
    if recommended is not None and not recommended.all():
        from prodfusion.data.interactions import format_keep_rows, parse_keep_rows

        rec.retire(catalog.ids[~recommended].tolist())
        n, k = len(recommended), int(recommended.sum())
        spec = parse_keep_rows(opts.recommend_rows, "build", "recommend_rows")
        _say(f"recommended: the {k:,} of {n:,} products with {format_keep_rows(spec, None)} "
             f"(--recommend-rows); the other {n - k:,} keep their vectors, "
             "clicks and own lists but never enter a list (retired)")
        if not getattr(opts, "on_offer_cols", None):
            from prodfusion.data.offer import suggest_on_offer_cols

            if (cols := suggest_on_offer_cols(catalog)) is not None:
                named = " and ".join(repr(c) for c in cols if c)
                _say(f"hint: the catalog's {named} look like when each product was on offer: "
                     f"--on-offer-cols {','.join(c or '' for c in cols)} lets the tuning and "
                     "evaluate rank each held-out click among the products on offer at its "
                     "time by them (without it, each product's first and last clicks tell)")
    return rec


def build(catalog, sessions=None, pairs=None, *, cache_dir=None, **options):
    """The model ``prodfusion build`` makes, from a catalog and its cleaned interactions.

    Parameters
    ----------
    catalog : Catalog
        :func:`~prodfusion.data.read_catalog`'s.
    sessions : Sessions, optional
        Cleaned click sessions (:func:`~prodfusion.data.clean_sessions` of
        :func:`~prodfusion.data.read_interactions`): ``--interactions``.
    pairs : Sessions, optional
        Cleaned co-interaction pairs (:func:`~prodfusion.data.clean_sessions` of
        :func:`~prodfusion.data.read_pairs`, ``min_length=2, max_length=None``): ``--pairs``.
        Prod2Vec and the co-occurrences learn from both; the tuning splits each its own way.
        (The command interleaves the two by file row, as it cleans both files at once; here
        the sessions come first: the same training data, in another order, so Prod2Vec's
        vectors differ as another seed's would.)
    cache_dir : str or EmbeddingCache, optional
        Where encoded titles and photos are cached (default: none).
    **options
        ``prodfusion build``'s options by their snake_case names, with the same defaults
        (:data:`BUILD_DEFAULTS`): ``text="st:…"``, ``image="none"``, ``tune="off"``,
        ``weights={"text": 1, "image": 0.5}``, ``category_modality="off"``,
        ``p2v_epochs=50``, ``tune_learner="off"`` …

    Returns
    -------
    Recommender
        Built, tuned where the command would tune, not saved (``rec.save(folder)``). Its
        tuning record is ``rec.manifest_["tuning"]`` (None when untuned).

    Raises
    ------
    ParameterError
        An option the command does not have, or options that cannot go together.
    ProdfusionError
        What the command would stop on (``tune="on"`` on data that cannot be split, …).

    Examples
    --------
    >>> from prodfusion import make_synthetic
    >>> import tempfile
    >>> paths = make_synthetic(tempfile.mkdtemp(), n_products=120, n_sessions=400, seed=0)
    >>> cat = paths.read_catalog()
    >>> rec = build(cat, paths.read_sessions(cat), text="none", image="none", tune="off",
    ...             p2v_dim=8, p2v_epochs=2, workers=1)  # says on stderr what it decided
    >>> sorted(rec.available_modalities)
    ['category', 'clicks', 'cooc', 'popularity']
    """
    from prodfusion.data.catalog import check_catalog
    from prodfusion.data.sessions import Sessions, as_sessions

    check_catalog(catalog, "build()")
    sessions = as_sessions(sessions, "sessions", "build()")  # a raw log refused, named
    pairs = as_sessions(pairs, "pairs", "build()")
    for name, given in (("sessions", sessions), ("pairs", pairs)):
        if given is not None and not isinstance(given, Sessions):
            raise ParameterError(
                f"build(): {name!r} is a {type(given).__name__}; the build splits its "
                "interactions to tune, so it takes cleaned Sessions (clean_sessions(...)) or "
                "lists of product ids (a corpus file: prodfusion build --corpus).")
    unknown = sorted(set(options) - set(BUILD_DEFAULTS))
    if unknown:
        raise ParameterError(
            f"build(): unknown option(s) {unknown}; the options are prodfusion build's, by "
            f"their snake_case names: {', '.join(sorted(BUILD_DEFAULTS))}.")
    if sessions is not None and pairs is not None:
        import polars as pl

        from prodfusion.data.sessions import SESSION

        # one training set, as the command's: pair sessions apart from click sessions
        merged = Sessions(pl.concat([
            sessions.frame, pairs.frame.with_columns(
                (pl.lit("pairs\x1f") + pl.col(SESSION)).alias(SESSION))], how="vertical_relaxed"))
    else:
        merged = sessions if sessions is not None else pairs
    opts = SimpleNamespace(**{**BUILD_DEFAULTS, **options}, corpus=None,
                           interactions=sessions is not None, pairs=pairs is not None,
                           category_col="category", catalog=catalog.source)
    with called_from("python", BUILD_DEFAULTS), reworded():
        check_build_options(opts)
        recommended = recommended_rows(opts, catalog, "build()")
        rec = make_recommender(opts, catalog, merged, cache_dir=cache_dir,
                               recommended=recommended)
        tune_after_build(opts, rec, (sessions, pairs))
    return rec
