"""``prodfusion tune MODEL_DIR``: learn the fusion weights on held-out interactions."""

from __future__ import annotations

from prodfusion._checks import PROTOCOLS

__all__ = ["add_tune_parser"]


def _n0_list(s: str) -> list[float | str | None]:
    """``"none,2,10,min:5"`` → ``[None, 2.0, 10.0, "min:5"]`` (argparse type)."""
    import argparse

    from prodfusion.errors import ParameterError
    from prodfusion.fusion.weighting import n0_entry

    try:
        return [n0_entry("none" if p.strip().lower() == "off" else p.strip())
                for p in s.split(",") if p.strip()]
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _gain_se(s: str) -> float:
    """``--min-gain-se``: a finite number >= 0 (argparse type)."""
    import argparse
    import math

    try:
        z = float(s)
    except ValueError:
        z = math.nan
    if not math.isfinite(z) or z < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {s!r}")
    return z


def _cold_bonus(s: str) -> float | str:
    """``--cold-bonus``: ``auto`` or a finite number >= 0 (argparse type)."""
    import argparse
    import math

    if s == "auto":
        return s
    try:
        b = float(s)
    except ValueError:
        b = float("nan")
    if not math.isfinite(b) or b < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a finite number >= 0, got {s!r}")
    return b


def _decay_list(s: str) -> list[float]:
    import argparse

    from prodfusion.errors import ParameterError
    from prodfusion.fusion.cooc import check_decay

    if s.strip().lower() in ("none", "off", ""):
        return []
    try:
        return [check_decay(float(p), "--cooc-decays") for p in s.split(",") if p.strip()]
    except (ValueError, ParameterError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def tune_options(args, rec) -> dict:
    """``Recommender.tune``'s keyword arguments from parsed ``prodfusion tune`` options (also
    what ``benchmarks/rolling_origin.py`` tunes each test window with)."""
    from prodfusion.cli.evaluate_steps import _p2v

    decays = getattr(args, "cooc_decays_given", None)  # None: tune()'s default
    return dict(
        objective=args.objective, modalities=args.modalities,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction, seed=args.eval_seed,
        step=args.step, calibrations=args.calibrations, n0_grid=args.n0,
        max_queries=args.max_queries, min_weight=args.min_weight, protocol=args.protocol,
        n_candidates=args.n_candidates, validate_on=args.validate_on,
        repeats=args.repeats, rolling=args.rolling, selection=args.selection,
        slice_safe=not args.no_slice_safe, min_slice_cases=args.min_slice_cases,
        slice_noise=args.slice_noise,
        tune_fallback=not args.plain_fallback, shrink=args.shrink,
        cross_fit=not args.no_cross_fit, single_if_worse=not args.keep_mix,
        **({} if decays is None else {"cooc_decays": tuple(decays)}),
        prod2vec=_p2v(args, rec),
        progress=not args.quiet,
    )


def cmd_tune(args) -> int:
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.cli.options import apply_on_offer_option, fill_interactions_from_record
    from prodfusion.errors import ParameterError
    from prodfusion.fusion.weighting import format_n0
    from prodfusion.fusion.weights import format_weights
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model)
    apply_on_offer_option(args, rec, "tune")  # before any work; recorded with the tuning
    fill_interactions_from_record(args, rec)  # what the build read, unless given
    if not (args.interactions or args.pairs):
        raise ParameterError(
            "tune needs interactions to learn from: pass --interactions (sessions, split by "
            "time) and/or --pairs (co-interaction pairs); the model folder records none."
        )
    sessions, pairs = load_interactions(args, rec.catalog)
    _note_category(rec, sessions)
    if args.learner == "gbdt":
        return _tune_trees(args, rec, sessions, pairs)
    res = rec.tune(sessions, pairs, profile=args.profile, **tune_options(args, rec))
    if not args.dry_run:
        rec.save(args.model)  # atomic: a temp folder renamed over the old one
    w = format_weights(res["weights"])
    imp = f"@{res['impute']:g}" if res.get("impute") else ""
    decay = f", cooc decay {res['cooc_decay']:g}" if "cooc_decay" in res else ""
    what = f" profile {args.profile!r}" if args.profile else ""
    print(f"tuned {args.model}{what}{' (dry run: not written)' if args.dry_run else ''}: "
          f"intermediate fusion, weights {w}, calibration {res['calibration']}{imp}, "
          f"n0 {format_n0(res['n0'], res.get('confidence', 'ratio'))}{decay}")
    if args.profile and not args.dry_run:
        print(f"  the model's default weighting is unchanged; rank by this one with "
              f"`prodfusion similar {args.model} ID --profile {args.profile}`")
    shr = res.get("shrinkage")
    if shr is not None and not shr["lambda"]:
        print("  not shrunk: every step towards equal weights scored more than one standard "
              "error below these on validation")
    elif shr is not None:
        print(f"  shrunk {shr['lambda']:.0%} of the way from "
              + format_weights(dict(zip(res["weights"], shr["from"], strict=True)))
              + f" to equal weights (validation {shr['score']:.4f} against "
              f"{shr['score_from']:.4f}, one standard error {shr['se']:.4f})")
    if isinstance(res["fallback"], dict):
        fb = format_weights(res["fallback"])
        print(f"  fallback for pairs sharing no weighted modality: {fb}")
    print(f"  validation {res['objective']} {res['validation_score']:.4f} on "
          f"{res['split']['n_validation_cases']:,} cases over {res['search']['repeats']} "
          f"split(s) ({res['n_configs']} configurations, {res['seconds']:.1f}s); for reference:")
    for name, v in res["reference_scores"].items():
        print(f"    {name:<36} {v:.4f}")
    for line in (gain_line(res),
                 unconstrained_line(res, free_command(getattr(args, "argv", None)
                                                      or ["tune", str(args.model)]))):
        if line:
            print(line)
    print(f"  by validation slice (tuned vs the best single modality"
          f"{'' if res['slice_safe'] else '; NOT met in every slice of '}"
          f"{'' if res['slice_safe'] else str(res['search']['min_slice_cases']) + '+ cases'}):")
    for line in slice_lines(res, res["search"].get("slice_noise", 0)):
        print(line)
    for line in slice_notes(res):
        print(line)
    if res.get("slice_safe_but_sources"):
        print("  no weighting kept every source (kind of interaction) at its best single "
              "modality: this one keeps the worst of them at "
              f"{res.get('worst_source_share', float('nan')):.0%} of it. To serve one kind, "
              "tune for it: --validate-on sessions|pairs, each into its own --profile")
    return 0


