"""The steps behind ``prodfusion evaluate``: load the model and its interactions, run each
protocol of :mod:`prodfusion.evaluation`, print its summary and write the report. The
parser and the commands are in :mod:`prodfusion.cli.evaluate`.
"""

from __future__ import annotations

import sys

from prodfusion.cli.options import csv_list
from prodfusion.pipeline import prod2vec_params as _p2v  # the build's and tune's, one home

__all__ = ["load_interactions"]


def load_interactions(args, catalog):
    """``(sessions, pairs)`` from ``--interactions`` and ``--pairs``, each cleaned separately.

    They stay apart because they are split differently (sessions by time, pairs by pair).
    """
    from prodfusion.cli.options import read_log, session_gap
    from prodfusion.data.interactions import clean_sessions, read_pairs
    from prodfusion.errors import ParameterError

    sessions = pairs = None
    max_len = args.max_session_length or None
    gap = session_gap(args)
    if args.interactions:
        inter = read_log(args)
        sessions = clean_sessions(inter, catalog, min_length=args.min_session_length,
                                  max_length=max_len, session_gap=gap)
    if args.pairs:
        if len(args.pair_cols) != 2:
            raise ParameterError(f"--pair-cols needs exactly two columns, got {args.pair_cols}.")
        pf = read_pairs(args.pairs, a_col=args.pair_cols[0], b_col=args.pair_cols[1], sep=args.sep,
                        encoding=getattr(args, "interactions_encoding", None))
        pairs = clean_sessions(pf, catalog, min_length=2, max_length=None)
    return sessions, pairs


def _progress(args):
    return not args.quiet


def _meta(args) -> dict:
    meta = {}
    for note in args.note:
        key, sep, text = note.partition("=")
        if sep:
            meta[key.strip()] = text.strip()
        else:
            meta.setdefault("notes", []).append(note)
    return meta


def _skip_note(args, text: str) -> None:
    """What cannot run is skipped, said on stderr and recorded in the report."""
    print(f"skipped: {text}", file=sys.stderr)
    args.skipped = [*getattr(args, "skipped", []), text]


def _run_clustering(args, rec) -> dict:
    from prodfusion.evaluation.clustering import evaluate_clustering

    combos = None
    if args.combos:
        combos = []
        for c in (csv_list(c) for c in args.combos.split(";") if c.strip()):
            missing = [m for m in c if m not in rec.embeddings_]
            if missing:  # a modality the model does not have (e.g. no image column)
                _skip_note(args, f"combination {'+'.join(c)}: the model has no {missing} "
                                 f"modality (it has {list(rec.embeddings_)})")
            else:
                combos.append(c)
        if not combos:
            from prodfusion.errors import ParameterError

            raise ParameterError(f"--combos: no combination can run on this model (it has "
                                 f"{list(rec.embeddings_)}).")
    res = evaluate_clustering(
        rec, categories=args.categories, seeds=args.seeds,
        max_per_category=args.max_per_category or None, combos=combos, fusions=args.fusions,
        main_categories=args.main_categories, table3_fusions=args.table3_fusions,
        products=args.products, perplexity=args.perplexity, backend=args.backend,
        direct=not args.no_direct, sample_seed=args.sample_seed, n_jobs=args.jobs,
        progress=_progress(args),
    )
    for note in res.get("notes") or []:
        _skip_note(args, f"clustering: {note}")
    return res


