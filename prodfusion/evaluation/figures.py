"""The PNG figures of the evaluation report: the t-SNE map (the paper's Fig. 4), ARI bars,
retrieval hit rates and per-category CTRs (matplotlib, imported when first drawn)."""

from __future__ import annotations

import functools
import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from prodfusion.evaluation.documents import _num

__all__ = ["FALLBACK_FONTS", "fallback_fonts"]

logger = logging.getLogger("prodfusion.evaluation")

#: Fonts that draw the scripts matplotlib's own font (DejaVu Sans) lacks — Japanese,
#: Chinese, Korean, Arabic, Hebrew, Thai, Devanagari — by the names their packages install
#: (Debian's fonts-noto-cjk, fonts-ipafont-gothic, fonts-wqy-zenhei, …; macOS's and
#: Windows' own). Those on the machine are tried after the usual font, glyph by glyph.
FALLBACK_FONTS = (
    "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
    "Noto Sans JP", "Noto Sans SC", "Noto Sans KR", "Source Han Sans", "IPAexGothic",
    "IPAGothic", "IPAPGothic", "TakaoGothic", "VL Gothic", "Droid Sans Fallback",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Hiragino Sans", "Hiragino Kaku Gothic Pro",
    "Yu Gothic", "Meiryo", "MS Gothic", "Microsoft YaHei", "SimHei", "PingFang SC",
    "Apple SD Gothic Neo", "Malgun Gothic", "NanumGothic", "Noto Sans Arabic",
    "Noto Sans Hebrew", "Noto Sans Thai", "Noto Sans Devanagari", "Arial Unicode MS",
)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@functools.cache
def fallback_fonts() -> tuple[str, ...]:
    """The :data:`FALLBACK_FONTS` installed on this machine, in that order (fonts installed
    after matplotlib cached its font list are looked for too)."""
    from matplotlib import font_manager

    known = {f.fname for f in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read
                continue
    names = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(n for n in FALLBACK_FONTS if n in names)


_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")


def _drawn(draw: Callable) -> Callable:
    """A figure function drawn with the installed :func:`fallback_fonts` after the usual
    font, so category names and titles in other scripts show; characters no installed font
    has are said once, in words (matplotlib warns once per glyph), naming the figure."""
    import inspect

    signature = inspect.signature(draw)

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        plt = _plt()
        path = signature.bind(*args, **kwargs).arguments.get("path")
        family = [*plt.rcParams["font.family"], *fallback_fonts()]
        with warnings.catch_warnings(record=True) as caught, \
                plt.rc_context({"font.family": family}):
            warnings.simplefilter("always")
            out = draw(*args, **kwargs)
        missing = []
        for w in caught:
            m = _GLYPH.search(str(w.message))
            if m is None:  # not ours to judge: passed on
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            elif chr(int(m.group(1))) not in missing:
                missing.append(chr(int(m.group(1))))
        if missing:
            logger.warning(
                "%s: %d character(s) of its labels are in no installed font (%s), so they "
                "show as empty boxes; the report's tables hold them as text. Install a font "
                "that draws them (Debian/Ubuntu: apt install fonts-noto-cjk for Japanese, "
                "Chinese and Korean; fonts-noto-core for other scripts) and write the report "
                "again.", Path(path).name if path else draw.__name__, len(missing),
                "".join(missing[:12]) + ("…" if len(missing) > 12 else ""))
        return out

    return wrapper


@_drawn
def _fig_tsne(fig_data: Mapping, path: Path) -> None:
    """t-SNE map coloured by category, legend, and one example image per category."""
    plt = _plt()
    xy = np.asarray(fig_data["xy"], dtype=float)
    labels = np.asarray(fig_data["labels"])
    names = list(fig_data["categories"])
    examples = fig_data.get("examples") or []
    n = len(names)
    cmap = plt.get_cmap("tab20" if n <= 20 else "gist_ncar", max(n, 1))
    has_img = any(e for e in examples)
    n_img_rows = int(math.ceil(n / 10)) if has_img else 0
    fig = plt.figure(figsize=(11, 8 + 1.5 * n_img_rows))
    gs = fig.add_gridspec(1 + n_img_rows, 1, height_ratios=[8] + [1.5] * n_img_rows)
    ax = fig.add_subplot(gs[0])
    for lab in range(n):
        sel = labels == lab
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(lab), label=names[lab], alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"t-SNE of {fig_data['fusion']} fusion ({'+'.join(fig_data['combo'])}), "
        f"{n} categories, {len(labels)} products, seed {fig_data['seed']}"
    )
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2,
              frameon=False)
    if has_img:
        import io

        from PIL import Image

        from prodfusion.data.photos import PhotoFetchError
        from prodfusion.encoders.image import _read

        sub = gs[1:].subgridspec(n_img_rows, 10)
        for lab in range(n):
            a = fig.add_subplot(sub[lab // 10, lab % 10])
            a.set_xticks([])
            a.set_yticks([])
            for s in a.spines.values():
                s.set_edgecolor(cmap(lab))
                s.set_linewidth(3)
            ex = examples[lab] if lab < len(examples) else None
            if ex:
                try:
                    with Image.open(io.BytesIO(_read(ex["image"]))) as im:
                        im.thumbnail((96, 144))
                        a.imshow(np.asarray(im.convert("RGB")))
                except (OSError, PhotoFetchError):  # a photo gone: its frame stays empty
                    pass
            a.set_title(names[lab][:16], fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@_drawn
def _fig_ari(cells: list[Mapping], n: int, path: Path) -> None:
    plt = _plt()
    main = [c for c in cells if c["n_categories"] == n]
    combos = list(dict.fromkeys("+".join(c["combo"]) for c in main))
    fusions = list(dict.fromkeys(c["fusion"] for c in main))
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(combos)), 4))
    w = 0.8 / max(1, len(fusions))
    for j, f in enumerate(fusions):
        means, errs = [], []
        for combo in combos:
            c = next((c for c in main if "+".join(c["combo"]) == combo and c["fusion"] == f), None)
            means.append(_num(c["ari_tsne"]["mean"], np.nan) if c else np.nan)
            errs.append(_num(c["ari_tsne"]["std"]) if c else 0.0)
        ax.bar(np.arange(len(combos)) + (j - (len(fusions) - 1) / 2) * w, means, w, yerr=errs,
               label=f, capsize=2)
    ax.set_xticks(np.arange(len(combos)))
    ax.set_xticklabels(combos, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ARI (t-SNE + k-means++)")
    ax.set_title(f"Agreement with the {n} most frequent categories (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@_drawn
def _fig_retrieval(rows: list[Mapping], source: str, k: int, path: Path) -> None:
    plt = _plt()
    sel = [r for r in rows if r["source"] == source and r["slice"] == "all"]
    sel = sorted(sel, key=lambda r: -_num(r["hit_rate"]["value"], -1.0))
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(sel) + 1.5))
    y = np.arange(len(sel))
    v = np.array([_num(r["hit_rate"]["value"]) for r in sel])
    lo = np.array([_num(r["hit_rate"]["ci_lo"]) for r in sel])
    hi = np.array([_num(r["hit_rate"]["ci_hi"]) for r in sel])
    ax.barh(y, v, xerr=[np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)], capsize=2,
            color="tab:blue")
    ax.set_yticks(y)
    ax.set_yticklabels([r["variant"] for r in sel], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"HitRate@{k} (95% bootstrap CI)")
    ax.set_title(f"Held-out {source}: retrieval of the next product")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@_drawn
def _fig_replay(table: Mapping, labels: tuple[str, str], source: str, path: Path,
                top: int = 12) -> None:
    plt = _plt()
    cats = [table["total"] | {"category": "TOTAL"}] + list(table["categories"][:top])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(cats) + 1.5))
    y = np.arange(len(cats))
    for j, (side, color) in enumerate((("a", "tab:gray"), ("b", "tab:orange"))):
        v = np.array([_num(c[f"ctr_{side}"]) for c in cats])
        ci = np.array([[_num(x) for x in c[f"ctr_{side}_ci"]] for c in cats])
        ax.barh(y + (j - 0.5) * 0.4, v, 0.4, color=color, label=labels[j],
                xerr=[np.clip(v - ci[:, 0], 0, None), np.clip(ci[:, 1] - v, 0, None)], capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{c['category'][:28]} ({c['views_a'] + c['views_b']:,})" for c in cats],
                       fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("simulated CTR (95% Wilson CI)")
    ax.set_title(f"Offline A/B replay on held-out {source} (views in brackets)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
