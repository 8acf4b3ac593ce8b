"""Render evaluation results as ``report.md``, a self-contained ``report.html``, PNGs and JSON.

``write_report(results, out_dir)`` takes what :func:`~prodfusion.evaluation.evaluate_clustering`,
:func:`~prodfusion.evaluation.evaluate_retrieval` and :func:`~prodfusion.evaluation.replay`
return (one of them, a list, or a dict of them) and writes into ``out_dir``:

* ``results.json`` — every number and the exact configuration, plus ``meta`` (command line,
  machine, library versions, time), so two reports can be compared by script;
* ``report.md`` — the tables (the paper's Tables II–IV layout) linking the PNG figures;
* ``report.html`` — the same tables with the figures embedded as base64 data URIs: it opens
  offline, nothing is fetched from a CDN;
* the PNG figures (t-SNE map like the paper's Fig. 4, ARI bars, retrieval and CTR charts).

Examples
--------
>>> paths = write_report({"clustering": clu, "retrieval": ret}, "report/")  # doctest: +SKIP
>>> sorted(p.name for p in paths.values())[:2]                               # doctest: +SKIP
['ari_main.png', 'fig4_tsne.png']
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prodfusion._checks import to_jsonable
from prodfusion.errors import DataError, param_error

__all__ = ["write_report", "Table", "normalize_results", "to_jsonable"]

KINDS = ("clustering", "retrieval", "replay")


# --------------------------------------------------------------------------- tables
@dataclass
class Table:
    """A small table rendered to both Markdown and HTML."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)

    def markdown(self) -> str:
        def cell(i: int, j: int, v: str) -> str:
            v = str(v).replace("|", "\\|")
            return f"**{v}**" if (i, j) in self.bold else v

        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join("---" if j == 0 else "---:" for j in range(len(self.header))) + "|")
        for i, r in enumerate(self.rows):
            lines.append("| " + " | ".join(cell(i, j, v) for j, v in enumerate(r)) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = []
        for i, r in enumerate(self.rows):
            tds = []
            for j, v in enumerate(r):
                text = html.escape(str(v))
                if (i, j) in self.bold:
                    text = f"<b>{text}</b>"
                tds.append(f"<td>{text}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (
            f"<h4>{html.escape(self.title)}</h4><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{note}"
        )


def _num(x: Any, default: float = 0.0) -> float:
    """A float for plotting: None (NaN in results.json) and NaN become ``default``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "–"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "–"
    return f"{x:.{nd}f}"


def _pm(d: Mapping | None, nd: int = 3) -> str:
    if not d:
        return "–"
    return f"{_f(d['mean'], nd)} ± {_f(d['std'], nd)}"


def _ci(d: Mapping, nd: int = 3) -> str:
    return f"{_f(d['value'], nd)} [{_f(d['ci_lo'], nd)}, {_f(d['ci_hi'], nd)}]"


def _pct(x: float, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{nd}f}%"


def _p(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.3f}"


def _bold_max(rows: list[list[str]], cols: Sequence[int]) -> set[tuple[int, int]]:
    """Cells holding the column maximum (parsing the leading number)."""
    out = set()
    for j in cols:
        vals = []
        for i, r in enumerate(rows):
            try:
                vals.append((float(str(r[j]).split()[0].rstrip("%")), i))
            except (ValueError, IndexError):
                pass
        if vals:
            best = max(v for v, _ in vals)
            out |= {(i, j) for v, i in vals if v == best}
    return out


def write_documents(out: Path, title: str, meta: Mapping, payload: Mapping,
                    sections: Sequence[tuple[str | None, list]], last_line: str) -> None:
    """Write ``results.json`` (``payload``), ``report.md`` and ``report.html`` into ``out``.

    ``sections`` are ``(heading or None, blocks)``; a block is a :class:`Table`,
    ``("p", text)`` or ``("img", file name in out, caption)`` (embedded in the HTML). The
    head names the machine, the command and the notes of ``meta`` (:func:`_meta`), then
    ``last_line``. The one renderer of the evaluation and categorization reports.
    """
    (out / "results.json").write_text(
        json.dumps(to_jsonable(payload), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    head_lines = [
        f"Created {meta['created']} on {meta['machine']['platform']} "
        f"({meta['machine']['cpu_count']} CPUs, {meta['machine']['memory_gib']} GiB), "
        f"Python {meta['machine']['python']}.",
    ]
    if meta.get("command"):
        head_lines.append(f"Command: `{meta['command']}`")
    head_lines += [f"{key}: {value}" for key, value in (meta.get("notes") or {}).items()]
    head_lines.append(last_line)
    md = [f"# {title}", ""] + [line + "  " for line in head_lines] + [""]
    hb = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
          f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    hb += [f"<p>{html.escape(line).replace('`', '')}</p>" for line in head_lines]
    for heading, blocks in sections:
        if heading is not None:
            md += [f"## {heading}", ""]
            hb.append(f"<h2>{html.escape(heading)}</h2>")
        for b in blocks:
            if isinstance(b, Table):
                md.append(b.markdown())
                hb.append(b.html())
            elif b[0] == "p":
                md += [b[1], ""]
                hb.append(f"<p>{html.escape(b[1])}</p>")
            elif b[0] == "img":
                md += [f"![{b[2]}]({b[1]})", ""]
                data = base64.b64encode((out / b[1]).read_bytes()).decode("ascii")
                hb.append(f"<figure><img alt='{html.escape(b[2])}' "
                          f"src='data:image/png;base64,{data}'>"
                          f"<figcaption class='note'>{html.escape(b[2])}</figcaption></figure>")
    hb.append("</body></html>")
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out / "report.html").write_text("\n".join(hb), encoding="utf-8")


def normalize_results(results: Any) -> dict[str, dict]:
    """``{kind: result}`` from one result, a list of results, or a dict keyed by kind."""
    if isinstance(results, Mapping) and "kind" in results:
        items = [results]
    elif isinstance(results, Mapping):
        items = [v for k, v in results.items() if k in KINDS and v is not None]
        extra = set(results) - set(KINDS) - {"meta"}
        if extra:
            raise param_error("results", "write_report()", f"keys among {list(KINDS)}", sorted(extra))
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items = list(results)
    else:
        raise param_error("results", "write_report()", "a result dict, a list or a dict of them",
                          type(results).__name__)
    out: dict[str, dict] = {}
    for r in items:
        if not isinstance(r, Mapping) or r.get("kind") not in KINDS:
            raise DataError(
                "write_report(): every result must be a dict returned by evaluate_clustering(), "
                "evaluate_retrieval() or replay() (with 'kind' among "
                f"{list(KINDS)}); got {type(r).__name__} with kind {getattr(r, 'get', lambda _: None)('kind')!r}."
            )
        out[r["kind"]] = dict(r)
    if not out:
        raise DataError("write_report(): no results to report.")
    return out


def _command_line() -> str | None:
    """The command that is running, as typed (None inside an interpreter session or -c)."""
    argv = list(sys.argv)
    if not argv or argv[0] in ("", "-", "-c"):
        return None
    name = Path(argv[0]).name
    if name == "__main__.py" or name.startswith("pytest"):
        return None
    if name == "cli.py" or argv[0].endswith("prodfusion"):
        argv[0] = "prodfusion"
    return " ".join(argv)


def _report_meta(results, meta: Mapping | None) -> dict:
    """The report's metadata: a re-rendered results.json keeps when, where and how it was
    computed (``meta`` adds notes); fresh results get :func:`_meta`."""
    if isinstance(results, Mapping) and isinstance(results.get("meta"), Mapping):
        m = dict(results["meta"])
        if meta:
            m["notes"] = {**m.get("notes", {}), **{str(k): v for k, v in meta.items()}}
        return m
    return _meta(meta)


def _meta(extra: Mapping | None) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    libs = {}
    for pkg in ("prodfusion", "numpy", "scikit-learn", "openTSNE", "gensim", "polars", "scipy",
                "matplotlib"):
        try:
            libs[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    mem = None
    try:
        import psutil

        mem = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # psutil is a dependency, but the report must not need it
        pass
    meta = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": _command_line(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "memory_gib": mem,
        },
        "libraries": libs,
    }
    if extra:
        meta["notes"] = {str(k): v for k, v in dict(extra).items()}
    return meta


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


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
        from PIL import Image

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
                    with Image.open(ex["image"]) as im:
                        im.thumbnail((96, 144))
                        a.imshow(np.asarray(im.convert("RGB")))
                except OSError:
                    pass
            a.set_title(names[lab][:16], fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


# --------------------------------------------------------------------------- sections
def _clustering_section(res: Mapping, out: Path, figs: dict) -> tuple[list, list[str]]:
    cfg = res["config"]
    cells = res["cells"]
    blocks: list = []
    intro = (
        f"Products of the N most frequent categories (at most {cfg['max_per_category']} per "
        f"category, sample seed {cfg['sample_seed']}; products: {cfg['products']}), fused "
        f"representation → t-SNE (2-D; {', '.join(res['tsne']['backends']) or '–'}, perplexity "
        f"{cfg['perplexity']}) → k-means++ (k = N) → ARI with the categories. Each cell: mean ± "
        f"std over seeds {cfg['seeds']}. 'direct': k-means++ on the fused representation "
        "without t-SNE (early: the fused vectors; intermediate/late: classical MDS of the fused "
        f"distance matrix). t-SNE: {res['tsne']['runs']} runs, {res['tsne']['seconds_total']:.0f} s "
        f"in all; whole section {res.get('seconds', float('nan')):.0f} s."
    )
    blocks.append(("p", intro))
    sets = res["sets"]
    blocks.append(
        Table(
            "Evaluated product sets",
            ["N", "products", "categories (size)"],
            [
                [str(s["n_categories"]), str(s["n_products"]),
                 ", ".join(f"{c} ({z})" for c, z in zip(s["categories"][:8], s["category_sizes"][:8], strict=False))
                 + (" …" if len(s["categories"]) > 8 else "")]
                for s in sets.values()
            ],
        )
    )
    ns = sorted({c["n_categories"] for c in cells})
    main_n = cfg.get("main_categories") or ns[0]
    fusions = list(dict.fromkeys(c["fusion"] for c in cells if c["n_categories"] == main_n))
    combos = list(dict.fromkeys("+".join(c["combo"]) for c in cells))

    def cell(n, combo, f, key="ari_tsne"):
        c = next((c for c in cells if c["n_categories"] == n and "+".join(c["combo"]) == combo
                  and c["fusion"] == f), None)
        return _pm(c[key]) if c and c.get(key) else "–"

    rows = [[combo] + [cell(main_n, combo, f) for f in fusions] for combo in combos]
    blocks.append(Table(
        f"Table II — ARI (t-SNE + k-means++), N = {main_n} categories",
        ["modalities"] + fusions, rows, bold=_bold_max(rows, range(1, len(fusions) + 1)),
        note="The tfidf reference is one representation (no fusion); it is shown in the "
             "intermediate column." if any(c.get("reference") for c in cells) else "",
    ))
    if cfg.get("direct"):
        rows = [[combo] + [cell(main_n, combo, f, "ari_direct") for f in fusions] for combo in combos]
        blocks.append(Table(
            f"ARI of k-means++ directly on the fused representation (no t-SNE), N = {main_n}",
            ["modalities"] + fusions, rows, bold=_bold_max(rows, range(1, len(fusions) + 1)),
        ))
    if len(ns) > 1:
        t3f = cfg.get("table3_fusions") or fusions
        rows = []
        for f in t3f:
            for combo in combos:
                rows.append([f"{f}: {combo}"] + [cell(n, combo, f) for n in ns])
        blocks.append(Table(
            "Table III — ARI (t-SNE + k-means++) by number of categories",
            ["fusion: modalities"] + [f"N = {n}" for n in ns], rows,
            bold=_bold_max(rows, range(1, len(ns) + 1)),
        ))
    if res.get("figure"):
        p = out / "fig4_tsne.png"
        _fig_tsne(res["figure"], p)
        figs["fig4_tsne"] = p
        blocks.append(("img", p.name, "Fig. 4 — t-SNE of the fused representation, coloured by category"))
    p = out / "ari_main.png"
    _fig_ari(cells, main_n, p)
    figs["ari_main"] = p
    blocks.append(("img", p.name, f"ARI by modality combination and fusion, N = {main_n}"))
    return blocks, []


def _retrieval_section(res: Mapping, out: Path, figs: dict) -> tuple[list, list[str]]:
    cfg = res["config"]
    k = cfg["k"]
    blocks: list = []
    split = res["split"]
    parts = []
    for src in ("sessions", "pairs"):
        if src in split:
            s = split[src]
            if src == "sessions":
                parts.append(
                    f"sessions split {s['split']}: {s['n_train_sessions']:,} train / "
                    f"{s['n_test_sessions']:,} held-out sessions, {s['n_test_pairs']:,} held-out "
                    "consecutive pairs"
                )
            else:
                parts.append(
                    f"pairs split {s['split']}: {s['n_train_pairs']:,} train / {s['n_test_pairs']:,} "
                    f"held-out pairs ({s['n_test_pairs_seen_in_training_dropped']:,} held-out pairs "
                    "dropped because they co-occur in a training session)"
                )
    leak = split.get("leak_check", {})
    blocks.append(("p",
        f"Test fraction {cfg['test_fraction']}, k = {k}, seed {cfg['seed']}. " + "; ".join(parts)
        + f". Prod2Vec retrained on the training part only (leak check passed: "
        f"{leak.get('test_sessions_checked', 0):,} held-out sessions and "
        f"{leak.get('test_pairs_checked', 0):,} held-out pairs verified absent from training). "
        f"95% bootstrap intervals ({cfg['n_boot']} resamples) over held-out sessions (pairs: over "
        "query products). Category precision: share of the k shown that share the query's "
        "category. Coverage: share of the catalog shown at least once."
    ))
    cov = res.get("click_coverage") or {}
    for src in res["heldout"]:
        if src in cov:
            blocks.append(("p",
                f"Held-out {src}: {_pct(cov[src]['targets_no_clicks'], 1)} of targets and "
                f"{_pct(cov[src]['queries_no_clicks'], 1)} of queries have no training click "
                f"vector, against {_pct(cov['catalog_no_clicks'], 1)} of the catalog "
                f"(protocol: {cfg.get('protocol', 'whole')})."))
    flags = res.get("flags") or []
    if flags:
        blocks.append(Table(
            "FLAGGED — gains that come from one slice only (HitRate, over the best single "
            "modality or reference baseline)",
            ["source", "configuration", "comparator", "overall gain", "slice", "its share",
             "complementary slice", "its share"],
            [[f["source"], f["variant"], f["comparator"], f"{f['gain']:+.4f}", f["slice"],
              f"{f['slice_contribution']:+.4f}", f["other_slice"],
              f"{f['other_contribution']:+.4f}"] for f in flags],
        ))
    for src, ho in res["heldout"].items():
        sub = f" (sampled from {ho['subsampled_from']:,})" if ho.get("subsampled_from") else ""
        slices = list(dict.fromkeys(r["slice"] for r in res["rows"] if r["source"] == src))
        for sl in slices:
            sel = [r for r in res["rows"] if r["source"] == src and r["slice"] == sl]
            if not sel or sel[0]["n"] == 0:
                blocks.append(("p", f"Held-out {src}, slice '{sl}': no test cases."))
                continue
            rows = [[r["variant"], _ci(r["hit_rate"]), _ci(r["mrr"]), _ci(r["ndcg"]),
                     _ci(r["category_precision"]), _pct(r["coverage"], 1)] for r in sel]
            blocks.append(Table(
                f"Held-out {src} — {sl} ({sel[0]['n']:,} test cases in {sel[0]['n_groups']:,} "
                f"groups{sub if sl == 'all' else ''})",
                ["variant", f"HitRate@{k}", f"MRR@{k}", f"nDCG@{k}", f"cat. precision@{k}", "coverage"],
                rows, bold=_bold_max(rows, range(1, 5)),
            ))
        p = out / f"retrieval_{src}.png"
        _fig_retrieval(res["rows"], src, k, p)
        figs[f"retrieval_{src}"] = p
        blocks.append(("img", p.name, f"HitRate@{k} on held-out {src}"))
    return blocks, []


def _replay_section(res: Mapping, out: Path, figs: dict, top: int = 15) -> tuple[list, list[str]]:
    cfg = res["config"]
    la, lb = cfg["a"]["label"], cfg["b"]["label"]
    blocks: list = [("p",
        f"A = {la}; B = {lb}. Design: {cfg['design']}. A view is a held-out consecutive pair "
        f"a → b; it is a click for a variant when b is among the {cfg['k']} products it shows "
        "for a. CTR intervals: Wilson 95%; difference: B − A with the two-proportion z-test "
        + ("(independent samples; conservative for the paired design) and McNemar's exact test "
           "on the views clicked by only one variant." if cfg["design"] == "paired" else
           "and a sample-ratio-mismatch check.")
    )]
    for src, t in res["sources"].items():
        tot = t["total"]
        rows = [[
            f"{tot['views_a']:,} / {tot['views_b']:,}",
            f"{_pct(tot['ctr_a'])} [{_pct(tot['ctr_a_ci'][0])}, {_pct(tot['ctr_a_ci'][1])}]",
            f"{_pct(tot['ctr_b'])} [{_pct(tot['ctr_b_ci'][0])}, {_pct(tot['ctr_b_ci'][1])}]",
            f"{_pct(tot['diff'])} [{_pct(tot['diff_ci_lo'])}, {_pct(tot['diff_ci_hi'])}]",
            _pct(tot["rel_lift"], 1), _p(tot["p_value"]), _p(tot.get("mcnemar_p")),
        ]]
        blocks.append(Table(
            f"Table IV — simulated CTR on held-out {src} ({t['n_views']:,} views, "
            f"{t['n_sessions']:,} {'sessions' if src == 'sessions' else 'query products'})",
            ["views A / B", "CTR A", "CTR B", "B − A", "rel. lift", "p (z-test)", "p (McNemar)"],
            rows,
            note=(f"SRM check: p = {_p(t['srm']['p_value'])}" + (" — FLAGGED" if t["srm"]["flagged"] else "")
                  if "srm" in t else ""),
        ))
        rows = [[c["category"], f"{c['views_a']:,}", _pct(c["ctr_a"]), _pct(c["ctr_b"]),
                 _pct(c["diff"]), _p(c["p_value"])] for c in t["categories"][:top]]
        more = len(t["categories"]) - top
        blocks.append(Table(
            f"Simulated CTR per category of the viewed product, held-out {src} (most viewed first)",
            ["category", "views", "CTR A", "CTR B", "B − A", "p (z-test)"], rows,
            note=f"{more} more categories in results.json." if more > 0 else "",
        ))
        p = out / f"replay_{src}.png"
        _fig_replay(t, (f"A: {la}", f"B: {lb}"), src, p)
        figs[f"replay_{src}"] = p
        blocks.append(("img", p.name, f"Simulated CTR per category, held-out {src}"))
    return blocks, []


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}
.note{font-size:12px;color:#555}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}
"""


def write_report(
    results: Any,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    meta: Mapping | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, the PNG figures and ``results.json``.

    Parameters
    ----------
    results : dict or list
        One result of ``evaluate_clustering`` / ``evaluate_retrieval`` / ``replay``, a list
        of them, or a dict keyed by kind (``{"clustering": ..., "retrieval": ...}``).
    out_dir : path
        Created if needed; existing report files are overwritten.
    title : str, optional
        Default: the title recorded in a re-rendered ``results.json``, else
        ``"prodfusion evaluation report"``.
    meta : dict, optional
        Extra facts recorded in ``results.json["meta"]["notes"]`` and shown in the report
        header (e.g. ``{"data": "H&M subset, 11,800 products"}``). When ``results`` is a
        loaded ``results.json`` (it has a ``"meta"`` entry), its meta is kept: the report is
        re-rendered with the original date, command and machine.

    Returns
    -------
    dict
        Name → path of every file written (``report_md``, ``report_html``, ``results_json``
        and one entry per figure).
    """
    res = normalize_results(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = _report_meta(results, meta)
    title = title or m.get("title") or "prodfusion evaluation report"
    m["title"] = title
    figs: dict[str, Path] = {}
    sections: list[tuple[str, list]] = []
    for kind, fn, heading in (
        ("clustering", _clustering_section, "1. Clustering protocol (paper's Tables II–III, Fig. 4)"),
        ("retrieval", _retrieval_section, "2. Retrieval of held-out co-interactions"),
        ("replay", _replay_section, "3. Offline A/B replay (paper's Table IV)"),
    ):
        if kind in res:
            blocks, _ = fn(res[kind], out, figs)
            sections.append((heading, blocks))

    write_documents(out, title, m, {"meta": m, **res}, sections,
                    "Every number below is in results.json, with the exact configuration.")
    paths = {"report_md": out / "report.md", "report_html": out / "report.html",
             "results_json": out / "results.json"}
    paths.update(figs)
    return paths
