"""Lists of a classifieds site's live listings (fifty-third session): built on the nightly
feed of the listings on sale, or on the whole archive (sold and expired listings kept for
their clicks) with ``--recommend-rows status=active``, and the same archive with each
listing's posting and end times (``--on-offer-cols posted,ended``: the tuning then ranks
each validation click among the listings online at its time by the site's own dates
rather than by the listings' first and last clicks).

The made-up site of ``benchmarks/classifieds.py`` (45 days; listings online a few days) is
cut at the start of day 40: the models see the listings posted before it and the clicks of
days 0–39; they are scored on the next clicks of days 40–44 from one listing on sale at the
cut to another (listings posted later are in no model). The builds are ``prodfusion
build``'s defaults; the references rank the same listings on sale: ``cooc`` (sessions
holding both, counted over the whole log), ``tfidf`` (title character 3–5-grams),
``cooc+tfidf`` and ``popular`` (training clicks). Paired 95 % bootstrap intervals over the
test cases. Also: the share of each list of a listing on sale that is the same model (the
generator's truth).

    python benchmarks/classifieds_lists.py --work /tmp/q53b --out docs/benchmarks/classifieds_lists.md
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import case_ci, command_line, machine, write_markdown  # noqa: E402
from classifieds import ended, make_site  # noqa: E402

K = 15
CUT = 40  # the first test day
START = datetime(2024, 5, 1)
FIELDS = ["listing_id", "title", "category", "price", "city", "posted", "status", "ended",
          "image"]
BUILD = ["build", "--id-col", "listing_id", "--title-col", "title", "--category-col",
         "category", "--image-col", "image", "--interactions", "train_clicks.csv",
         "--session-cols", "session", "--item-col", "listing_id", "--time-col", "ts"]
MODELS = {"the feed of listings on sale": ["--catalog", "live.csv"],
          "the archive, --recommend-rows status=active": [
              "--catalog", "archive.csv", "--recommend-rows", "status=active"],
          "the archive, also --on-offer-cols posted,ended": [
              "--catalog", "archive.csv", "--recommend-rows", "status=active",
              "--on-offer-cols", "posted,ended"]}
FOLDERS = dict(zip(MODELS, ("model_live", "model_archive", "model_archive_dates"), strict=True))


def _run(work: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "prodfusion.cli", *args], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _split(work: Path, listings: list[dict]) -> tuple[set, list, list]:
    """The files at the cut; returns the listings on sale, the training sessions and the
    test steps ``(query, target)`` between two listings on sale at the cut."""
    on_sale = {x["listing_id"] for x in listings if x["day"] < CUT <= x["gone"]}
    for name, keep in (("archive.csv", lambda x: x["day"] < CUT),
                       ("live.csv", lambda x: x["listing_id"] in on_sale)):
        with open(work / name, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
            w.writeheader()
            for x in listings:
                if keep(x):
                    w.writerow({**x, "status": "active" if x["listing_id"] in on_sale
                                else "sold" if x["sold"] else "expired",
                                "ended": "" if x["listing_id"] in on_sale
                                else ended(x, CUT)})
    cut = (START + timedelta(days=CUT)).isoformat(sep=" ")
    with open(work / "clicks.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if r["ts"] < cut]
    with open(work / "train_clicks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["session", "listing_id", "ts"])
        w.writeheader()
        w.writerows(train)
    sessions: dict[str, list[str]] = {}
    for r in train:
        sessions.setdefault(r["session"], []).append(r["listing_id"])
    steps = []
    test: dict[str, list[str]] = {}
    for r in rows:
        if r["ts"] >= cut:
            test.setdefault(r["session"], []).append(r["listing_id"])
    for seq in test.values():
        for q, t in zip(seq, seq[1:], strict=False):
            if q != t and q in on_sale and t in on_sale:
                steps.append((q, t))
    return on_sale, list(sessions.values()), steps


def _references(listings, on_sale: set, sessions: list, queries: list[str]) -> dict:
    """Each reference's top-K listings on sale per query."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids = [x["listing_id"] for x in listings if x["day"] < CUT]
    row = {p: i for i, p in enumerate(ids)}
    titles = [x["title"] for x in listings if x["day"] < CUT]
    n = len(ids)
    s = [j for j, seq in enumerate(sessions) for _ in set(seq)]
    r = [row[p] for seq in sessions for p in set(seq)]
    b = sparse.csr_matrix((np.ones(len(s)), (s, r)), shape=(len(sessions), n))
    cooc = (b.T @ b).tocsr()
    cooc.setdiag(0)
    pop = np.asarray(b.sum(axis=0)).ravel()
    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(
        titles)
    sale = np.array([p in on_sale for p in ids])
    out: dict[str, list[list[str]]] = {k: [] for k in ("cooc", "tfidf", "cooc+tfidf",
                                                       "popular")}
    for q in queries:
        i = row[q]
        ok = sale.copy()
        ok[i] = False
        levels = {"cooc": [cooc[i].toarray().ravel()], "tfidf": [(x[i] @ x.T).toarray().ravel()],
                  "popular": [pop.astype(float)]}
        levels["cooc+tfidf"] = levels["cooc"] + levels["tfidf"]
        for name, scores in levels.items():
            got: list[int] = []
            for sc in scores:  # a list from the first level, filled from the next
                cand = np.flatnonzero(ok & (sc > 0))
                cand = [c for c in cand[np.lexsort((cand, -sc[cand]))] if c not in got]
                got += cand[:K - len(got)]
            out[name].append([ids[c] for c in got])
    return out


