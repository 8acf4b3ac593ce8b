"""``prodfusion evaluate clustering|retrieval|replay|all``: thin commands over the evaluation API.

Examples
--------
::

    prodfusion evaluate clustering MODEL_DIR --categories 3,20,50 --seeds 5 --out report/
    prodfusion evaluate retrieval MODEL_DIR --interactions views.csv --session-cols session_id \\
        --item-col item_id --time-col eventdate,timeframe --out report/
    prodfusion evaluate replay MODEL_DIR --a baseline --b intermediate:text+image+clicks \\
        --pairs copurchase.csv --out report/
"""

from __future__ import annotations

import argparse
import sys

from prodfusion._checks import FUSION_METHODS
from prodfusion.cli.options import csv_list

__all__ = ["add_evaluate_parser", "load_interactions"]


def _int_list(s: str) -> list[int]:
    try:
        return [int(p) for p in s.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def load_interactions(args, catalog):
    """``(sessions, pairs)`` from ``--interactions`` and ``--pairs``, each cleaned separately.

    They stay apart because they are split differently (sessions by time, pairs by pair).
    """
    from prodfusion.data.interactions import clean_sessions, read_interactions, read_pairs
    from prodfusion.errors import ParameterError

    sessions = pairs = None
    max_len = args.max_session_length or None
    if args.interactions:
        inter = read_interactions(
            args.interactions, session_cols=tuple(args.session_cols), item_col=args.item_col,
            time_col=args.time_col, sep=args.sep,
        )
        sessions = clean_sessions(inter, catalog, min_length=args.min_session_length,
                                  max_length=max_len)
    if args.pairs:
        if len(args.pair_cols) != 2:
            raise ParameterError(f"--pair-cols needs exactly two columns, got {args.pair_cols}.")
        pf = read_pairs(args.pairs, a_col=args.pair_cols[0], b_col=args.pair_cols[1], sep=args.sep)
        pairs = clean_sessions(pf, catalog, min_length=2, max_length=None)
    return sessions, pairs


def _p2v(args, rec):
    from dataclasses import replace

    from prodfusion.recommender import Prod2VecParams

    base = getattr(rec, "prod2vec", None) or Prod2VecParams()
    changes = {}
    for opt, name in (("p2v_epochs", "epochs"), ("p2v_dim", "vector_size"),
                      ("p2v_min_count", "min_count"), ("workers", "workers")):
        v = getattr(args, opt, None)
        if v is not None:
            changes[name] = v
    return replace(base, **changes)


def _common(p: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    if model_required:
        p.add_argument("model", metavar="MODEL_DIR", help="model folder written by `prodfusion build`")
    else:
        p.add_argument("model", metavar="MODEL_DIR", nargs="?", default=None,
                       help="default model folder for configs that name none")
    p.add_argument("--out", default="evaluation-report", metavar="REPORT_DIR",
                   help="report folder: report.md, report.html, PNGs, results.json "
                        "(default: %(default)s)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--note", action="append", default=[], metavar="KEY=TEXT",
                   help="fact recorded in the report header and results.json (repeatable), "
                        "e.g. 'data=H&M subset'")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _clustering_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clustering protocol")
    g.add_argument("--categories", type=_int_list, default=[3, 20, 50],
                   help="numbers N of most frequent categories (default: 3,20,50)")
    g.add_argument("--seeds", type=int, default=5, help="seeds per cell (default: 5)")
    g.add_argument("--max-per-category", type=int, default=100,
                   help="products sampled per category (0 = all; default: 100)")
    g.add_argument("--fusions", type=csv_list, default=list(FUSION_METHODS))
    g.add_argument("--main-categories", type=int, default=20,
                   help="N of the full combinations × fusions table (default: 20)")
    g.add_argument("--table3-fusions", type=csv_list, default=None,
                   help="fusions run for the other N (default: --fusions)")
    g.add_argument("--products", choices=["complete", "any"], default="complete",
                   help="'complete': only products with every evaluated modality (default)")
    g.add_argument("--combos", default=None,
                   help="modality combinations, ';'-separated, e.g. 'text;text,image' (default: all)")
    g.add_argument("--perplexity", type=float, default=30.0)
    g.add_argument("--backend", choices=["auto", "opentsne", "sklearn"], default="auto",
                   help="t-SNE implementation (auto: openTSNE when installed)")
    g.add_argument("--no-direct", action="store_true", help="skip k-means++ without t-SNE")
    g.add_argument("--sample-seed", type=int, default=0)
    g.add_argument("--jobs", type=int, default=1,
                   help="t-SNE / k-means threads (default: 1; -1 = all cores)")
    g.add_argument("--category-col", default=None, metavar="COLUMN",
                   help="score against this catalog column instead of the model's category "
                        "(any column of the catalog file the model was built from; no rebuild)")


def _heldout_opts(p: argparse.ArgumentParser) -> None:
    from prodfusion.cli.options import add_interaction_options

    add_interaction_options(p)
    g = p.add_argument_group("held-out evaluation")
    g.add_argument("--test-fraction", type=float, default=0.2,
                   help="latest sessions / share of pairs held out (default: 0.2)")
    g.add_argument("-k", type=int, default=15, help="recommendations shown (default: 15)")
    g.add_argument("--eval-seed", type=int, default=0, help="split and bootstrap seed")
    g.add_argument("--max-pairs", type=int, default=None,
                   help="score at most this many held-out pairs per source (whole sessions)")
    g.add_argument("--p2v-epochs", type=int, default=None, help="override the model's Prod2Vec epochs")
    g.add_argument("--p2v-dim", type=int, default=None, help="override the model's Prod2Vec dimension")
    g.add_argument("--p2v-min-count", type=int, default=None)
    g.add_argument("--workers", type=int, default=None, help="Prod2Vec threads")
    g.add_argument("--protocol", choices=["leave-last-out", "whole"], default="leave-last-out",
                   help="leave-last-out (default): the last transition of each held-out session "
                        "/ one pair per held-out query product, the rest trains; whole: whole "
                        "sessions / pairs held out (targets then lack click vectors far more "
                        "often than the catalog does)")


def _retrieval_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retrieval")
    g.add_argument("--variants", nargs="+", default=None, metavar="CONFIG",
                   help="configs to score: 'baseline', 'FUSION:MOD+MOD', a reference baseline "
                        "(cooc, tfidf, popular, cooc+tfidf) or config files (default: every "
                        "combination × fusion, the baseline and the reference baselines)")
    g.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    g.add_argument("--exclude-group", action="store_true",
                   help="never recommend the query's own variation group")


def _replay_opts(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("replay")
    g.add_argument("--a", required=required, default=None if required else "baseline",
                   metavar="CONFIG", help="control: 'baseline', 'FUSION:MOD+MOD' or a "
                   ".json/.toml/.yaml file {model, fusion, modalities, fallback}")
    g.add_argument("--b", required=required,
                   default=None if required else "intermediate:text+image+clicks",
                   metavar="CONFIG", help="treatment, same forms")
    g.add_argument("--design", choices=["paired", "split"], default="paired",
                   help="paired: both see every view; split: sessions assigned 50/50")


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
    for spec in args.variants:
        v = parse_variant(spec)
        need = set(getattr(v, "modalities", ()) or ()) | set(getattr(v, "fallback", ()) or ())
        if need - have:
            _skip_note(args, f"retrieval variant {spec!r}: needs {sorted(need - have)}, which "
                             f"the model does not have")
        else:
            keep.append(spec)
    if not keep:
        from prodfusion.errors import ParameterError

        raise ParameterError("--variants: none can run on this model (it has "
                             f"{sorted(have)}).")
    return keep


def _run_retrieval(args, rec, sessions, pairs) -> dict:
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    args.variants = _runnable_variants(args, rec)

    return evaluate_retrieval(
        rec, sessions=sessions, pairs=pairs, test_fraction=args.test_fraction, k=args.k,
        variants=args.variants, n_boot=args.n_boot, seed=args.eval_seed, max_pairs=args.max_pairs,
        prod2vec=_p2v(args, rec), exclude_group=args.exclude_group, progress=_progress(args),
        protocol=args.protocol,
    )


def _run_replay(args, rec, sessions, pairs) -> dict:
    from prodfusion.evaluation.replay import replay

    return replay(
        args.a, args.b, model=rec if rec is not None else args.model, sessions=sessions,
        pairs=pairs, test_fraction=args.test_fraction, k=args.k, design=args.design,
        seed=args.eval_seed, max_pairs=args.max_pairs, prod2vec=_p2v(args, rec),
        progress=_progress(args), protocol=args.protocol,
    )


def _finish(args, results) -> int:
    from prodfusion.evaluation.report import write_report

    meta = _meta(args)
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


def cmd_clustering(args) -> int:
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model)
    _relabel(args, rec)
    res = _run_clustering(args, rec)
    _print_clustering(res)
    return _finish(args, res)


def _loaded_data(args):
    from prodfusion.errors import ParameterError
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model) if args.model else None
    if rec is not None:  # what the build read, unless the command line says otherwise
        from prodfusion.cli.options import add_interaction_options
        from prodfusion.sources import fill_from_manifest

        p = argparse.ArgumentParser(add_help=False)
        add_interaction_options(p)
        taken = fill_from_manifest(args, rec.manifest_, vars(p.parse_args([])))
        if taken:
            print(f"from the model's record: {' '.join(taken)}", file=sys.stderr)
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
    return rec, sessions, pairs


def cmd_retrieval(args) -> int:
    rec, sessions, pairs = _loaded_data(args)
    res = _run_retrieval(args, rec, sessions, pairs)
    _print_retrieval(res)
    return _finish(args, res)


def cmd_replay(args) -> int:
    rec, sessions, pairs = _loaded_data(args)
    res = _run_replay(args, rec, sessions, pairs)
    _print_replay(res)
    return _finish(args, res)


def cmd_all(args) -> int:
    rec, sessions, pairs = _loaded_data(args)
    _relabel(args, rec)
    results = {"clustering": _run_clustering(args, rec)}
    _print_clustering(results["clustering"])
    results["retrieval"] = _run_retrieval(args, rec, sessions, pairs)
    _print_retrieval(results["retrieval"])
    missing = _replay_unavailable(args, rec)
    if missing:
        _skip_note(args, f"replay: {missing}")
    else:
        results["replay"] = _run_replay(args, rec, sessions, pairs)
        _print_replay(results["replay"])
    return _finish(args, results)


def _replay_unavailable(args, rec) -> str | None:
    """Why the default replay cannot run on this model (None when it can)."""
    from prodfusion.evaluation.retrieval import parse_variant

    # clicks and cooc are retrained / recounted on the training part of the interactions
    have = set(rec.available_modalities) | (
        {"clicks", "cooc"} if (args.interactions or args.pairs) else set())
    for opt in ("a", "b"):
        v = parse_variant(getattr(args, opt))
        if v.model is not None:
            continue
        need = set(v.modalities) | set(v.fallback or ())
        if not need <= have:
            return (f"--{opt} {v.label!r} needs {sorted(need)} but the model has {sorted(have)}; "
                    "pass --a/--b configs that fit the model.")
    return None


def cmd_render(args) -> int:
    """Re-render a report from its results.json (same numbers, same meta)."""
    import json
    from pathlib import Path

    from prodfusion.errors import DataError

    path = Path(args.results)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read results JSON ({exc}).") from None
    return _finish(args, data)


def _print_clustering(res) -> None:
    main = res["config"]["main_categories"]
    print(f"clustering (t-SNE: {', '.join(res['tsne']['backends'])}):", file=sys.stderr)
    for c in res["cells"]:
        if main is None or c["n_categories"] == main:
            d = c["ari_direct"]
            print(f"  N={c['n_categories']:<3} {'+'.join(c['combo']):<20} {c['fusion']:<12} "
                  f"ARI {c['ari_tsne']['mean']:.3f} ± {c['ari_tsne']['std']:.3f}"
                  + (f"   direct {d['mean']:.3f} ± {d['std']:.3f}" if d else ""), file=sys.stderr)


def _print_retrieval(res) -> None:
    k = res["config"]["k"]
    for r in res["rows"]:
        if r["slice"] == "all":
            h = r["hit_rate"]
            print(f"  {r['source']:<8} {r['variant']:<40} HitRate@{k} {h['value']:.4f} "
                  f"[{h['ci_lo']:.4f}, {h['ci_hi']:.4f}]  MRR {r['mrr']['value']:.4f}  "
                  f"n={r['n']}", file=sys.stderr)
    for f in res.get("flags", []):
        print(f"  FLAG {f['source']}: {f['variant']} gains {f['gain']:+.4f} HitRate over "
              f"{f['comparator']} only in slice '{f['slice']}'", file=sys.stderr)


def _print_replay(res) -> None:
    for src, t in res["sources"].items():
        tot = t["total"]
        print(f"  replay {src}: CTR A {tot['ctr_a']:.4f}  CTR B {tot['ctr_b']:.4f}  "
              f"diff {tot['diff']:+.4f} [{tot['diff_ci_lo']:+.4f}, {tot['diff_ci_hi']:+.4f}]  "
              f"p={tot['p_value']:.3g}", file=sys.stderr)


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` (with clustering|retrieval|replay|all) on the main CLI."""
    ev = subparsers.add_parser(
        "evaluate", help="offline evaluation: clustering protocol, retrieval, A/B replay, report",
        description="Offline evaluation. Every subcommand writes REPORT_DIR with report.md, "
                    "report.html (self-contained), PNG figures and results.json.",
    )
    sub = ev.add_subparsers(dest="kind", required=True, metavar="KIND")

    c = sub.add_parser("clustering", help="t-SNE + k-means++ + ARI against categories (Tables II-III)")
    _common(c)
    _clustering_opts(c)
    c.set_defaults(func=cmd_clustering)

    r = sub.add_parser("retrieval", help="HitRate/MRR/nDCG@k of held-out co-interactions")
    _common(r)
    _heldout_opts(r)
    _retrieval_opts(r)
    r.set_defaults(func=cmd_retrieval)

    rp = sub.add_parser("replay", help="offline A/B replay of held-out sessions (Table IV)")
    _common(rp, model_required=False)
    _heldout_opts(rp)
    _replay_opts(rp, required=True)
    rp.set_defaults(func=cmd_replay)

    a = sub.add_parser("all", help="clustering, retrieval and replay in one report")
    _common(a)
    _clustering_opts(a)
    _heldout_opts(a)
    _retrieval_opts(a)
    _replay_opts(a, required=False)
    a.set_defaults(func=cmd_all)

    rd = sub.add_parser("render", help="re-render report.md/report.html/PNGs from a results.json")
    rd.add_argument("results", metavar="RESULTS_JSON", help="results.json of an earlier report")
    rd.add_argument("--out", required=True, metavar="REPORT_DIR")
    rd.add_argument("--title", default=None)
    rd.add_argument("--note", action="append", default=[], metavar="KEY=TEXT")
    rd.set_defaults(func=cmd_render)

    from prodfusion.cli.text_encoders import add_text_encoder_parser

    add_text_encoder_parser(sub)
    return ev


__all__ += ["cmd_clustering", "cmd_retrieval", "cmd_replay", "cmd_all", "cmd_render"]