def _runnable_variants(args, rec):
    """``--variants`` without those needing a modality the model lacks (each noted)."""
    if not args.variants:
        return args.variants
    from prodfusion.evaluation.retrieval import parse_variant

    # clicks and cooc are retrained / recounted on the training part of the interactions
    have = set(rec.available_modalities) | (
        {"clicks", "cooc"} if (args.interactions or args.pairs) else set())
    keep = []
    specs = _variant_specs(args)
    for spec in specs:
        if spec.strip().lower() == "all":  # every combination of what the model has
            keep.append(spec)
            continue
        v = parse_variant(spec)
        need = set(getattr(v, "modalities", ()) or ()) | set(getattr(v, "fallback", ()) or ())
        if getattr(v, "kind", "").endswith("+category") and not rec.catalog.has_categories:
            _skip_note(args, f"retrieval variant {spec!r}: needs the catalog's categories, "
                             "which this model's catalog lacks (`prodfusion build "
                             "--category-col COLUMN`)")
        elif need - have:
            _skip_note(args, f"retrieval variant {spec!r}: needs {sorted(need - have)}, which "
                             f"the model does not have")
        else:
            keep.append(spec)
    if not keep:
        from prodfusion.errors import ParameterError

        raise ParameterError("--variants: none can run on this model (it has "
                             f"{sorted(have)}).")
    return keep


def _weightings_used(args) -> set | None:
    """The model weightings ``evaluate retrieval --variants`` rank by: ``None`` for the
    model's own, a profile's name for a profile; ``None`` (unknown: all) without ``--variants``
    or for another step. References and ``paper`` variants rank by none."""
    if getattr(args, "kind", None) != "retrieval" or not getattr(args, "variants", None):
        return None
    from prodfusion.evaluation.baselines import Reference
    from prodfusion.evaluation.retrieval import parse_variant

    used = set()
    for spec in _variant_specs(args):
        if spec.strip().lower() == "all":  # the grid and the model's profiles: all of them
            return None
        v = parse_variant(spec)
        if isinstance(v, Reference) or v.paper:
            continue
        if v.profile is not None:
            used.add(v.profile)
        else:  # the model's own; its tuned calibration, n0 and fallback under weights given
            used.add(None)
    return used


def _variant_specs(args) -> list[str]:
    """``--variants`` as one spec each: 'tuned,cooc' as well as 'tuned' 'cooc' (--modalities
    takes commas; a file keeps its name)."""
    from pathlib import Path

    return [x.strip() for s in args.variants
            for x in ([s] if Path(s).is_file() else s.split(",")) if x.strip()]


def _check_tuning_split(args, rec, sessions, pairs) -> None:
    """Warn (stderr and the report's notes) when the model's tuned weights, or one of its
    weighting profiles, may have seen this evaluation's test part
    (:func:`prodfusion.evaluation.tuning.split_mismatch`)."""
    from prodfusion.evaluation.tuning import split_mismatch

    if rec is None:
        return
    records = [("the model's weights", (getattr(rec, "manifest_", None) or {}).get("tuning"))]
    records += [(f"the weights of profile {name!r}", entry.get("tuning"))
                for name, entry in sorted(rec.profiles.items())]
    used = _weightings_used(args)
    if used is not None:  # named variants: only the weightings they rank by can leak
        records = [r for r, key in zip(records, [None, *sorted(rec.profiles)], strict=True)
                   if key in used]
    for what, record in records:
        why = split_mismatch(record, sessions=sessions, pairs=pairs,
                             test_fraction=args.test_fraction, seed=args.eval_seed,
                             protocol=args.protocol, what=what)
        if why:
            print(f"warning: {why}", file=sys.stderr)
            args.note = [*(args.note or []), f"WARNING: {why}"]


def _run_retrieval(args, rec, sessions, pairs, **extra) -> dict:
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    args.variants = _runnable_variants(args, rec)

    return evaluate_retrieval(
        rec, sessions=sessions, pairs=pairs, test_fraction=args.test_fraction, k=args.k,
        variants=args.variants, n_boot=args.n_boot, seed=args.eval_seed, max_pairs=args.max_pairs,
        prod2vec=_p2v(args, rec), exclude_group=args.exclude_group,
        one_per_group=getattr(args, "one_per_group", None), progress=_progress(args),
        protocol=args.protocol, ties=getattr(args, "ties", "mean"), **extra,
    )