def _note_category(rec, sessions) -> None:
    """A model built without the category modality, on sessions that stay in a category
    (where `build`'s default adds it since the forty-second session): say a rebuild adds it
    (tuning weighs the modalities the model has)."""
    import sys

    if sessions is None or "category" in rec.modalities or not rec.catalog.has_categories:
        return
    from prodfusion.data.stats import sessions_stay_in_category

    b = sessions_stay_in_category(rec.catalog, sessions)
    if b.holds:
        print(f"note: {b.share:.0%} of the sessions' {b.steps:,} steps stay in one category "
              f"(against {b.chance:.0%} by chance), and this "
              "model has no category modality: `prodfusion build` adds the category and "
              "popularity there by default (--category-modality auto); tuning weighs only "
              "the modalities a model has, so rebuild to let it weigh them", file=sys.stderr)


def learned_options(args, rec) -> dict:
    """``Recommender.tune(learner="gbdt")``'s keyword arguments from ``prodfusion tune``
    options (those of the weight search, grid and slice rule, do not apply)."""
    from prodfusion.cli.evaluate_steps import _p2v

    return dict(objective=args.objective, test_fraction=args.test_fraction,
                val_fraction=args.val_fraction, seed=args.eval_seed,
                max_queries=args.max_queries, protocol=args.protocol,
                n_candidates=args.n_candidates, validate_on=args.validate_on,
                repeats=args.repeats, prod2vec=_p2v(args, rec), progress=not args.quiet,
                cold_bonus=getattr(args, "cold_bonus", "auto"),
                new_queries=getattr(args, "new_queries", "auto"))


