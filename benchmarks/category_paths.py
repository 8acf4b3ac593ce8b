"""Category paths on H&M (fifty-fourth session): the same catalog with its category column
as the product type alone (flat, what earlier sessions built on), as the path ``product group
> product type`` and as ``index group > product group > product type`` — a Shopify- or Google-
taxonomy-shaped column. Flat, a path is one more label; read as a path, the category modality
scores sibling types by the levels they share.

Each catalog is built by ``prodfusion build`` without titles' encoders or photos (``--text
none --image none --lexical none``: clicks, cooc, category and popularity, the category
modality forced on; ``--category-paths`` for the paths), on the held-out-free split the build tunes with, from the co-purchase
pairs and the customer-day baskets; each model is then scored by ``evaluate_retrieval`` on its
default split (the test part its tuning held out): the model as served, the category alone,
and the references ``popular+category`` (the category's bestsellers, by its flat label) and
``cooc``. Paired differences over the same test cases (95 % bootstrap over cases).

    python benchmarks/category_paths.py --work /tmp/q54h2 --out docs/benchmarks/category_paths.md

Data: ``../shared/data/hm`` (``PRODFUSION_SHARED_DATA``), read, never copied into the repo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import case_ci, command_line, machine, write_markdown  # noqa: E402

CATALOGS = {
    "flat: product type": ["product_type_name"],
    "path: product group > product type": ["product_group_name", "product_type_name"],
    "path: index group > product group > product type": [
        "index_group_name", "product_group_name", "product_type_name"],
}
K = 15


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA",
                                                     str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    hm = Path(args.data) / "hm"
    args.work.mkdir(parents=True, exist_ok=True)
    arts = pl.read_csv(hm / "articles.csv", infer_schema_length=0)
    from prodfusion import Recommender
    from prodfusion.data import clean_sessions, read_interactions, read_pairs
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    results, secs, models = {}, {}, {}
    for name, cols in CATALOGS.items():
        slug = f"cat{len(cols)}"
        path = args.work / f"{slug}.csv"
        arts.select("article_id", "prod_name", pl.concat_str(
            [pl.col(c) for c in cols], separator=" > ").alias("category")).write_csv(path)
        folder = args.work / f"model_{slug}"
        if not folder.exists():
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "prodfusion.cli", "build", "--catalog", str(path),
                 "--id-col", "article_id", "--title-col", "prod_name", "--category-col",
                 "category", "--text", "none", "--image", "none", "--lexical", "none",
                 "--category-modality", "on", *(["--category-paths"] if len(cols) > 1 else []),
                 "--interactions", str(hm / "transactions.csv"),
                 "--session-cols", "customer_id,t_dat", "--item-col", "article_id",
                 "--time-col", "t_dat", "--pairs", str(hm / "copurchase.csv"), "--pair-cols",
                 "article_id,partner_article_id", "--out", str(folder)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            (folder.parent / f"{slug}.seconds").write_text(f"{time.perf_counter() - t0:.1f}")
        secs[name] = float((folder.parent / f"{slug}.seconds").read_text()) \
            if (folder.parent / f"{slug}.seconds").exists() else float("nan")
        rec = Recommender.load(folder)
        models[name] = rec
        sessions = clean_sessions(read_interactions(
            hm / "transactions.csv", session_cols=("customer_id", "t_dat"),
            item_col="article_id", time_col="t_dat"), rec.catalog)
        pairs = clean_sessions(read_pairs(hm / "copurchase.csv", a_col="article_id",
                                          b_col="partner_article_id"), rec.catalog,
                               max_length=None)
        served = _served_label(rec)
        results[name] = res = evaluate_retrieval(
            rec, sessions=sessions, pairs=pairs, k=K, keep_cases=True, progress=False,
            variants=[served, "intermediate:category", "popular+category", "cooc"])
        assert res["served"] == served, res["served"]
        res["cases"].update({("served", s): c for (v, s), c in list(res["cases"].items())
                             if v == served})
        if rec.category_.levels is not None:  # the same column read flat: each path a label
            from prodfusion.fusion.category import CategoryMatch

            rec.category_ = CategoryMatch.from_catalog(rec.catalog, sep=None)
            flat = evaluate_retrieval(rec, sessions=sessions, pairs=pairs, k=K,
                                      keep_cases=True, progress=False,
                                      variants=["intermediate:category"])
            res["cases"].update({("flat", s): c for (v, s), c in flat["cases"].items()})
    lines = ["# Category paths on H&M: the product type alone or its path", "",
             f"Command: `{command_line()}`  ", f"Machine: {machine()}  ",
             "Data: `../shared/data/hm` (11,800 articles; co-purchase pairs and customer-day "
             "baskets as interactions); each model built by `prodfusion build --text none "
             "--image none --lexical none --category-modality on` (and `--category-paths` for the "
             "paths) on the catalog whose `category` column is the type alone or its path, "
             "tuned by the build; scored by "
             "`evaluate_retrieval` on the default split (the test part its tuning held out), "
             "ties at their mean rank.", ""]
    for src in ("pairs", "sessions"):
        first = next(iter(results.values()))
        n = len(next(c for (v, s), c in first["cases"].items() if s == src)["hit"])
        lines += [f"## Held-out {src} ({n:,} cases)", "",
                  "| category column | build seconds | weights | the model as served: "
                  "HitRate@15 / nDCG@15 | category alone | `popular+category` | `cooc` |",
                  "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
        for name, res in results.items():
            cases = res["cases"]

            def cell(label, cases=cases, src=src):
                c = next(c for (v, s), c in cases.items() if s == src and v == label)
                return f"{c['hit'].mean():.3f} / {c['ndcg'].mean():.3f}"

            w = models[name].weights or {}
            trees = models[name].weighting().learned is not None
            lines.append(f"| {name} | {secs.get(name, float('nan')):.0f} | "
                         + ", ".join(f"{m} {x:.2f}" for m, x in w.items() if x > 0)
                         + (" and boosted trees over them" if trees else "")
                         + f" | {cell('served')} | {cell('intermediate:category')} | "
                         f"{cell('popular+category')} | {cell('cooc')} |")
        lines += ["", "Paired differences in nDCG@15 (95 % bootstrap over the test cases):",
                  ""]
        flat = results["flat: product type"]["cases"]
        for name, res in list(results.items())[1:]:
            cases = res["cases"]

            def diff(a_key, b_key, b_cases=cases, src=src, cases=cases):
                a = next(c for (v, s), c in cases.items() if s == src and v == a_key)
                b = next(c for (v, s), c in b_cases.items() if s == src and v == b_key)
                d = a["ndcg"] - b["ndcg"]
                lo, hi = case_ci(d)
                return f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"

            lines += [f"- {name}: the category alone read as paths − the same column read "
                      f"flat (each path one label): {diff('intermediate:category', 'flat')}",
                      f"  - the category alone − the product type alone: "
                      f"{diff('intermediate:category', 'intermediate:category', flat)}",
                      f"  - the model as served − the product type's model as served: "
                      f"{diff('served', 'served', flat)}"]
        lines.append("")
    lines += ["The builds tune on a validation split of the interactions (the test part set "
              "aside) and adopt boosted trees over the weights where their out-of-fold gain "
              "clears the bar; whether they do follows from the validation scores, which "
              "the category column changes even at weight 0 (the trees read every "
              "modality)."]
    write_markdown(lines, args.out)


def _served_label(rec) -> str:
    """The model's own fusion as an ``evaluate_retrieval`` variant (its weights are the
    model's)."""
    return "intermediate:" + "+".join(rec.modalities)


if __name__ == "__main__":
    main()
