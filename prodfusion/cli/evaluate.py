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

from prodfusion._checks import FUSION_METHODS, PROTOCOLS
from prodfusion.cli.evaluate_steps import (
    _finish,
    _loaded_data,
    _print_clustering,
    _print_replay,
    _print_retrieval,
    _relabel,
    _replay_unavailable,
    _run_clustering,
    _run_replay,
    _run_retrieval,
    _skip_note,
    load_interactions,
)
from prodfusion.cli.options import add_on_offer_option, apply_on_offer_option, csv_list, on_off

__all__ = ["add_evaluate_parser", "load_interactions"]


def _int_list(s: str) -> list[int]:
    try:
        return [int(p) for p in s.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


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
    g.add_argument("--p2v-seed", type=int, default=None,
                   help="override the model's Prod2Vec seed (rerun with a few to see how much "
                        "the figures move with training randomness alone)")
    g.add_argument("--workers", type=int, default=None,
                   help="Prod2Vec threads for the retraining on the training part (default: "
                        "the model's; where it gave none, one thread up to 2,000,000 training "
                        "clicks, reproducible, else every core)")
    g.add_argument("--protocol", choices=list(PROTOCOLS), default="leave-last-out",
                   help="leave-last-out (default): the last transition of each held-out session "
                        "/ one pair per held-out query product, the rest trains (a held-out "
                        "session without its target; no pair equal to a held-out transition); "
                        "whole: whole sessions / pairs held out (targets then lack click vectors "
                        "far more often than the catalog does); where the catalog looks made "
                        "of the log's own products (25%% or more of the held-out targets, 20 "
                        "or more, and 3 times the catalog's share, have no training interaction) "
                        "leave-last-out does not score the cases whose target was seen only "
                        "in the held-out part: leave-last-out-all-cases scores them (the rule "
                        "until the forty-fourth session), leave-last-out-log-catalog never "
                        "does; leave-last-out-v24: the rule before the twenty-fifth session, "
                        "to reproduce older figures")


def _retrieval_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retrieval")
    g.add_argument("--variants", nargs="+", default=None, metavar="CONFIG",
                   help="configs to score, space- or comma-separated: 'baseline', "
                        "'FUSION:MOD+MOD', a reference baseline (cooc, tfidf, popular, "
                        "cooc+tfidf; with the catalog's categories also cooc+category and "
                        "popular+category, the category's most clicked products) or config "
                        "files (.json/.toml/.yaml: fusion, modalities, fallback, name, model, "
                        "paper, profile, and weights/calibration/n0 in place of the model's, "
                        "the rest of its weighting kept as `similar --weights` keeps it) "
                        "(default: every combination × fusion where the model has up to "
                        "four modalities; beyond, each alone, all of them, all but one and "
                        "the paper's fusions; both with the model as served, the baseline "
                        "and the reference baselines; 'all': every combination whatever the "
                        "count, beside any config named with it)")
    g.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    g.add_argument("--exclude-group", action="store_true",
                   help="never recommend the query's own variation group")
    g.add_argument("--one-per-group", nargs="?", const=True, default=None, type=on_off,
                   metavar="on|off",
                   help="score lists of at most one product per variation group, a listed "
                        "product of the target's group a hit, cases within the query's own "
                        "group left out (default: the model's setting, build --one-per-group)")
    g.add_argument("--ties", choices=["mean", "row"], default="mean",
                   help="mean (default): a held-out target tied with other candidates counts at "
                        "the mean of its possible ranks, so the catalog's row order (which breaks "
                        "ties in the lists served) neither helps nor hurts; row: score the lists "
                        "as served (both are in results.json)")
    add_on_offer_option(g, "for this evaluation only")


def _replay_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("replay")
    g.add_argument("--a", default="baseline",
                   metavar="CONFIG", help="control: 'baseline' (default), 'FUSION:MOD+MOD' or a "
                   ".json/.toml/.yaml file {model, fusion, modalities, fallback, weights, "
                   "calibration, n0, paper, profile, name}; or a reference baseline name")
    g.add_argument("--b", default=None,
                   metavar="CONFIG", help="treatment, same forms (default: what the model "
                   "serves: its fusion over its modalities with its weights, as `similar`)")
    g.add_argument("--design", choices=["paired", "split"], default="paired",
                   help="paired: both see every view; split: sessions assigned 50/50")


def cmd_clustering(args) -> int:
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model)
    _relabel(args, rec)
    res = _run_clustering(args, rec)
    _print_clustering(res)
    return _finish(args, res)


def cmd_retrieval(args) -> int:
    rec, sessions, pairs = _loaded_data(args)
    apply_on_offer_option(args, rec, "evaluate retrieval")
    res = _run_retrieval(args, rec, sessions, pairs)
    _print_retrieval(res)
    return _finish(args, res)


def cmd_replay(args) -> int:
    rec, sessions, pairs = _loaded_data(args)
    if rec is not None:
        apply_on_offer_option(args, rec, "evaluate replay")
    res = _run_replay(args, rec, sessions, pairs)
    _print_replay(res)
    return _finish(args, res)


def cmd_all(args) -> int:
    rec, sessions, pairs = _loaded_data(args)
    apply_on_offer_option(args, rec, "evaluate all")
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
    _replay_opts(rp)
    add_on_offer_option(rp, "for this replay only (the default model's)")
    rp.set_defaults(func=cmd_replay)

    a = sub.add_parser("all", help="clustering, retrieval and replay in one report")
    _common(a)
    _clustering_opts(a)
    _heldout_opts(a)
    _retrieval_opts(a)
    _replay_opts(a)
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