def _tune_trees(args, rec, sessions, pairs) -> int:
    """``prodfusion tune MODEL --learner gbdt --profile NAME``."""

    res = rec.tune(sessions, pairs, profile=args.profile, learner="gbdt",
                   keep_worse=args.keep_worse, min_gain_se=args.min_gain_se,
                   **learned_options(args, rec))
    written = res["kept"] and not args.dry_run
    if written:
        rec.save(args.model)
    t = res["trees"]
    over_name = ("the weighting they re-score" if res["gain"]["over"] == "linear"
                 else res["gain"]["over"])
    short = (f"the trees' gain over {over_name} on validation is not above "
             f"{args.min_gain_se:g} standard errors" if res["gain"]["value"] > 0
             else f"the trees do not beat {over_name} on validation")
    why = "" if written else " (dry run: not written)" if args.dry_run else (
        f" (NOT written: {short}; --keep-worse writes them anyway)")
    what = f" profile {args.profile!r}" if args.profile else ""
    learnt = (f"trained on {t['training_rows']:,} candidate rows, {t['training_targets']:,} "
              "targets" if t["n_trees"] is not None else
              "learnt out of fold only: not on every split, as they are not kept")
    print(f"tuned {args.model}{what}{why}: "
          + (f"{t['n_trees']} " if t["n_trees"] is not None else "")
          + f"boosted trees ({t['kind']}; out of fold " + ", ".join(
              f"{k} {v:.4f}" for k, v in t["kind_scores"].items()) + ") "
          f"over {', '.join(res['weights'])} re-scoring the weighting "
          f"{format_weights_of(res)} ({learnt}, {res['seconds']:.1f}s)")
    print(f"  validation {res['objective']} out of fold {res['validation_score']:.4f} on "
          f"{res['split']['n_validation_cases']:,} cases over {res['search']['repeats']} "
          "splits (each case ranked by trees that never trained on its query); for reference, "
          "on the same cases:")
    for name, v in res["reference_scores"].items():
        print(f"    {'the weighting re-scored' if name == 'linear' else name:<36} {v:.4f}")
    cold = cold_bonus_phrase(t)
    if cold:
        print(f"  {cold}")
    newq = new_query_phrase(t)
    if newq:
        print(f"  {newq}")
    over = res["gain"]["over"]
    over = "the weighting they re-score" if over == "linear" else over
    line = gain_line({**res, "gain": {**res["gain"], "over": over}})
    if line:
        print(line.replace("the fusion may serve", "the trees may serve"))
    if res.get("validation_slices"):
        print("  by validation slice, out of fold (the trees vs the best single modality "
              "there; every split's cases pooled):")
        for line in slice_lines(res):
            print(line)
    if res["gain"]["value"] <= 0 and written:
        print(f"  the trees score below {over} on validation: serve this "
              "profile only to compare (evaluate retrieval --variants with its profile)")
    if written and args.profile:
        print(f"  the model's default weighting is unchanged; rank by the trees with "
              f"`prodfusion similar {args.model} ID --profile {args.profile}`")
    elif written:
        print("  the trees are now the model's own weighting: `similar`, `export` and the "
              "service rank by them (a later linear `prodfusion tune` replaces them)")
        if res.get("weights_profile"):
            print(f"  the tuned weights they replace stay as profile "
                  f"{res['weights_profile']!r}: `prodfusion similar {args.model} ID "
                  f"--profile {res['weights_profile']}`")
    if written:
        note = trees_cost_note(rec.search_backend, t.get("pool"))
        if note:
            print(note)
    return 0


def trees_cost_note(backend: str, pool: int | None = None) -> str:
    """The note on the query cost of trees served through an index (``backend`` other than
    ``"exact"``), or "": ``build`` and ``tune`` print it when trees become a weighting.
    ``pool``: the trees' candidates per modality (default: the library's, 200).

    >>> trees_cost_note("exact")
    ''
    >>> print(trees_cost_note("hnsw").split(",")[0])
      note: through the HNSW index each query scores every modality's 200 nearest products with the trees
    """
    from prodfusion.fusion.learned import DEFAULT_POOL

    if backend == "exact":
        return ""
    return (f"  note: through the {backend.upper()} index each query scores every modality's "
            f"{pool or DEFAULT_POOL} nearest products with the trees, several times the weights' query time "
            "(docs/benchmarks/learned_query_cost_100000.md); `--tune-learner off` at build "
            "(or a linear `prodfusion tune`) keeps the weights, `--index-param over_fetch=4` "
            "at build fetches fewer candidates for them "
            "(docs/benchmarks/learned_pool_fetch_shop_100000.md)")


