"""Retrieval of held-out co-interactions: what an online A/B test measures, offline.

Interactions are split so that Prod2Vec trains on the earlier part only:

* sessions (views, baskets) are split whole, by the time of their first event
  (:meth:`prodfusion.data.Sessions.split_by_time`; by a seeded hash of the session key when
  the log has no times). Every consecutive pair ``(a → b)`` of a held-out session is one
  test case: the visitor viewed ``a`` and then went to ``b``;
* co-interaction pairs (e.g. H&M ``copurchase.csv``) have no time; they are split by a seeded
  hash of the *unordered* pair, so ``(a, b)`` and ``(b, a)`` always fall on the same side. A
  held-out pair whose two products also co-occur in any training session is not unseen and
  is left out of the test set (its count is reported).

The recommender under test keeps the model's text and image vectors (they do not depend on
interactions) and gets click vectors retrained on the training part only
(:func:`heldout_recommender`); :func:`check_no_leak` refuses to go on if a held-out pair or
session reached the training corpus. For each test case the top-k similar products of ``a``
are scored: HitRate@k, MRR@k, nDCG@k (one relevant item, ``b``), category precision@k and
catalog coverage, with bootstrap confidence intervals over sessions (over query products for
pairs), overall, for queries with training clicks, and for the cold-start slices "query has
no training clicks" and "query has no image".

Examples
--------
>>> import numpy as np
>>> ranked = np.array([[5, 7, 9], [1, 2, 3], [4, 4, 4]])
>>> targets = np.array([7, 8, 4])
>>> hit_rate_at_k(ranked, targets), mrr_at_k(ranked, targets)
(0.6666666666666666, 0.5)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from prodfusion._checks import FUSION_METHODS, check_choice, check_k
from prodfusion.data.offer import offer_cols_of
from prodfusion.encoders.base import MODALITIES
from prodfusion.errors import DataError, ParameterError, param_error
from prodfusion.evaluation.baselines import ON_REQUEST, REFERENCES, Reference
from prodfusion.evaluation.metrics import (
    bootstrap_ci,
    catalog_coverage,
    category_precision_at_k,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    rank_of_target,
    tie_aware_metric,
    tie_aware_ranks,
)
from prodfusion.evaluation.protocol import (
    log_catalog_line,
    paired_differences,
    slice_flags,
    slice_masks,
)
from prodfusion.evaluation.split import (
    HeldOut,
    Split,
    _subsample,
    check_no_leak,
    consecutive_pairs,
    heldout_recommender,
    model_clicked,
    on_offer_note,
    on_offer_rule,
    on_offer_windows,
    retired_words,
    split_interactions,
)
from prodfusion.index.topk import topk_one_per_code
from prodfusion.model_updates import retired_count
from prodfusion.variants import BASELINE, Variant

if TYPE_CHECKING:
    from prodfusion.data.sessions import Sessions

__all__ = [
    "Variant",
    "BASELINE",
    "parse_variant",
    "HeldOut",
    "Split",
    "rank_of_target",
    "per_query_metrics",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "category_precision_at_k",
    "catalog_coverage",
    "bootstrap_ci",
    "consecutive_pairs",
    "split_interactions",
    "check_no_leak",
    "heldout_recommender",
    "evaluate_retrieval",
]

FUSIONS = FUSION_METHODS
MODALITY_ORDER = MODALITIES


# =========================================================================== variants
def parse_variant(spec: str | Mapping | Variant, *, default_model: str | None = None) -> Variant:
    """A :class:`Variant` from ``"baseline"``, ``"FUSION:MOD+MOD"``, a dict or a config file.

    Config files are JSON (``.json``), TOML (``.toml``) or YAML (``.yaml``/``.yml``) holding
    ``{model: DIR, fusion: ..., modalities: [...], fallback: [...], name: ..., weights: {m: w},
    calibration: ..., n0: ..., paper: bool, profile: NAME}``; every key is optional
    (``baseline: true`` starts from the baseline). ``weights`` / ``calibration`` / ``n0``
    replace the model's (or the profile's) own and keep the rest of its weighting, as
    ``prodfusion similar --weights`` does (:meth:`Variant.weighting_for`). Relative ``model``
    paths are read from the config file's folder.

    >>> parse_variant("late:text+image").modalities
    ('text', 'image')
    >>> parse_variant({"fusion": "early", "modalities": ["clicks"]}).label
    'early:clicks'
    """
    from pathlib import Path

    where = "parse_variant()"
    if isinstance(spec, (Variant, Reference)):
        v = spec
    elif isinstance(spec, Mapping):
        d = dict(spec)
        base = BASELINE if d.pop("baseline", False) else Variant()
        unknown = set(d) - {"fusion", "modalities", "fallback", "name", "model", "weights",
                            "calibration", "n0", "paper", "profile"}
        if unknown:
            raise ParameterError(
                f"{where}: unknown config key(s) {sorted(unknown)}; use fusion, modalities, "
                "fallback, name, model, weights, calibration, n0, paper, profile (and "
                "baseline: true)."
            )
        fields = {**asdict(base), **d}
        for key in ("modalities", "fallback"):
            if isinstance(fields.get(key), list):
                fields[key] = tuple(fields[key])
        v = Variant(**fields)
    elif isinstance(spec, str):
        s = spec.strip()
        p = Path(s)
        if s.lower() == "baseline":
            v = BASELINE
        elif s.lower() in REFERENCES + ON_REQUEST:
            v = Reference(s.lower())
        elif p.suffix.lower() in (".json", ".toml", ".yaml", ".yml"):
            if not p.is_file():
                raise DataError(f"{p}: variant config file does not exist.")
            text = p.read_text(encoding="utf-8")
            try:
                if p.suffix.lower() == ".json":
                    import json

                    data = json.loads(text)
                elif p.suffix.lower() == ".toml":
                    try:
                        import tomllib
                    except ImportError:  # Python 3.10
                        import tomli as tomllib

                    data = tomllib.loads(text)
                else:
                    import yaml

                    data = yaml.safe_load(text)
            except Exception as exc:  # three parsers, three exception types
                raise DataError(f"{p}: cannot parse the config ({type(exc).__name__}: {exc}).") from None
            if not isinstance(data, Mapping):
                raise DataError(f"{p}: a variant config must be a mapping of keys to values.")
            data = dict(data)
            if data.get("model") and not Path(str(data["model"])).is_absolute():
                data["model"] = str((p.parent / str(data["model"])).resolve())
            v = parse_variant(data)
        elif ":" in s:
            fusion, _, mods = s.partition(":")
            v = Variant(fusion=fusion.strip(), modalities=mods)
        else:
            raise param_error(
                "config",
                where,
                "'baseline', 'FUSION:MOD+MOD' (e.g. 'intermediate:text+image+clicks'), a "
                f"reference baseline ({', '.join(REFERENCES + ON_REQUEST)}) or a "
                ".json/.toml/.yaml file",
                spec,
            )
    else:
        raise param_error("config", where, "a string, a mapping or a Variant", spec)
    if v.model is None and default_model is not None:
        if isinstance(v, Reference):
            return Reference(v.kind, v.name, str(default_model))
        v = replace(v, model=str(default_model))
    return v


#: Up to this many modalities a default evaluation scores every combination × fusion (the
#: paper's grid: 45 configurations at four); beyond, :func:`default_variants`' compact set
#: (a default build with sessions and categories has seven: 162 configurations against 33).
FULL_GRID_MODALITIES = 4
#: The modalities of the paper's fusions (the compact set's ``[paper]`` rows).
PAPER_MODALITIES = ("text", "image", "clicks")


def default_variants(modalities: Sequence[str], fusions: Sequence[str] = FUSIONS,
                     full: bool = True) -> list:
    """The configurations a default evaluation scores.

    ``full``: every modality combination × fusion (pairwise modalities under intermediate
    fusion only). Else the compact set: each modality alone under each fusion, every
    modality together under each fusion, every modality but one (under intermediate fusion,
    or the first of ``fusions``: what each one adds), and the paper's formulas
    (``[paper]``: equal weights, raw cosines) over its modalities present. Either way the
    baseline when clicks and text exist, and the reference baselines (``cooc``, ``tfidf``,
    ``popular``, ``cooc+tfidf``).

    >>> len(default_variants(("text", "image", "clicks")))
    26
    >>> mods = ("text", "image", "clicks", "lexical", "cooc", "category", "popularity")
    >>> len(default_variants(mods)), len(default_variants(mods, full=False))
    (162, 33)
    """
    from prodfusion.evaluation.clustering import all_combinations
    from prodfusion.fusion.cooc import PAIRWISE_MODALITIES

    def fits(f: str, c: Sequence[str]) -> bool:  # pairwise modalities: intermediate only
        return f == "intermediate" or not set(c) & set(PAIRWISE_MODALITIES)

    if full:
        out: list = [Variant(f, c) for c in all_combinations(modalities) for f in fusions
                     if fits(f, c)]
    else:
        mods = tuple(modalities)
        dense = tuple(m for m in mods if m not in PAIRWISE_MODALITIES)
        f0 = "intermediate" if "intermediate" in fusions else fusions[0]
        out = [Variant(f, (m,)) for m in mods for f in fusions if fits(f, (m,))]
        out += [Variant(f, mods if fits(f, mods) else dense) for f in fusions
                if fits(f, mods) or dense]
        for m in mods:  # all but one
            rest = tuple(x for x in mods if x != m)
            rest = rest if fits(f0, rest) else tuple(x for x in rest if x in dense)
            if rest and rest != (mods if fits(f0, mods) else dense):
                out.append(Variant(f0, rest))
        paper = tuple(m for m in PAPER_MODALITIES if m in mods)
        if len(paper) > 1:
            out += [Variant(f, paper, paper=True) for f in fusions]
        out = list({v.label: v for v in out}.values())  # each once, in order
    if "clicks" in modalities and "text" in modalities:
        out.append(BASELINE)
    return out + [Reference(r) for r in REFERENCES]


def served_variant(rec: Any, variants: Sequence) -> str | None:
    """The label of the configuration among ``variants`` that ranks as the model serves by
    default — its own fusion over its own modalities, its own weighting (learned trees
    included), nothing overridden — or ``None`` when none does. Every default evaluation
    holds it (one modality combination × fusion is the model's), so the report and the
    console can say which of its rows is the model a site would serve."""
    own = _served(rec)
    if own is None:
        return None
    fusion, mods = own[0], set(own[1])
    for v in variants:
        if isinstance(v, Reference) or v.model is not None or v.profile or v.fallback \
                or v.weighting() is not None:  # a weighting of its own: not the model's
            continue
        if v.fusion == fusion and set(v.modalities) == mods:
            return v.label
    return None


def _served(rec: Any) -> tuple[str, tuple[str, ...]] | None:
    """``(fusion, modalities)`` the model serves by default, or ``None`` where it cannot say."""
    fusion = getattr(rec, "fusion", None)
    pick = getattr(rec, "_modalities_for", None)
    if fusion is None or pick is None:
        return None
    try:
        return fusion, tuple(pick(fusion, None))
    except (ParameterError, DataError):
        return None


def served_summary(res: Mapping) -> list[dict]:
    """Per source, the model as served (:func:`served_variant`): its ``all`` row and its
    paired differences from the best single modality and the best reference on all cases
    (``[]`` when the evaluation did not score it)."""
    label = res.get("served")
    if not label:
        return []
    out = []
    for src in res.get("heldout", {}):
        row = next((r for r in res["rows"] if r["variant"] == label and r["source"] == src
                    and r["slice"] == "all"), None)
        if row is None or not row["n"]:
            continue
        out.append({"source": src, "row": row,
                    "paired": [d for d in res.get("paired", []) if d["variant"] == label
                               and d["source"] == src and d["slice"] == "all"]})
    return out


def _metric_block(values: np.ndarray, groups: np.ndarray, n_boot: int, alpha: float, seed: int) -> dict:
    mean, lo, hi = bootstrap_ci(values, groups, n_boot=n_boot, alpha=alpha, seed=seed)
    return {"value": mean, "ci_lo": lo, "ci_hi": hi}


def evaluate_retrieval(
    rec: Any,
    *,
    sessions: Sessions | None = None,
    pairs: Sessions | None = None,
    test_fraction: float = 0.2,
    k: int = 15,
    variants: Sequence[Variant | str | Mapping] | None = None,
    fusions: Sequence[str] = FUSIONS,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    max_pairs: int | None = None,
    prod2vec: Any = None,
    exclude_group: bool = False,
    one_per_group: bool | None = None,
    progress: bool | Callable = True,
    protocol: str = "leave-last-out",
    ties: str = "mean",
    keep_cases: bool = False,
    clicked: np.ndarray | None = None,
    _split: Split | None = None,
) -> dict:
    """Score the retrieval of held-out co-interactions for several configurations.

    Parameters
    ----------
    rec : Recommender
        Gives the catalog and the text/image vectors (click vectors are retrained).
    sessions, pairs : Sessions, optional
        Interactions to split (see :func:`split_interactions`); at least one.
    test_fraction : float, default 0.2
    k : int, default 15
    variants : sequence, optional
        :class:`Variant`, ``"baseline"``, ``"FUSION:MOD+MOD"`` or dicts. Default: every
        modality combination × ``fusions`` up to :data:`FULL_GRID_MODALITIES` modalities,
        :func:`default_variants`' compact set beyond (``"all"`` among the variants: the
        grid whatever the count, the others beside it); with the model as served
        (:func:`served_variant`), the baseline, the model's profiles and the references
        (``cooc+category`` and ``popular+category`` too where the catalog has categories).
    n_boot, alpha : bootstrap resamples and 1 − confidence of the intervals
    seed : int
        Split and bootstrap seed.
    max_pairs : int, optional
        Score at most this many test cases per source (whole sessions, seeded sample).
    prod2vec : Prod2VecParams, optional
        Click-encoder settings (default: the model's).
    exclude_group : bool
        Never recommend a product of the query's own variation group.
    one_per_group : bool, optional
        Score the lists as ``Recommender.similar(..., one_per_group=True)`` serves them
        (default: the model's setting, ``build --one-per-group``): at most one product of
        each variation group, none of the query's own; a listed product of the target's
        group is a hit (the visitor reaches that product, by whichever of its offers), and
        cases whose target is in the query's own group (a visitor comparing one product's
        offers) are left out, counted in ``heldout``. Ties are scored as served.
    progress : bool or callable
    protocol : str
        One of :data:`~prodfusion.evaluation.protocol.PROTOCOLS` ("leave-last-out", the
        default; "leave-last-out-all-cases", "leave-last-out-log-catalog", "whole", …).
        How test cases are held out (:func:`split_interactions`).
    ties : {"mean", "row"}
        ``"mean"`` (default): a target tied with other candidates counts at the mean of its
        possible ranks (:func:`~prodfusion.evaluation.metrics.tie_aware_metric`, as ``tune``
        validates), so the catalog's row order — which breaks ties in the lists served —
        neither helps nor hurts a configuration; ``"row"``: the lists as served. Both are in
        every row (``served``); a configuration searched approximately (HNSW) is scored as
        served either way. Category precision and coverage are always of the lists served.
        Where the model knows when its products were on offer (retired products, ``build
        --on-offer-cols``) and the log has times, a case ranks the products on offer at its
        time (:func:`~prodfusion.evaluation.split.on_offer_windows`): exactly where scored
        exactly, else by its list read deep enough to hold ``k`` of them
        (:func:`lists_on_offer`, also its category precision and lists of one product per
        group).
    keep_cases : bool, default False
        Also return the per-case values (``cases``), e.g. to pool several test windows
        (``benchmarks/rolling_origin.py``); not JSON: left out of reports.
    clicked : bool array, optional
        Per catalog row, clicked in the whole log (``split_interactions(clicked=...)``);
        default: the model's click counts > 0. An earlier window of the log evaluated after
        ``tune`` counted the window's clicks passes the whole log's.

    Returns
    -------
    dict
        ``config``, ``split`` (counts, leak check), ``heldout`` (test-case counts) and
        ``rows``: one per variant × source × slice with ``n``, ``hit_rate``, ``mrr``,
        ``ndcg``, ``category_precision`` (each ``{value, ci_lo, ci_hi}``), ``coverage``,
        ``ties`` (``"mean"`` or ``"as served"``: how ``hit_rate``, ``mrr`` and ``ndcg`` were
        scored) and ``served`` (those three means of the lists as served). With
        ``keep_cases``, also ``cases``: ``{(variant, source): {"hit", "ndcg", "groups",
        "slices"}}``, per-case arrays in one case order per source (what ``paired`` compares).
    """
    from prodfusion.fusion.base import check_modalities

    where = "evaluate_retrieval()"
    k = check_k(k, where)
    check_choice(ties, "ties", where, ("mean", "row"))
    t0 = time.perf_counter()
    catalog = rec.catalog
    split = _split or split_interactions(
        catalog, sessions, pairs, test_fraction=test_fraction, seed=seed, protocol=protocol,
        clicked=model_clicked(rec) if clicked is None else clicked)
    leak = check_no_leak(split, catalog)
    log = _Progress(progress)
    if (line := log_catalog_line(split.info.get("log_catalog"))):
        log(line)
    log("retraining Prod2Vec on the training part")
    ev = heldout_recommender(rec, split.train, prod2vec=prod2vec, progress=bool(progress is True))
    available = ev.available_modalities
    grid = [v for v in variants or () if isinstance(v, str) and v.strip().lower() == "all"]
    if variants is None or grid:  # cooc (always counted on the training part) only if the
        # model has it
        mods = tuple(m for m in available if m != "cooc"
                     or getattr(rec, "cooc_", None) is not None)
        full = bool(grid) or len(mods) <= FULL_GRID_MODALITIES
        vlist = default_variants(mods, fusions, full=full)
        n_set = len(vlist)
        own = _served(rec)  # the model as served, always (it may fuse fewer than `mods`)
        if own is not None and set(own[1]) <= set(mods) \
                and served_variant(rec, vlist) is None:
            vlist.insert(0, Variant(*own))
        # the model's weighting profiles (tune --profile), each over the model's modalities
        vlist += [Variant("intermediate", tuple(m for m in rec.modalities if m in available),
                          profile=name) for name in sorted(getattr(rec, "profiles", {}) or {})]
        if catalog.has_categories:  # the simplest lists a shop with categories shows
            vlist += [Reference(r) for r in ON_REQUEST]
        vlist += [parse_variant(v) for v in variants or () if v not in grid]
        seen: set = set()  # each once, where it first comes
        vlist = [v for v in vlist if not (v.label in seen or seen.add(v.label))]
        if not full:
            n_grid = len(default_variants(mods, fusions)) + len(vlist) - n_set
            log(f"{len(mods)} modalities: scoring each alone, all of them and all but one, "
                f"and the paper's fusions ({len(vlist)} configurations with the references "
                f"and the model as served; --variants all scores every combination × "
                f"fusion: {n_grid})")
    else:
        vlist = [parse_variant(v) for v in variants]
    if split.train is None or not len(split.train):
        vlist = [v for v in vlist if not (isinstance(v, Reference) and v.kind != "tfidf")]
    for v in vlist:
        if isinstance(v, Reference):
            continue
        check_modalities(v.modalities, available, where)
        if v.fallback:
            check_modalities(v.fallback, available, where)
    cat_codes = catalog.codes("category")
    if cat_codes is None:
        cat_codes = np.full(len(catalog), -1, dtype=np.int64)
    if one_per_group is None:
        one_per_group = bool(getattr(rec, "one_per_group", False))
    diff_code = catalog.codes("group") if exclude_group or one_per_group else None
    if (exclude_group or one_per_group) and diff_code is None:
        what = "one_per_group" if one_per_group else "exclude_group"
        raise ParameterError(f"{where}: {what}=True needs a catalog with a 'group' column "
                             "(--group-col).")
    sources = {name: _subsample(ho, max_pairs, seed) for name, ho in split.heldout.items()}
    if one_per_group:
        sources = {name: other_groups(ho, diff_code) for name, ho in sources.items()}
        ties = "row"  # the collapsed lists are scored as served
    slices = slice_masks(rec, ev)
    # where the model knows when its products were on offer (retired ones, --on-offer-cols):
    # each timed case among those on offer at its time, scored exactly or by its list read
    # deep enough (lists_on_offer; one product per group too)
    offer = on_offer_windows(rec, sessions)
    if offer is not None:
        log(f"{on_offer_rule(rec)} ({retired_words(rec)})")
    if (note := on_offer_note(rec, sessions, offer)) is not None:
        log(note)
    out_rows = []
    per_case: dict = {}  # (variant, source) -> per-case hits, nDCG, groups, slices: paired tests
    all_q = np.unique(np.concatenate([ho.query_rows for ho in sources.values()] or [np.zeros(0, int)]))
    for vi, v in enumerate(vlist):
        log(f"[{vi + 1}/{len(vlist)}] {v.label}: top-{k} of {len(all_q):,} query products")
        if one_per_group:
            ranked_all = one_per_group_lists(v, ev, all_q, k, diff_code)
        else:
            ranked_all = v.recommend(ev, all_q, k, diff_code=diff_code)
        pos = {int(q): i for i, q in enumerate(all_q)}
        for name, ho in sources.items():
            idx = np.fromiter((pos[int(q)] for q in ho.query_rows), dtype=np.int64, count=len(ho))
            ranked = ranked_all[idx]
            if offer is not None and ho.times is not None and len(ho):  # the lists of then
                ranked = lists_on_offer(v, ev, all_q, idx, np.asarray(ho.times, np.float64),
                                        offer, k, diff_code=diff_code,
                                        one_per_code=diff_code if one_per_group else None)
            served = per_query_metrics(ranked, ho.target_rows, k) if not one_per_group else \
                per_query_metrics(product_of(ranked, diff_code),
                                  product_of(ho.target_rows, diff_code), k)
            aware = _tie_aware(v, ev, ho, k, diff_code, offer) if ties == "mean" else None
            m = served if aware is None else aware
            cp = category_precision_at_k(ranked, ho.query_rows, cat_codes)
            case = per_case[(v.label, name)] = {
                "hit": m["hit"], "ndcg": m["ndcg"], "groups": ho.groups, "slices": {},
                # paired with one scored the other way, both are compared as served
                "tie_aware": aware is not None,
                "served": {"hit": served["hit"], "ndcg": served["ndcg"]}}
            for sl, side_mask in slices.items():
                if side_mask is None:
                    sel = np.ones(len(ho), dtype=bool)
                else:
                    side, mask = side_mask
                    sel = mask[ho.query_rows if side == "query" else ho.target_rows]
                case["slices"][sl] = sel
                g = ho.groups[sel]
                uq = np.unique(ho.query_rows[sel])
                out_rows.append(
                    {
                        "variant": v.label,
                        "fusion": v.fusion,
                        "modalities": list(v.modalities),
                        "fallback": list(v.fallback) if v.fallback else None,
                        "source": name,
                        "slice": sl,
                        "n": int(sel.sum()),
                        "n_groups": int(len(np.unique(g.astype(str)))) if sel.any() else 0,
                        "hit_rate": _metric_block(m["hit"][sel], g, n_boot, alpha, seed),
                        "mrr": _metric_block(m["rr"][sel], g, n_boot, alpha, seed),
                        "ndcg": _metric_block(m["ndcg"][sel], g, n_boot, alpha, seed),
                        "category_precision": _metric_block(cp[sel], g, n_boot, alpha, seed),
                        "ties": "as served" if aware is None else "mean",
                        "served": {key: float(served[col][sel].mean()) if sel.any() else math.nan
                                   for key, col in (("hit_rate", "hit"), ("mrr", "rr"),
                                                    ("ndcg", "ndcg"))},
                        "coverage": catalog_coverage(ranked_all[[pos[int(q)] for q in uq]], len(catalog))
                        if len(uq)
                        else math.nan,
                    }
                )
    log.close()
    refs = [v.label for v in vlist if isinstance(v, Reference)]
    flags = slice_flags(out_rows, metric="hit_rate", references=refs)
    paired = paired_differences(out_rows, per_case, references=refs, metric="ndcg",
                                n_boot=n_boot, alpha=alpha, seed=seed)
    coverage = _target_coverage(sources, ev, catalog)
    out = {
        "kind": "retrieval",
        "flags": flags,
        "paired": paired,
        "click_coverage": coverage,
        "config": {
            "k": k,
            "test_fraction": test_fraction,
            "seed": seed,
            "n_boot": n_boot,
            "alpha": alpha,
            "max_pairs": max_pairs,
            "exclude_group": exclude_group,
            "one_per_group": one_per_group,
            "protocol": split.info.get("protocol", protocol),
            "ties": ties,
            "variants": [v.as_dict() for v in vlist],
            "prod2vec": asdict(prod2vec) if prod2vec is not None else asdict(rec.prod2vec)
            if hasattr(rec, "prod2vec")
            else None,
            "catalog": {"source": catalog.source, "n_products": len(catalog),
                        # build --recommend-rows, add --retire-missing: ranked while on
                        # offer (the rule) or as any other product
                        "n_retired": retired_count(rec),
                        **({"on_offer": on_offer_rule(rec)} if offer is not None else {}),
                        **({"on_offer_cols": list(offer_cols_of(rec))}
                           if offer_cols_of(rec) else {})},
            "modalities": {
                m: {"spec": e.spec, "n_present": e.n_present}
                for m, e in ev.modality_data().items()
            },
            "bootstrap_unit": {"sessions": "held-out session", "pairs": "query product"},
        },
        "split": {**split.info, "leak_check": leak},
        "heldout": {
            name: {"n": len(ho), "n_groups": int(len(np.unique(ho.groups.astype(str)))), **ho.info}
            for name, ho in sources.items()
        },
        "rows": out_rows,
        "served": served_variant(rec, vlist),
        "seconds": time.perf_counter() - t0,
    }
    if keep_cases:
        out["cases"] = per_case
    return out


def in_own_group(codes: np.ndarray, q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Booleans: which cases ``q → t`` stay inside the query's group (both coded alike)."""
    return (codes[q] >= 0) & (codes[q] == codes[t])


def other_groups(ho: HeldOut, codes: np.ndarray) -> HeldOut:
    """``ho`` less the cases whose target is in the query's own variation group (a list
    kept to one product per group never holds it), their count in ``info``."""
    same = in_own_group(codes, ho.query_rows, ho.target_rows)
    out = ho.take(np.flatnonzero(~same))
    out.info["same_group_left_out"] = int(same.sum())
    return out


def one_per_group_lists(v: Any, ev: Any, query_rows: np.ndarray, k: int,
                        codes: np.ndarray) -> np.ndarray:
    """``v``'s top-``k`` rows per query as a model with ``one_per_group`` serves them: one
    row per group code, none of the query's own (``-1`` pads)."""
    def search(q: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        rows = v.recommend(ev, q, m, diff_code=codes)
        return rows, np.zeros(rows.shape, dtype=np.float32)

    return topk_one_per_code(search, query_rows, k, codes, len(ev.catalog))[0]


def product_of(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each row as its product: its variation group's code, or, for a row without one, a
    number of its own above every code (``-1`` padding stays ``-1``)."""
    rows = np.asarray(rows, dtype=np.int64)
    top = int(codes.max(initial=-1)) + 1
    c = codes[np.maximum(rows, 0)]
    return np.where(rows < 0, -1, np.where(c >= 0, c, top + rows))


#: How deep a configuration's list of a query is first read where each case's list is made
#: of the products on offer at its time (times ``k``; deeper, by 4× at a time, for the
#: cases still short, up to the whole catalog: :func:`lists_on_offer`).
OFFER_DEPTH = 10
#: At most this many list entries (cases × depth) read at once by :func:`lists_on_offer`.
OFFER_BLOCK = 1 << 22


def lists_on_offer(v: Any, ev: Any, uq: np.ndarray, inv: np.ndarray, times: np.ndarray,
                   offer: tuple[np.ndarray, np.ndarray], k: int, diff_code=None,
                   one_per_code: np.ndarray | None = None) -> np.ndarray:
    """Each case's top ``k`` (``-1`` pads) among the products on offer at its time
    (:func:`~prodfusion.evaluation.split.on_offer_windows`): the configuration's list of
    its query ``uq[inv[i]]`` as served, read deep enough that ``k`` of its products were on
    offer then (an untimed case, ``NaN``: its first ``k``). ``replay`` shows each view
    these; ``evaluate retrieval`` scores by them the configurations it scores as served.
    ``one_per_code`` (the group codes of ``one_per_group``): then one product per code, the
    best ranked of those on offer (:func:`~prodfusion.index.topk.first_per_code`)."""
    from prodfusion.index.topk import first_per_code

    first, last = offer
    n = len(ev.catalog)
    out = np.full((len(inv), k), -1, dtype=np.int64)
    todo = np.arange(len(inv))
    depth = min(n, OFFER_DEPTH * k)
    while len(todo):
        still = []
        step = max(1, OFFER_BLOCK // depth)  # cases read at once: memory bounded
        for part in (todo[lo:lo + step] for lo in range(0, len(todo), step)):
            need = np.unique(inv[part])
            ranked = v.recommend(ev, uq[need], depth, diff_code=diff_code)[
                np.searchsorted(need, inv[part])]
            safe = np.where(ranked >= 0, ranked, 0)
            t = times[part][:, None]
            ok = (ranked >= 0) & ~((first[safe] > t) | (last[safe] < t))  # NaN: every one
            if one_per_code is not None:
                got, _ = first_per_code(np.where(ok, ranked, -1), np.zeros(ranked.shape),
                                        one_per_code, k)
                out[part] = got
                short = (got < 0).any(axis=1)
            else:
                pos = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # the first k on offer
                got = np.take_along_axis(ranked, pos, axis=1)
                out[part, :got.shape[1]] = np.where(np.take_along_axis(ok, pos, axis=1), got,
                                                    -1)
                short = ok.sum(axis=1) < k
            still.append(part[short])
        if depth >= n:
            break
        todo = np.concatenate(still)
        depth = min(n, depth * 4)
    return out


def _tie_aware(v: Any, ev: Any, ho: HeldOut, k: int, diff_code,
               offer: tuple[np.ndarray, np.ndarray] | None = None) -> dict | None:
    """Per-case ``hit``, ``rr`` and ``ndcg`` of ``v`` with ties counted at the mean of their
    possible ranks (:func:`tie_aware_ranks`), or ``None`` where ``v`` is searched
    approximately (scored as served). ``offer``: per product ``(first, last)`` times
    (:func:`~prodfusion.evaluation.split.on_offer_windows`): a timed case ranks
    only the products on offer at its time (its target always)."""
    scorers = v.level_scorers(ev, diff_code=diff_code)
    if scorers is None:
        return None
    q, t = ho.query_rows, ho.target_rows
    times = ho.times if offer is not None else None
    n = len(ev.catalog)
    block = max(1, min(1024, (64 << 20) // max(1, 8 * n * len(scorers))))
    parts = []
    for lo in range(0, len(q), block):
        rows = q[lo:lo + block]
        levels = [f(rows) for f in scorers]
        if times is not None:
            tc = times[lo:lo + block, None]  # NaN (an untimed pair): every product
            off = (offer[0][None, :] > tc) | (offer[1][None, :] < tc)
            off[np.arange(len(rows)), t[lo:lo + block]] = False  # clicked then: on offer
            levels = [np.where(off, -np.inf, x) for x in levels]
        parts.append(tie_aware_ranks(levels, t[lo:lo + block]))
    ahead, tied, ok = (np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, int)
                       for i in range(3))
    return {key: np.where(ok, tie_aware_metric(ahead, tied, k, metric), 0.0)
            for key, metric in (("hit", "hitrate"), ("rr", "mrr"), ("ndcg", "ndcg"))}


def _target_coverage(sources: Mapping[str, HeldOut], ev: Any, catalog: Any) -> dict:
    """Share of queries, targets and catalog products without a (retrained) click vector.

    With an honest protocol the targets' share is close to the catalog's; a much larger one
    means the split itself marks the answers (see :mod:`prodfusion.evaluation.protocol`).
    """
    if "clicks" not in ev.embeddings_:
        return {}
    has = np.asarray(ev.embeddings_["clicks"].mask, dtype=bool)
    out = {"catalog_no_clicks": float(1.0 - has.mean()) if len(has) else math.nan}
    for name, ho in sources.items():
        out[name] = {
            "queries_no_clicks": float(1.0 - has[ho.query_rows].mean()) if len(ho) else math.nan,
            "targets_no_clicks": float(1.0 - has[ho.target_rows].mean()) if len(ho) else math.nan,
        }
    return out


class _Progress:
    """Messages for long steps: a tqdm line when ``True``, a callback, or nothing."""

    def __init__(self, progress: bool | Callable) -> None:
        self.progress = progress

    def __call__(self, msg: str) -> None:
        if callable(self.progress):
            self.progress(msg)
        elif self.progress:
            import sys

            from tqdm.auto import tqdm

            from prodfusion._wording import worded

            tqdm.write(f"[evaluate] {worded(msg)}", file=sys.stderr)

    def close(self) -> None:
        pass