def _scores(lists: list[list[str]], steps: list) -> tuple[np.ndarray, np.ndarray]:
    hit, ndcg = np.zeros(len(steps)), np.zeros(len(steps))
    for j, ((_, t), got) in enumerate(zip(steps, lists, strict=True)):
        if t in got[:K]:
            hit[j] = 1.0
            ndcg[j] = 1.0 / np.log2(got.index(t) + 2)
    return hit, ndcg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path, help="folder for the site and models")
    ap.add_argument("--out", default=None, help="markdown report to write")
    ap.add_argument("--reuse", action="store_true",
                    help="score the models already in --work instead of building them")
    args = ap.parse_args()
    from prodfusion import Recommender

    listings = make_site(args.work)
    model_of = {x["listing_id"]: x["model"] for x in listings}
    on_sale, sessions, steps = _split(args.work, listings)
    clicked = {p for seq in sessions for p in seq}
    queries = list(dict.fromkeys(q for q, _ in steps))
    lists: dict[str, list[list[str]]] = {}
    secs = {}
    every = sorted(on_sale)
    same_model: dict[str, float] = {}
    for name, extra in MODELS.items():
        folder = args.work / FOLDERS[name]
        if not (args.reuse and folder.exists()):
            secs[name] = _run(args.work, [*BUILD, *extra, "--out", str(folder)])
        rec = Recommender.load(folder)
        got, _ = rec.similar_batch(queries, k=K)
        lists[name] = [[str(i) for i in row if i is not None] for row in got]
        allg, _ = rec.similar_batch(every, k=K)
        same_model[name] = float(np.mean([np.mean([model_of[str(i)] == model_of[q]
                                                   for i in row if i is not None])
                                          for q, row in zip(every, allg, strict=True)]))
        assert all(str(i) in on_sale for row in allg for i in row if i is not None)
    # the pages of listings sold or expired before the cut (a visitor from a search engine):
    # only the archive's model knows them
    gone = sorted({x["listing_id"] for x in listings if x["day"] < CUT} - on_sale)
    rec = Recommender.load(args.work / "model_archive")
    got, _ = rec.similar_batch(gone, k=K)
    gone_same = {"archive": float(np.mean([np.mean([model_of[str(i)] == model_of[q]
                                                   for i in row if i is not None])
                                          for q, row in zip(gone, got, strict=True)]))}
    assert all(str(i) in on_sale for row in got for i in row if i is not None)
    gone_same["tfidf"] = float(np.mean([np.mean([model_of[i] == model_of[q] for i in got])
                                        if got else 0.0 for q, got in zip(
                                            gone, _references(listings, on_sale, sessions,
                                                              gone)["tfidf"], strict=True)]))
    refs = _references(listings, on_sale, sessions, every)
    for name, ref_lists in refs.items():
        by_q = dict(zip(every, ref_lists, strict=True))
        lists[name] = [by_q[q] for q in queries]
        same_model[name] = float(np.mean([np.mean([model_of[i] == model_of[q] for i in got])
                                          if got else 0.0 for q, got in by_q.items()]))
    at = {q: i for i, q in enumerate(queries)}
    scored = {name: _scores([v[at[q]] for q, _ in steps], steps) for name, v in lists.items()}
    warm = np.array([q in clicked for q, _ in steps])
    fresh = np.array([t in clicked for _, t in steps])  # False: a target never clicked
    n_archive = sum(x["day"] < CUT for x in listings)
    lines = ["# Lists of a classifieds site's live listings: the nightly feed or the archive",
             "", f"Command: `{command_line()}`  ", f"Machine: {machine()}  ",
             f"Data: the made-up site of `benchmarks/classifieds.py` cut at day {CUT}: "
             f"{n_archive:,} listings posted before it, {len(on_sale):,} of them on sale at the "
             f"cut; {sum(map(len, sessions)):,} clicks of days 0–{CUT - 1} to learn from; "
             f"{len(steps):,} next clicks of days {CUT}–44 from one listing on sale at the cut "
             f"to another ({int(warm.sum()):,} from a listing clicked before the cut, "
             f"{int((~warm).sum()):,} from one never clicked before). Every list holds listings "
             "on sale only (checked).", "",
             "| lists | build seconds | HitRate@15 | nDCG@15 | HitRate@15, query clicked "
             "before | HitRate@15, query never clicked | HitRate@15, target never clicked "
             f"({int((~fresh).sum()):,}) | same model among the 15 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, (hit, ndcg) in scored.items():
        tag = f"prodfusion build on {name}" if name in MODELS else f"`{name}`"
        took = f"{secs[name]:.0f}" if name in secs else "–"
        lines.append(f"| {tag} | {took} | {hit.mean():.3f} | {ndcg.mean():.3f} "
                     f"| {hit[warm].mean():.3f} | {hit[~warm].mean():.3f} | "
                     f"{hit[~fresh].mean():.3f} | {same_model[name]:.3f} |")
    a, b, c = MODELS
    best = max(refs, key=lambda r: scored[r][1].mean())
    lines += ["", "Paired differences in nDCG@15 (95 % bootstrap over the test cases):", ""]
    named = {a: "the feed", b: "the archive's model",
             c: "the archive's model with the listings' dates"}
    for one, other in ((b, a), (b, best), (c, a), (c, best), (c, b)):
        d = scored[one][1] - scored[other][1]
        lo, hi = case_ci(d)
        lines.append(f"- {named[one]} − {named.get(other, f'`{other}`')}"
                     f"{' (the best reference)' if other == best else ''}: {d.mean():+.4f} "
                     f"[{lo:+.4f}, {hi:+.4f}]")
        for part, m in (("query clicked before", warm), ("query never clicked", ~warm),
                        ("target never clicked", ~fresh)):
            lo, hi = case_ci(d[m])
            lines.append(f"  - {part} ({int(m.sum()):,}): {d[m].mean():+.4f} "
                         f"[{lo:+.4f}, {hi:+.4f}]")
    lines += ["", f"The pages of the {len(gone):,} listings sold or expired before the cut (a "
              "visitor arriving from a search engine or an old link): the feed's model does "
              "not know them (`similar` answers that the id is unknown); the archive's model "
              "lists listings on sale (checked), "
              f"{gone_same['archive']:.3f} of them the same model, against "
              f"{gone_same['tfidf']:.3f} for `tfidf` over the archive's titles."]
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