def cold_bonus_phrase(trees: dict) -> str:
    """What the trees do for new products (``tune_learned``'s ``cold_bonus``), or "".

    >>> print(cold_bonus_phrase({"cold_bonus": 1.5, "cold_bonus_tried": {"by_bonus": {
    ...     "1.5": {"objective": 0.0536, "targets without training clicks": 0.0697}},
    ...     "best_single_there": 0.0647}}))
    products without training clicks lifted by 1.5 (out of fold their targets 0.0697, the best single modality 0.0647)
    """
    tried = trees.get("cold_bonus_tried")
    b = trees.get("cold_bonus", 0.0)
    if not tried:
        return f"products without training clicks lifted by {b:g} (given)" if b else ""
    got = tried["by_bonus"][f"{b:g}"]["targets without training clicks"]
    par = tried["best_single_there"]
    if b:
        return (f"products without training clicks lifted by {b:g} (out of fold their targets "
                f"{got:.4f}, the best single modality {par:.4f})")
    return ("products without training clicks not lifted (out of fold their targets "
            f"{got:.4f}, the best single modality {par:.4f}"
            + ("" if got >= par else "; no bonus reaches it within half the trees' gain") + ")")


def new_query_phrase(trees: dict) -> str:
    """What ranks the lists of queries without training clicks (``tune_learned``'s
    ``new_queries``), or "".

    >>> print(new_query_phrase({"new_queries": {"kept": "trees for new queries",
    ...     "made click-less": {"the trees": 0.033, "trees for new queries": 0.0418,
    ...     "the weights": 0.0404}, "made click-less, each modality alone": {
    ...     "text alone": 0.0387, "clicks alone": 0.0}}}))
    products without training clicks asking for their list ranked by trees for new queries (every validation query made click-less, out of fold: the trees 0.0330, trees for new queries 0.0418, the weights 0.0404, text alone 0.0387)
    """
    nq = trees.get("new_queries") or {}
    if "made click-less" not in nq:
        return ""
    alone = nq["made click-less, each modality alone"]
    best = max(alone, key=alone.get)
    return (f"products without training clicks asking for their list ranked by {nq['kept']} "
            "(every validation query made click-less, out of fold: " + ", ".join(
                f"{k} {v:.4f}" for k, v in nq["made click-less"].items())
            + f", {best} {alone[best]:.4f})")


def slice_lines(res: dict, noise: float = 0) -> list[str]:
    """One line per validation slice of a tuning record: the choice against the best single
    modality there, with its cases; a shortfall within ``noise`` standard errors said so.

    >>> print(slice_lines({"validation_slices": {"query: no training clicks": {
    ...     "n": 5, "tuned": 0.0, "best single": 0.2, "se": 0.2}}})[0])
        query: no training clicks            0.0000 vs 0.2000 (5 cases)
    """
    out = []
    for name, row in res.get("validation_slices", {}).items():
        within = (noise and row["tuned"] < row["best single"] and row.get("se") is not None
                  and row["best single"] - row["tuned"] <= noise * row["se"])
        cases = "case" if row["n"] == 1 else "cases"
        out.append(f"    {name:<36} {row['tuned']:.4f} vs {row['best single']:.4f} "
                   f"({row['n']:,} {cases}"
                   + (f"; below by less than {noise:g} standard error(s), {row['se']:.4f}: "
                      "noise" if within else "") + ")")
    return out


def format_weights_of(res: dict) -> str:
    from prodfusion.fusion.weights import format_weights

    return format_weights(res["weights"])


