"""``prodfusion adapt simcse|convirt`` and ``prodfusion categorize train|evaluate|predict``.

Examples
--------
::

    H=../shared/data/hm
    CAT="--catalog $H/articles.csv --id-col article_id --title-col prod_name \\
         --category-col product_type_name --image-root $H/images --image-template {product_id}.jpg"
    prodfusion adapt convirt $CAT --out hm_convirt            # then: prodfusion build --text st:hm_convirt …
    prodfusion categorize train $CAT --encoder st:hm_convirt --out hm_cat
    prodfusion categorize predict hm_cat $CAT --only-missing --out predicted.csv
    prodfusion categorize evaluate $CAT --seeds 3 --out docs/results/hm_categorization
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_adapt_parser", "add_categorize_parser"]


def _floats(s: str) -> list[float]:
    try:
        return [float(p) for p in s.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _seeds(s: str) -> list[int]:
    """'3' means seeds 0,1,2; '0,5,9' lists them."""
    try:
        if "," not in s:
            return list(range(int(s)))
        return [int(p) for p in s.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated integers, got {s!r}") from None


def _cache(args):
    from prodfusion.cli.options import embedding_cache

    return embedding_cache(args)


def _adapt_options(p: argparse.ArgumentParser) -> None:
    from prodfusion.cli.options import _photo_workers, default_cache_dir
    from prodfusion.training._st import DEFAULT_BASE

    g = p.add_argument_group("adaptation (defaults: the paper's, except where noted)")
    g.add_argument("--base", default=DEFAULT_BASE,
                   help="encoder to adapt, st:<name-or-path> (default: packaged all-MiniLM-L6-v2)")
    g.add_argument("--epochs", type=int, default=1,
                   help="passes over the titles (paper: 50; default %(default)s to fit a CPU budget)")
    g.add_argument("--adapt-batch-size", "--batch-size", dest="adapt_batch_size", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (paper: 1e-5)")
    g.add_argument("--weight-decay", type=float, default=1e-8)
    g.add_argument("--head-lr", type=float, default=1e-3,
                   help="ConVIRT projection heads' learning rate (CPU deviation; default %(default)s)")
    g.add_argument("--max-seq-length", type=int, default=24, help="tokens per title")
    g.add_argument("--temperature", type=float, default=None,
                   help="τ (default: 0.05 SimCSE, 0.1 ConVIRT)")
    g.add_argument("--alpha", type=float, default=0.75, help="ConVIRT weight of text→image")
    g.add_argument("--projection-dim", type=int, default=768)
    g.add_argument("--image", default="effnet-lite0", help="ConVIRT image encoder (effnet-lite0, clip:…)")
    g.add_argument("--train-image-encoder", action="store_true",
                   help="ConVIRT: unfreeze the image tower (slow without a GPU)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu")
    g.add_argument("--cache-dir", default=default_cache_dir(), help="embedding cache for image features")
    g.add_argument("--cache-dtype", default="float32", choices=["float32", "float16"])
    g.add_argument("--photo-workers", type=_photo_workers, default=None, metavar="N",
                   help="threads fetching photos named by URL or in a bucket (default 16, or "
                        "$PRODFUSION_PHOTO_WORKERS)")


def _adapt_config(args):
    from prodfusion.training.adapt import AdaptConfig

    return AdaptConfig(
        base=args.base, epochs=args.epochs, batch_size=args.adapt_batch_size, lr=args.lr,
        weight_decay=args.weight_decay, head_lr=args.head_lr, max_seq_length=args.max_seq_length,
        temperature=args.temperature, alpha=args.alpha, projection_dim=args.projection_dim,
        image=args.image, train_image_encoder=args.train_image_encoder, seed=args.seed,
        device=args.device,
    )


def cmd_adapt(args) -> int:
    from prodfusion.cli.options import load_catalog
    from prodfusion.training.adapt import adapt

    t0 = time.perf_counter()
    catalog = load_catalog(args)
    manifest = adapt(args.method, catalog, args.out, _adapt_config(args), progress=True,
                     **({"cache": _cache(args)} if args.method == "convirt" else {}))
    losses = ", ".join(f"{v:.4f}" for v in manifest["loss_per_epoch"])
    print(f"{args.method} adaptation of {args.base} written to {args.out} in "
          f"{time.perf_counter() - t0:.1f}s (loss per epoch: {losses})")
    print(f"use it with: prodfusion build --text st:{args.out} …")
    return 0


def add_adapt_parser(sub) -> argparse.ArgumentParser:
    """Register ``adapt simcse|convirt``."""
    from prodfusion.cli.options import add_catalog_options

    a = sub.add_parser("adapt", help="adapt a title encoder to a catalog (SimCSE, ConVIRT)",
                       description="Self-supervised adaptation of a sentence-transformers title encoder. "
                                   "Writes a sentence-transformers folder (+ adaptation.json) usable as "
                                   "`prodfusion build --text st:OUT`. Re-running an interrupted command "
                                   "resumes after its last finished epoch.")
    a.add_argument("method", choices=["simcse", "convirt"])
    add_catalog_options(a)
    a.add_argument("--out", required=True, help="output folder (replaced only when training finished)")
    _adapt_options(a)
    a.set_defaults(func=cmd_adapt)
    return a


# ----------------------------------------------------------------------------- categorize
def _label_catalog(args):
    from prodfusion.cli.options import load_catalog
    from prodfusion.errors import DataError

    catalog = load_catalog(args)
    if not catalog.has_categories:
        raise DataError(
            f"{args.catalog}: no category labels (column {args.category_col!r} is absent or empty); "
            "name the label column with --category-col."
        )
    return catalog


def _classifier_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("classifier")
    g.add_argument("--frozen", action="store_true",
                   help="logistic regression on frozen embeddings instead of fine-tuning")
    g.add_argument("--ft-epochs", type=int, default=10, help="fine-tuning epochs (paper: 30)")
    g.add_argument("--ft-batch-size", type=int, default=32)
    g.add_argument("--ft-lr", type=float, default=5e-5, help="Adam learning rate of the encoder")
    g.add_argument("--ft-head-lr", type=float, default=1e-3, help="Adam learning rate of the linear layer")
    g.add_argument("--ft-max-seq-length", type=int, default=24)
    g.add_argument("--C", type=float, default=10.0, help="logistic regression: inverse regularisation")
    g.add_argument("--head-init", default="logistic", choices=["logistic", "random"],
                   help="fine-tuning starts the linear layer from a logistic regression (default) "
                        "or at random (the paper)")


def _classifier_kwargs(args) -> dict:
    return dict(epochs=args.ft_epochs, batch_size=args.ft_batch_size, lr=args.ft_lr,
                head_lr=args.ft_head_lr, max_seq_length=args.ft_max_seq_length, C=args.C,
                head_init=args.head_init,
                device=args.device)


def cmd_cat_train(args) -> int:
    from prodfusion._outputs import check_replaceable_folder
    from prodfusion.encoders.text import title_mask
    from prodfusion.training._st import CATEGORIZER_MARKER
    from prodfusion.training.categorize import CategoryClassifier

    t0 = time.perf_counter()
    check_replaceable_folder(args.out, CATEGORIZER_MARKER, "--out")  # before any training
    catalog = _label_catalog(args)
    named = title_mask(catalog.titles)  # a product without a title teaches nothing
    rows = [i for i, c in enumerate(catalog.categories)
            if c is not None and str(c).strip() and named[i]]
    titles = [catalog.titles[i] for i in rows]
    labels = [catalog.categories[i] for i in rows]
    _say_sparse_labels(labels)
    clf = CategoryClassifier(encoder=args.encoder, frozen=args.frozen, seed=args.seed,
                             **_classifier_kwargs(args)).fit(titles, labels, holdout=args.holdout)
    clf.save(args.out, extra={"data": {"source": str(args.catalog), "label_column": args.category_col,
                                       "n_labelled": len(rows), "n_unlabelled": len(catalog) - len(rows)}})
    print(f"categorizer ({'frozen' if args.frozen else 'fine-tuned'} {args.encoder}, {len(clf.classes_)} "
          f"labels, {clf.n_train_:,} of {len(rows):,} labelled products"
          f"{f', {len(catalog) - len(rows):,} without a label or title left out' if len(catalog) > len(rows) else ''}"
          f") written to {args.out} in {time.perf_counter() - t0:.1f}s")
    h = clf.holdout_
    if h:
        how = ("then refitted on every labelled product" if h["refit_on_all"] else
               f"they chose the epoch ({clf.best_epoch_} of {clf.epochs}), so this leans "
               "optimistic; the model is trained without them")
        print(f"  on {h['n']:,} held-out products ({100 * h['share']:.0f} %, stratified; {how}): "
              f"accuracy {h['accuracy']:.3f}, macro-F1 {h['macro_f1']:.3f}; "
              f"head labels {h['head_accuracy']:.3f} / {h['head_macro_f1']:.3f} "
              f"({h['head_labels']}), tail labels "
              + (f"{h['tail_accuracy']:.3f} / {h['tail_macro_f1']:.3f} ({h['tail_labels']})"
                 if h["tail_labels"] else "none among them"))
    else:
        acc = float((clf.predict(titles)[0] == labels).mean()) if len(titles) <= 20000 else float("nan")
        print(f"  training accuracy {acc:.3f} (on the products it learnt from; --holdout "
              "measures it on others)")
    return 0


def _say_sparse_labels(labels: list[str]) -> None:
    """Warn of labels with a single labelled product: the classifier cannot learn them from
    one title, nor can a held-out set check them."""
    from collections import Counter

    counts = Counter(labels)
    single = sorted(c for c, n in counts.items() if n == 1)
    if single:
        print(f"warning: {len(single):,} of {len(counts):,} labels have a single labelled product "
              f"(e.g. {', '.join(repr(c) for c in single[:3])}): too few to learn well, and never "
              "held out", file=sys.stderr)


def cmd_cat_predict(args) -> int:
    from prodfusion._outputs import check_output_file
    from prodfusion.cli.options import load_catalog
    from prodfusion.training.predict import is_predictions_file, predict_categories

    if args.out:  # before any work: a mistyped --out never replaces the catalog or a log
        check_output_file(args.out, "--out", ours=is_predictions_file,
                          inputs=[args.catalog], written_by="a predictions file of an earlier "
                          "`prodfusion categorize predict --out`")
    catalog = load_catalog(args)
    frame = predict_categories(args.model, catalog, only_missing=args.only_missing, device=args.device)
    if args.out:
        from pathlib import Path

        out = Path(args.out)
        if out.suffix == ".parquet":
            frame.write_parquet(out)
        else:
            frame.write_csv(out, separator="\t" if out.suffix == ".tsv" else ",")
        counts = frame["source"].value_counts()
        n = dict(zip(counts["source"].to_list(), counts["count"].to_list(), strict=True))
        print(f"{frame.height:,} products written to {out}: {n.get('predicted', 0):,} "
              f"predicted, {n.get('given', 0):,} with their given category"
              + (f", {n['no title']:,} without a title or a category (none predicted)"
                 if n.get("no title") else ""), file=sys.stderr)
    else:
        frame.write_csv(sys.stdout)
    return 0


def cmd_cat_evaluate(args) -> int:
    from prodfusion.training.protocol import evaluate_categorization
    from prodfusion.training.report import write_categorization_report

    catalog = _label_catalog(args)
    encoders = {}
    for item in args.encoder or []:
        name, sep, spec = item.partition("=")
        if not sep or name not in ("simcse", "convirt"):
            raise argparse.ArgumentTypeError(f"--encoder takes simcse=st:PATH or convirt=st:PATH, got {item!r}")
        encoders[name] = spec
    t0 = time.perf_counter()
    res = evaluate_categorization(
        catalog, methods=args.methods, base=args.base, fractions=args.fractions, seeds=args.seeds,
        split=args.split, split_seed=args.split_seed, head_share=args.head_share, frozen=args.frozen,
        max_dev=args.max_dev,
        classifier=_classifier_kwargs(args), adapt_config=_adapt_config(args), encoders=encoders,
        work_dir=args.work_dir, cache=_cache(args),
    )
    paths = write_categorization_report(res, args.out, meta={
        "data": str(args.catalog), "wall time": f"{time.perf_counter() - t0:.0f} s"})
    print(f"report written to {paths['report_md']} ({time.perf_counter() - t0:.0f}s)")
    return 0


def add_categorize_parser(sub) -> argparse.ArgumentParser:
    """Register ``categorize train|evaluate|predict``."""
    from prodfusion.cli.options import add_catalog_options, csv_list
    from prodfusion.training._st import DEFAULT_BASE

    c = sub.add_parser("categorize", help="predict categories from titles (train, evaluate, predict)")
    cs = c.add_subparsers(dest="action", required=True, metavar="ACTION")

    t = cs.add_parser("train", help="fine-tune encoder + linear layer (or --frozen logistic regression)")
    add_catalog_options(t)
    t.add_argument("--encoder", default=DEFAULT_BASE, help="st:<name-or-path> (origin or adapted)")
    t.add_argument("--out", required=True, help="model folder to write")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--holdout", type=float, default=0.1, metavar="SHARE",
                   help="share of the labelled products set aside, stratified, to report "
                        "accuracy and macro-F1 on titles the classifier did not learn from "
                        "(frozen: then refitted on all; fine-tuned: they choose the epoch and "
                        "stay out); 0: none, training accuracy only (default 0.1)")
    _classifier_options(t)
    t.set_defaults(func=cmd_cat_train)

    p = cs.add_parser("predict", help="categories and probabilities for a catalog's products")
    p.add_argument("model", help="folder written by `categorize train`")
    add_catalog_options(p)
    p.add_argument("--only-missing", action="store_true",
                   help="predict only products without a category; others keep theirs")
    p.add_argument("--out", default=None, help="CSV/TSV/Parquet file (default: CSV on stdout)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_cat_predict)

    e = cs.add_parser("evaluate", help="the paper's protocol: origin vs SimCSE vs ConVIRT by train fraction")
    add_catalog_options(e)
    e.add_argument("--out", required=True, help="report folder")
    e.add_argument("--methods", type=csv_list, default=["origin", "simcse", "convirt"])
    e.add_argument("--fractions", type=_floats, default=[0.05, 0.1, 0.25, 0.5, 0.75, 1.0],
                   help="shares of the train split, each in (0, 1]")
    e.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="a count (3) or a list (0,1,2)")
    e.add_argument("--split", type=_floats, default=[0.5, 0.3, 0.1, 0.1],
                   help="adaptation,train,dev,test shares")
    e.add_argument("--split-seed", type=int, default=0)
    e.add_argument("--head-share", type=float, default=0.8, help="head labels hold this share of instances")
    e.add_argument("--encoder", action="append", default=None,
                   help="reuse an adapted encoder: simcse=st:PATH or convirt=st:PATH (repeatable)")
    e.add_argument("--max-dev", type=int, default=None,
                   help="fine-tuning: choose the epoch on at most this many dev products (default: all)")
    e.add_argument("--work-dir", default=None, help="where adapted encoders are written (kept; resumable)")
    _classifier_options(e)
    _adapt_options(e)
    e.set_defaults(func=cmd_cat_evaluate)
    return c