def _treatment(args, rec):
    """``--b``, or what the model serves: its default fusion over its modalities, with its own
    weighting (a tuned model's weights, ``cooc`` … included), as ``similar`` answers."""
    if args.b is not None:
        return args.b
    if rec is None:  # no model folder: the paper's Table IV treatment
        return "intermediate:text+image+clicks"
    from prodfusion.variants import Variant

    method, mods = rec.resolve()
    return Variant(method, mods, name=f"the model's lists ({method}:{'+'.join(mods)})")


def _run_replay(args, rec, sessions, pairs) -> dict:
    from prodfusion.evaluation.replay import replay

    return replay(
        args.a, _treatment(args, rec), model=rec if rec is not None else args.model,
        sessions=sessions,
        pairs=pairs, test_fraction=args.test_fraction, k=args.k, design=args.design,
        seed=args.eval_seed, max_pairs=args.max_pairs, prod2vec=_p2v(args, rec),
        progress=_progress(args), protocol=args.protocol,
    )


def _interactions_note(args) -> str | None:
    """How the evaluated interactions were read (the options taken from the model's record
    included), for the report's head: its sessions depend on them."""
    from prodfusion.data.interactions import format_keep_rows

    if not (getattr(args, "interactions", None) or getattr(args, "pairs", None)):
        return None
    parts = []
    if args.interactions:
        gap = getattr(args, "session_gap", None)
        parts.append(f"{args.interactions} (--session-cols {','.join(args.session_cols)} "
                     f"--item-col {args.item_col}"
                     + (f" --time-col {args.time_col}" if args.time_col else "")
                     + (f" --time-format '{args.time_format}'"
                        if getattr(args, "time_format", None) else "")
                     + (f" --interactions-encoding {args.interactions_encoding}"
                        if getattr(args, "interactions_encoding", None) else "")
                     + (f" {format_keep_rows(args.keep_rows)}"
                        if getattr(args, "keep_rows", None) else "")
                     + (f" --session-gap {gap:g}s" if gap else "") + ")")
    if args.pairs:
        parts.append(f"pairs {args.pairs} (--pair-cols {','.join(args.pair_cols)})")
    return "; ".join(parts)


def _finish(args, results) -> int:
    from prodfusion.evaluation.report import write_report

    meta = _meta(args)
    note = _interactions_note(args)
    if note:
        meta.setdefault("interactions", note)
    if getattr(args, "skipped", None):
        meta["skipped"] = list(args.skipped)
    kw = {"meta": meta}
    if args.title:
        kw["title"] = args.title
    paths = write_report(results, args.out, **kw)
    print(f"report written to {paths['report_md'].parent}: report.md, report.html, "
          f"results.json and {len(paths) - 3} figure(s)")
    return 0


def _relabel(args, rec) -> None:
    """``--category-col``: score against another label column of the model's catalog."""
    if not getattr(args, "category_col", None):
        return
    from prodfusion.data.catalog import Catalog
    from prodfusion.sources import label_column

    col = label_column(rec.catalog, args.category_col, rec.manifest_)
    if col != "category":
        import polars as pl

        frame = rec.catalog.frame.with_columns(pl.col(col).cast(pl.Utf8).alias("category"))
        rec.catalog = Catalog(frame, source=rec.catalog.source)
    print(f"clustering against the labels of column {args.category_col!r}", file=sys.stderr)


def _loaded_data(args):
    from prodfusion.errors import ParameterError
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model) if args.model else None
    if rec is not None:  # what the build read, unless the command line says otherwise
        from prodfusion.cli.options import fill_interactions_from_record

        fill_interactions_from_record(args, rec)
    if not (args.interactions or args.pairs):
        raise ParameterError(
            f"evaluate {args.kind} needs held-out interactions: pass --interactions (sessions, "
            "split by time) and/or --pairs (co-interaction pairs, split by pair); the model "
            "folder records none."
        )
    catalog = rec.catalog if rec is not None else None
    if catalog is None:
        from prodfusion.evaluation.retrieval import parse_variant

        va = parse_variant(args.a)
        if va.model is None:
            raise ParameterError(
                "evaluate replay needs MODEL_DIR or a config --a that names its model."
            )
        rec_a = Recommender.load(va.model)
        catalog = rec_a.catalog
    sessions, pairs = load_interactions(args, catalog)
    _check_tuning_split(args, rec, sessions, pairs)  # once per command, before any scoring
    return rec, sessions, pairs