def gain_line(res: dict, label: str = "") -> str | None:
    """The tuned weighting's validation gain over the best modality alone, with its noise:
    does fusing pay on this data? (``None`` for a tuning record without ``gain``.) With a
    cross-fitted gain (``gain["cross_fitted"]``: chosen and scored on different validation
    cases) the verdict is that one's: the gain of the weighting chosen on every case runs
    high.

    >>> print(gain_line({"gain": {"over": "text alone", "value": 0.0014, "se": 0.0009},
    ...                  "objective": "ndcg@15"}))
      gain over text alone on validation: ndcg@15 +0.0014 (one standard error 0.0009): within the noise (under 1.96 standard errors); the fusion may serve no better than text alone
    >>> print(gain_line({"gain": {"over": "lexical alone", "value": 0.0042, "se": 0.0020,
    ...     "cross_fitted": {"value": -0.0004, "se": 0.0021, "folds": 5}},
    ...     "objective": "ndcg@15"}))
      gain over lexical alone on validation: ndcg@15 +0.0042 (one standard error 0.0020) on the cases that chose it; chosen on 4/5 of them and scored on the rest, -0.0004 (0.0021): within the noise (under 1.96 standard errors); the fusion may serve no better than lexical alone
    """
    from prodfusion.evaluation.tuning import gain_verdict

    g = res.get("gain")
    if not g:
        return None
    v, se = g["value"], g["se"]
    cf = g.get("cross_fitted")
    head = (f"  {label}gain over {g['over']} on validation: {res['objective']} {v:+.4f} (one "
            f"standard error {se:.4f})")
    verdict = gain_verdict(v, se)
    if res.get("single_if_worse") and cf is not None:  # the choice gave way (tune_weights)
        w = ", ".join(f"{m}={x:.3g}" for m, x in res["single_if_worse"]["instead_of"][
            "weights"].items() if x > 0)
        return (f"{head}: the search's weighting ({w}), chosen on {cf['folds'] - 1}/"
                f"{cf['folds']} of the cases and scored on the rest, was below {g['over']} "
                f"beyond the noise ({cf['value']:+.4f} ({cf['se']:.4f})): {g['over']} is "
                "served instead (`tune --keep-mix` keeps the search's)")
    if verdict == "none":
        return f"{head}: none: the choice ranks as {g['over']} does"
    if cf is not None:
        f = cf["folds"]
        head += (f" on the cases that chose it; chosen on {f - 1}/{f} of them and scored on "
                 f"the rest, {cf['value']:+.4f} ({cf['se']:.4f})")
        verdict = gain_verdict(cf["value"], cf["se"])
    if verdict == "above":
        said = "above the noise (over 1.96 standard errors)"
    elif verdict == "below" and cf is not None:
        said = f"below the noise; the fusion may serve worse than {g['over']} on this data"
    elif verdict == "below":
        said = ("below the noise (kept for the validation slices or kinds of interaction it "
                "holds at their best)")
    else:
        said = (f"within the noise (under 1.96 standard errors); the fusion may serve no "
                f"better than {g['over']}")
    return f"{head}: {said}"


def unconstrained_line(res: dict, command: str, label: str = "") -> str | None:
    """What the slice rule gave up on validation, where it ruled out a higher-scoring
    weighting (``None`` otherwise), and ``command``, which keeps such a weighting as a profile
    to compare.

    >>> print(unconstrained_line({"objective": "ndcg@15", "unconstrained": {
    ...     "weights": {"category": 0.75, "popularity": 0.25}, "calibration": "none",
    ...     "n0": None, "validation_score": 0.101, "cost": 0.032}},
    ...     "prodfusion tune m --no-slice-safe --profile free"))
      the slice rule (every validation slice at least at its best single modality) ruled out weightings that score higher on validation, the best of those the search met: category=0.75, popularity=0.25, calibration none, n0 None: ndcg@15 0.1010 (+0.0320). A search without the rule may find another; to compare: prodfusion tune m --no-slice-safe --profile free
    """
    from prodfusion.fusion.weighting import format_n0
    from prodfusion.fusion.weights import format_weights

    u = res.get("unconstrained")
    if not u:
        return None
    return (f"  {label}the slice rule (every validation slice at least at its best single "
            "modality) ruled out weightings that score higher on validation, the best of those "
            f"the search met: {format_weights(u['weights'])}, calibration {u['calibration']}, "
            f"n0 {format_n0(u['n0'], u.get('confidence', 'ratio'))}: {res['objective']} "
            f"{u['validation_score']:.4f} (+{u['cost']:.4f}). A search without the rule may "
            f"find another; to compare: {command}")


