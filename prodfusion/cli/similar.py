"""``prodfusion similar``: the k most similar products to one product."""

from __future__ import annotations

import json
import shutil
import sys

from prodfusion._checks import FUSION_METHODS
from prodfusion.cli.options import add_group_options, csv_list

__all__ = ["add_similar_parser", "cmd_similar"]


def cmd_similar(args) -> int:
    import numpy as np

    from prodfusion.fusion.weights import parse_weights
    from prodfusion.index.backfill import score_or_none
    from prodfusion.querying import mark_backfilled
    from prodfusion.recommender import Recommender

    weights = parse_weights(args.weights, "--weights")  # before loading: a typo fails fast
    rec = Recommender.load(args.model)
    cat = rec.catalog
    q = cat.row_of(args.product_id)
    r, s = rec.similar_rows(
        [q], k=args.k, fusion=args.fusion, modalities=args.modalities,
        same_category=args.same_category, exclude=args.exclude or (), weights=weights,
        calibration=args.calibration, profile=args.profile, exclude_group=args.exclude_group,
        one_per_group=args.one_per_group,
    )
    rows, scores = r[0][r[0] >= 0], s[0][r[0] >= 0]
    ids = rec.ids_of(rows)
    why = mark_backfilled(rec.explain_rows(q, rows, fusion=args.fusion,
                                           modalities=args.modalities, weights=weights,
                                           calibration=args.calibration,
                                           profile=args.profile, served=True), scores) \
        if args.explain else None
    cats = cat.categories
    titles = cat.titles
    retired = rec.retired_ is not None and bool(rec.retired_[q])
    if args.json:
        out = {
            "query": {"product_id": args.product_id, "title": titles[q],
                      "category": cats[q] if cats else None,
                      **({"retired": True} if retired else {})},
            "fusion": rec.fusion_for(args.fusion, args.profile),
            **({"profile": args.profile} if args.profile else {}),
            # given with a profile, these replace the profile's (its n0 and fallback kept)
            **({"weights": weights} if weights is not None else {}),
            **({"calibration": args.calibration} if args.calibration else {}),
            # what the query used, resolved without building an exact fuser (an HNSW model
            # answers from its index; nothing N x D is made to print a list of names)
            "modalities": list(rec.resolve(
                rec.fusion_for(args.fusion, args.profile), args.modalities)[1]),
            "results": [
                {"rank": i + 1, "product_id": pid, "title": titles[r],
                 "category": cats[r] if cats else None, "score": score_or_none(s),
                 **({"explain": why[i]} if why is not None else {})}
                for i, (pid, r, s) in enumerate(zip(ids, rows, scores, strict=True))
            ],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    if args.profile and (weights is not None or args.calibration):
        print(f"(profile {args.profile!r} with its "
              + " and ".join(x for x, given in (("weights", weights is not None),
                                                 ("calibration", args.calibration)) if given)
              + " replaced by the options given; its click confidence and fallback kept)",
              file=sys.stderr)
    if args.one_per_group is None and getattr(rec, "one_per_group", False):
        print("(one product of each group, none of the query's own, as the model was built: "
              "--one-per-group off lists every one)", file=sys.stderr)
    if rec.profiles and not args.profile:  # a build given conflicting sources has some
        print(f"(the model's own weighting; it also has the weighting profiles "
              f"{', '.join(sorted(rec.profiles))}: --profile NAME)", file=sys.stderr)
    shown = "no category" if cats and cats[q] is None else cats[q] if cats else None
    tail = (f"  [{shown}]" if cats else "")
    head = f"query {args.product_id}: "
    print(head + clip(titles[q] or "(no title)", _columns() - len(head) - len(tail)) + tail
          + ("  (retired: never recommended itself)" if retired else ""))
    print(_table(ids, rows, scores, titles, cats))
    if not len(ids):
        reasons = []
        if args.same_category and cats and cats[q] is None:
            reasons.append("--same-category: the query has no category in the catalog")
        elif args.same_category and cats:
            mates = sum(1 for c in cats if c == cats[q]) - 1
            reasons.append(f"--same-category: {mates:,} other products in {cats[q]!r}")
        lacks = [m for m, e in rec.embeddings_.items() if not e.mask[q]]
        if lacks:
            reasons.append(f"the query has no {', '.join(lacks)}")
        print("(no result" + (f": {'; '.join(reasons)}" if reasons else "") + ")")
    elif np.isnan(scores).all():
        print("(every result is a backfill: the modalities asked for rank nothing for this "
              "query, which lacks them or shares them with no product)")
    if why is not None:
        print("why (per modality: raw cosine / calibrated similarity, the pair's weight — the "
              "modality's weight times any click confidence — and its part of the score; "
              "base + parts = score, e.g. intermediate fusion's part is weight × calibrated / "
              "the weights' sum):")
        for i, e in enumerate(why):
            parts = []
            for m, v in e["modalities"].items():
                if v["raw"] is None:
                    parts.append(f"{m} –")
                else:
                    parts.append(f"{m} {v['raw']:.3f}/{v['calibrated']:.3f} w{v['weight']:.2f} "
                                 f"→ {v['share']:+.4f}")
            base = f"  base {e['base']:+.4f}" if e["base"] else ""
            if e.get("backfill"):
                base += "  (backfilled: among the most clicked, not ranked by similarity)"
            elif e.get("fallback"):
                base += ("  (last resort: shares no weighted modality with the query; ranked "
                         "after every product that does, by the fallback weights)")
            print(f"{i + 1:>4}  {ids[i]:<14} " + "  ".join(parts) + base)
    return 0


#: The fewest characters of a title a line shows, however narrow the terminal.
MIN_TITLE_WIDTH = 30
#: The line width assumed where the output is not a terminal (a pipe, a log file).
DEFAULT_COLUMNS = 120


def _columns() -> int:
    """The terminal's width (``COLUMNS`` where set), else :data:`DEFAULT_COLUMNS`."""
    return shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns


def cells(text: str) -> int:
    """Terminal cells ``text`` takes: two for a wide character (CJK, full-width forms), none
    for a combining mark, one for the rest.

    >>> cells("SORA 26cm"), cells("ＳＯＲＡ 時計"), cells("Cafe\u0301")
    (9, 13, 4)
    """
    import unicodedata

    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    """``text`` and the spaces that make it ``width`` cells wide (:func:`cells`)."""
    return text + " " * max(0, width - cells(text))


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells (at least :data:`MIN_TITLE_WIDTH`; a wide
    character takes two, :func:`cells`), ending in "…" where cut: a catalog's long titles
    keep the list one line per product (``--json`` prints them whole).

    >>> clip("Solen sarı 256 GB akıllı telefon, çift SIM, 8 GB RAM, 6.7 inç ekran", 30)
    'Solen sarı 256 GB akıllı tele…'
    >>> clip("short", 30)
    'short'
    >>> clip("ＨＩＫＡＲＩ クォーツウォッチ 青 ２４．５ｃｍ", 30)
    'ＨＩＫＡＲＩ クォーツウォッチ…'
    """
    return cut(text, max(int(width), MIN_TITLE_WIDTH))


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, ending in "…" where cut."""
    if cells(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = cells(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out).rstrip() + "…"


def _table(ids, rows, scores, titles, cats) -> str:
    """The list as aligned columns, each as wide as its longest value (a last-resort score
    such as ``-996.5071*`` or a long id keeps the columns straight); titles are cut to the
    terminal's width (:func:`clip`)."""
    from prodfusion.fusion.weights import FALLBACK_OFFSET

    shown, last_resort = [], False
    for s in scores:
        text = "popular" if s != s else f"{s:.4f}"  # NaN: backfilled
        if s < -FALLBACK_OFFSET / 2:  # ranked by the zero-weight fallback
            text, last_resort = text + "*", True
        shown.append(text)
    wid = max([14] + [cells(str(p)) for p in ids])  # terminal cells: CJK takes two each
    wsc = max([7] + [len(x) for x in shown])
    out = [f"{'rank':>4}  {'product_id':<{wid}} {'score':>{wsc}}  {'category':<22} title"]
    room = _columns() - (4 + 2 + wid + 1 + wsc + 2 + 22 + 1)
    for i, (pid, r, text) in enumerate(zip(ids, rows, shown, strict=True)):
        c = (cats[r] or "") if cats else ""
        c = cut(c, 22)
        out.append(f"{i + 1:>4}  {pad(str(pid), wid)} {text:>{wsc}}  {pad(c, 22)} "
                   f"{clip(titles[r] or '', room)}")
    if last_resort:
        out.append("* last resort: shares no weighted modality with the query, so it is ranked "
                   "after every product that does, by the fallback weights (--explain)")
    return "\n".join(out)


def add_similar_parser(sub) -> None:
    s = sub.add_parser("similar", help="the k most similar products to one product")
    s.add_argument("model", help="model folder written by `prodfusion build`")
    s.add_argument("product_id")
    s.add_argument("-k", type=int, default=15)
    s.add_argument("--fusion", default=None, choices=FUSION_METHODS)
    s.add_argument("--modalities", default=None, type=csv_list)
    s.add_argument("--same-category", action="store_true")
    s.add_argument("--exclude", default=None, type=csv_list, help="ids never to return")
    add_group_options(s)
    s.add_argument("--json", action="store_true")
    s.add_argument("--weights", default=None,
                   help="override the model's fusion weights, e.g. text=1,image=0.5,clicks=2")
    s.add_argument("--calibration", default=None, choices=["none", "zscore", "zmean"],
                   help="override the model's calibration")
    s.add_argument("--profile", default=None,
                   help="rank by one of the model's named weighting profiles (`prodfusion "
                        "tune MODEL --profile NAME`) instead of its default weighting")
    s.add_argument("--explain", action="store_true",
                   help="each modality's similarity, weight and share of every score")
    s.set_defaults(func=cmd_similar)