def _replay_unavailable(args, rec) -> str | None:
    """Why the default replay cannot run on this model (None when it can)."""
    from prodfusion.evaluation.retrieval import parse_variant

    # clicks and cooc are retrained / recounted on the training part of the interactions
    have = set(rec.available_modalities) | (
        {"clicks", "cooc"} if (args.interactions or args.pairs) else set())
    for opt in ("a", "b"):
        v = parse_variant(getattr(args, opt) if opt == "a" else _treatment(args, rec))
        if v.model is not None:
            continue
        need = set(v.modalities) | set(v.fallback or ())
        if not need <= have:
            return (f"--{opt} {v.label!r} needs {sorted(need)} but the model has {sorted(have)}; "
                    "pass --a/--b configs that fit the model.")
    return None


def _print_clustering(res) -> None:
    """The results, on stdout (progress and warnings go to stderr)."""
    main = res["config"]["main_categories"]
    print(f"clustering (t-SNE: {', '.join(res['tsne']['backends'])}):")
    cells = [c for c in res["cells"] if main is None or c["n_categories"] == main]
    width = max([20] + [len("+".join(c["combo"])) for c in cells])  # one column, any combo
    for c in cells:
        d = c["ari_direct"]
        print(f"  N={c['n_categories']:<3} {'+'.join(c['combo']):<{width}} {c['fusion']:<12} "
              f"ARI {c['ari_tsne']['mean']:.3f} ± {c['ari_tsne']['std']:.3f}"
              + (f"   direct {d['mean']:.3f} ± {d['std']:.3f}" if d else ""))


def _print_retrieval(res) -> None:
    from prodfusion.evaluation.documents import _ci
    from prodfusion.evaluation.retrieval import served_summary

    k = res["config"]["k"]
    for r in res["rows"]:
        if r["slice"] == "all":
            h = r["hit_rate"]
            print(f"  {r['source']:<8} {r['variant']:<40} HitRate@{k} {h['value']:.4f} "
                  f"[{h['ci_lo']:.4f}, {h['ci_hi']:.4f}]  MRR {r['mrr']['value']:.4f}  "
                  f"n={r['n']}")
    for f in res.get("flags", []):
        print(f"  FLAG {f['source']}: {f['variant']} gains {f['gain']:+.4f} HitRate over "
              f"{f['comparator']} only in slice '{f['slice']}'")
    for d in res.get("paired", []):
        if d["slice"] == "all":
            n = d["ndcg"]
            print(f"  {d['source']}: {d['variant']} − {d['comparator']}: nDCG@{k} "
                  f"{n['value']:+.4f} [{n['ci_lo']:+.4f}, {n['ci_hi']:+.4f}] (paired): "
                  f"{d['verdict']}")
    summary = served_summary(res)
    if summary:  # last, where a long list of configurations ends: which one is the model
        print(f"the model as served ({res['served']}: its fusion, modalities and weighting):")
        for s in summary:
            r = s["row"]
            print(f"  {s['source']}: HitRate@{k} {_ci(r['hit_rate'], 4)}  "
                  f"nDCG@{k} {_ci(r['ndcg'], 4)}  on {r['n']:,} held-out cases")
            for d in s["paired"]:
                print(f"    minus {d['comparator']} ({d['kind']}): nDCG@{k} "
                      f"{_ci(d['ndcg'], 4, signed=True)}: {d['verdict']}")


def _print_replay(res) -> None:
    for src, t in res["sources"].items():
        tot = t["total"]
        print(f"  replay {src}: CTR A {tot['ctr_a']:.4f}  CTR B {tot['ctr_b']:.4f}  "
              f"diff {tot['diff']:+.4f} [{tot['diff_ci_lo']:+.4f}, {tot['diff_ci_hi']:+.4f}]  "
              f"p={tot['p_value']:.3g}")