def free_command(argv: list[str]) -> str:
    """The ``prodfusion tune`` command line ``argv`` (as typed) tuned without the slice rule
    into profile ``free``, written: the options that define the search kept, those of the
    rule, ``--dry-run`` and ``--profile`` dropped.

    >>> free_command(["tune", "m", "--objective", "hitrate@15", "--slice-noise", "0",
    ...               "--dry-run", "--profile=x", "--interactions", "a b.csv"])
    "prodfusion tune m --objective hitrate@15 --interactions 'a b.csv' --no-slice-safe --profile free"
    """
    import shlex

    drop_flag = {"--dry-run", "--no-slice-safe", "--quiet"}
    drop_value = {"--profile", "--slice-noise", "--min-slice-cases"}
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
        elif tok in drop_flag or tok.split("=", 1)[0] in drop_value and "=" in tok:
            continue
        elif tok in drop_value:
            skip = True
        else:
            out.append(tok)
    return "prodfusion " + shlex.join([*out, "--no-slice-safe", "--profile", "free"])


#: Modalities a product has only once it has been clicked (or bought) in the training data.
CLICK_BORN = ("clicks", "cooc", "popularity")


def slice_notes(res: dict) -> list[str]:
    """Why a validation slice is below the best single modality, where the reason is known
    and structural (printed under the slice table of ``prodfusion tune``).

    Today one: targets without training clicks, under a weighting that puts weight only on
    modalities such products lack. Such a product shares no weighted modality with a
    clicked query, so the zero-weight fallback ranks it after every clicked product; it
    enters a list only when the list runs short. A smaller offset for the fallback and a
    place kept for a new product were both probed on validation and lost more than they won
    (docs/results/fallback_offset.md, new_product_slot.md in the repository).

    >>> res = {"slice_safe": False, "search": {"min_slice_cases": 20},
    ...        "weights": {"text": 0.0, "clicks": 0.2, "cooc": 0.8},
    ...        "validation_slices": {"target: no training clicks":
    ...                              {"tuned": 0.0, "best single": 0.01, "n": 76}}}
    >>> print(slice_notes(res)[0])  # doctest: +ELLIPSIS
      why 'target: no training clicks' is below: the weights are all on clicks and cooc, ...
    """
    if res.get("slice_safe", True):
        return []
    row = res.get("validation_slices", {}).get("target: no training clicks")
    need = res.get("search", {}).get("min_slice_cases", 20)
    w = res.get("weights", {})
    if not row or row["n"] < need or not row["tuned"] < row["best single"] \
            or any(x > 0 for m, x in w.items() if m not in CLICK_BORN):
        return []
    on = [m for m in w if w[m] > 0]
    return [
        f"  why 'target: no training clicks' is below: the weights are all on "
        f"{' and '.join(on)}, which a product has only once clicked, so a product "
        "without training clicks is ranked by the fallback after every clicked one and "
        "enters a list only when it runs short (a new product too, until clicks for it are "
        "added: `prodfusion add --interactions`). Forcing title weight in costs more on the "
        "other cases than this slice gains (the tuner's choice); `--weights` overrides it"]


def add_tune_parser(sub) -> None:
    from prodfusion.cli.options import add_interaction_options, add_on_offer_option, csv_list
    from prodfusion.fusion.weighting import DEFAULT_N0_GRID

    p = sub.add_parser(
        "tune", help="learn fusion weights, calibration and click confidence on held-out data",
        description="Split the interactions as `evaluate retrieval` does, set the test part "
        "aside unread, split the rest into fitting and validation parts, retrain Prod2Vec on "
        "the fitting part and choose the intermediate-fusion weights, calibration and n0 that "
        "score best on validation (simplex grid + coordinate search). The choice and its "
        "provenance are written into the model folder's manifest (atomically).",
    )
    p.add_argument("model", help="model folder written by `prodfusion build`")
    add_interaction_options(p)
    p.add_argument("--objective", default="ndcg@15", help="ndcg@K or hitrate@K (default ndcg@15)")
    p.add_argument("--modalities", default=None, type=csv_list,
                   help="modalities to weigh (default: all the model has)")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="leave-last-out",
                   help="as `evaluate retrieval --protocol`, for the test part and the "
                        "validation splits (leave-last-out-all-cases: every case scored where "
                        "the catalog looks made of the log's own products, the rule until the "
                        "forty-fourth session; leave-last-out-v24: the rule before the "
                        "twenty-fifth session)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="the evaluation's test part, set aside (default 0.2)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="validation share of the remaining part (default 0.2)")
    p.add_argument("--eval-seed", type=int, default=0, help="split seed (same as evaluate)")
    p.add_argument("--step", type=float, default=0.25, help="simplex grid step (1/N)")
    p.add_argument("--calibrations", default=["none", "zscore", "zmean"],
                   type=csv_list, help="calibrations to try (default none,zscore,zmean); "
                   "zmean@B: a modality the candidate lacks counts as B × the mean z of the "
                   "shared ones (e.g. zmean@0.5)")
    p.add_argument("--n0", default=list(DEFAULT_N0_GRID), type=_n0_list,
                   help="click-confidence constants to try (default none,2,10,min:2,min:5): "
                        "c(n) = n/(n+n0) scales a pair's click weight by how often Prod2Vec "
                        "saw each product; min:K counts the clicks of a query seen fewer than "
                        "K times as absent, tried at the weights the others find "
                        "(none,2,10 searches as before the twenty-fourth session)")
    p.add_argument("--profile", default=None,
                   help="keep the choice as a named weighting profile of the model (the "
                        "default weighting stays): e.g. one profile tuned with --validate-on "
                        "sessions, another with --validate-on pairs; `similar --profile NAME`, "
                        "a variant's \"profile\" and the service's arms rank by it. A profile "
                        "keeps the model's cooc decay")
    p.add_argument("--cooc-decays", dest="cooc_decays_given", default=None, type=_decay_list,
                   help="cooc proximity exponents to try before the weights, scored on cooc "
                        "alone (default 0,1, none with --profile: plain counts or 1/distance in the session; the "
                        "model's own is always tried and kept unless another is ahead by more "
                        "than two standard errors); 'none' keeps the model's")
    p.add_argument("--min-weight", type=float, default=0.0,
                   help="lift a zero weight to this × the largest where the positive weights "
                        "do not cover every product (default 0: zero-weight modalities are "
                        "a last-resort fallback instead)")
    p.add_argument("--validate-on", choices=["all", "sessions", "pairs"], default="all",
                   help="source the validation score is measured on (default all: the mean "
                        "over sources); every source still trains")
    p.add_argument("--repeats", type=int, default=3,
                   help="validation splits averaged (default 3): pairs re-drawn by another "
                        "seed, Prod2Vec retrained from another seed; sessions keep the latest "
                        "block unless --rolling")
    p.add_argument("--rolling", action="store_true",
                   help="validate split r on the r-th latest block of sessions instead")
    p.add_argument("--selection", choices=["lcb", "mean"], default="lcb",
                   help="lcb (default): the weighting whose gain over the best single "
                        "modality is largest after subtracting one standard error of the "
                        "per-case difference; mean: the highest validation score")
    p.add_argument("--min-slice-cases", type=int, default=20,
                   help="validation slices (with / without clicks, image) of at least this "
                        "many cases must not fall below the best single modality (default 20)")
    p.add_argument("--slice-noise", type=float, default=1.0,
                   help="a slice counts as below its best single modality only when short of "
                        "it by more than this many standard errors of the paired per-case "
                        "difference on its cases (default 1; 0: any shortfall, the rule "
                        "before the twenty-fourth session)")
    p.add_argument("--no-slice-safe", action="store_true",
                   help="do not prefer weightings that keep every validation slice")
    p.add_argument("--shrink", action="store_true",
                   help="then move the weights towards equal weights as far as validation "
                        "allows (the largest step whose score stays within one standard "
                        "error): every modality counts more evenly, at a cost in the "
                        "objective the validation cannot see (docs/results/demo_shrinkage.md)")
    p.add_argument("--no-cross-fit", action="store_true",
                   help="skip the cross-fitted gain (the search re-run on four fifths of the "
                        "validation cases, each fifth scored by that choice: whether fusing "
                        "pays, not fooled by the choice having seen its cases); saves from a "
                        "few per cent of the tuning's time to as much again (H&M's pairs: "
                        "docs/benchmarks/gain_cross_fit_hm.md), and the printed verdict is "
                        "then the gain on the cases that chose it, which runs high")
    p.add_argument("--keep-mix", action="store_true",
                   help="keep the tuned weighting even where, cross-fitted, it scores below "
                        "the best single modality beyond the noise (by default that modality "
                        "alone is served then)")
    p.add_argument("--plain-fallback", action="store_true",
                   help="rank pairs sharing only zero-weight modalities by their mean raw "
                        "cosine instead of learnt fallback weights")
    p.add_argument("--n-candidates", type=int, default=200,
                   help="validation candidates per modality and query (default 200); as "
                        "many products outside them (at most 1000) are sampled to estimate "
                        "the rest of the catalog's ranks")
    p.add_argument("--max-queries", type=int, default=2000,
                   help="validation query products scored (seeded sample)")
    p.add_argument("--p2v-epochs", type=int, default=None)
    p.add_argument("--p2v-dim", type=int, default=None)
    p.add_argument("--p2v-min-count", type=int, default=None)
    p.add_argument("--p2v-seed", type=int, default=None,
                   help="override the model's Prod2Vec seed (split r retrains from seed + r)")
    p.add_argument("--workers", type=int, default=None,
                   help="Prod2Vec threads (default: the build's; where the build gave none, "
                        "one thread up to 2,000,000 training clicks, so two runs tune alike, "
                        "else every core). Retraining Prod2Vec on each split is most of a "
                        "tuning's time (two thirds at 100,000 products on one thread: "
                        "docs/benchmarks/tune_scale_1m.md), so threads shorten it most")
    p.add_argument("--learner", choices=["linear", "gbdt"], default="linear",
                   help="linear (default): weights, calibration and n0; gbdt: boosted trees "
                   "over every modality's similarity, the distance to the query's best in "
                   "it and both products' click counts, trained on the validation splits "
                   "and measured out of fold; they become the model's weighting (or "
                   "--profile NAME's), re-scoring the model's own weighting's candidates")
    p.add_argument("--keep-worse", action="store_true",
                   help="with --learner gbdt: write the trees' profile even when they do not "
                   "beat, out of fold on validation, the weighting they re-score and every "
                   "modality alone (by default such trees are reported, not written)")
    p.add_argument("--min-gain-se", type=_gain_se, default=0.0, metavar="Z",
                   help="with --learner gbdt: write the trees only when their out-of-fold "
                   "gain is above Z standard errors (default 0: any gain; `build "
                   "--tune-learner auto` asks 1.96)")
    p.add_argument("--cold-bonus", type=_cold_bonus, default="auto", metavar="auto|B",
                   help="with --learner gbdt: what the trees add to the score of a candidate "
                   "without training clicks (a new product), in log-odds; auto (default): "
                   "the bonus with the best objective out of fold among those that bring the "
                   "validation targets without training clicks to the best single modality's "
                   "score there, spending at most half the trees' gain (0 where none does)")
    p.add_argument("--new-queries", choices=("auto", "trees", "weights", "off"),
                   default="auto",
                   help="with --learner gbdt: what ranks the lists of products without "
                   "training clicks (new products asking for theirs): trees of their own, "
                   "trained on the validation queries as they are and made click-less, or "
                   "the weights; auto (default): whichever of those and the trees ranks the "
                   "validation queries made click-less best out of fold, without lowering "
                   "the validation score; off: the trees")
    add_on_offer_option(p, "recorded in the model with the tuning")
    p.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_tune)

