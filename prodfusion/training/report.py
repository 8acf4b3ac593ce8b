"""Report of :func:`~prodfusion.training.protocol.evaluate_categorization`: md, html, png, results.json.

Uses the evaluation report's machinery (:class:`~prodfusion.evaluation.report.Table`, the
same header, CSS and JSON conversion). The tables follow the paper's Table 2 (accuracy per
train fraction, origin / SimCSE / ConVIRT) and Figure 5 (macro-F1 on head and tail labels).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from prodfusion.evaluation.documents import Table, _bold_max, _pm, _report_meta, write_documents
from prodfusion.evaluation.figures import _drawn, _plt

__all__ = ["write_categorization_report"]

NAMES = {"origin": "origin", "simcse": "SimCSE", "convirt": "ConVIRT"}


@_drawn
def _fig(res: Mapping, keys: list[tuple[str, str]], path: Path, title: str) -> None:
    plt = _plt()
    methods = res["config"]["methods"]
    fractions = res["config"]["fractions"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    x = [100 * f for f in fractions]
    for ax, (key, label) in zip(axes[0], keys, strict=True):
        for m in methods:
            s = [res["summary"][m][str(f)][key] for f in fractions]
            mean = [d["mean"] if d["mean"] is not None else float("nan") for d in s]
            std = [d["std"] if d["std"] is not None else 0.0 for d in s]
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=NAMES.get(m, m))
        ax.set_xscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:g}" for v in x])
        ax.set_xlabel("% of the train split")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(res: Mapping, key: str, title: str, note: str = "") -> Table:
    methods = res["config"]["methods"]
    fractions = res["config"]["fractions"]
    header = ["encoder"] + [f"{100 * f:g} %" for f in fractions]
    rows = [[NAMES.get(m, m)] + [_pm(res["summary"][m][str(f)][key]) for f in fractions] for m in methods]
    return Table(title, header, rows, note=note, bold=_bold_max(rows, range(1, len(header))))


def _paper_row(res: Mapping, key: str = "accuracy") -> Table:
    """The paper's Table 2 cell format: one row, 'origin/SimCSE/ConVIRT' per fraction."""
    methods = res["config"]["methods"]
    fractions = res["config"]["fractions"]
    cells = []
    for f in fractions:
        vals = [res["summary"][m][str(f)][key]["mean"] for m in methods]
        cells.append("/".join("–" if v is None else f"{v:.3f}".lstrip("0") for v in vals))
    return Table(f"Table 2 layout — {key} ({'/'.join(NAMES.get(m, m) for m in methods)})",
                 ["data"] + [f"{100 * f:g} %" for f in fractions], [[res["config"]["source"]] + cells])


def write_categorization_report(results: Mapping, out_dir: str | os.PathLike, *, title: str | None = None,
                                meta: Mapping | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``fig5_head_tail.png``, ``accuracy.png`` and ``results.json``.

    ``results`` is what :func:`evaluate_categorization` returned, or a ``results.json`` it
    wrote (re-rendering keeps the original date, command and machine).
    """
    res = dict(results.get("categorization", results))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = _report_meta(results, meta)
    title = title or m.get("title") or "prodfusion item categorization report"
    m["title"] = title
    cfg, data = res["config"], res["data"]
    figs = {"fig5": out / "fig5_head_tail.png", "accuracy": out / "accuracy.png"}
    _fig(res, [("head_macro_f1", "head labels: macro-F1"), ("tail_macro_f1", "tail labels: macro-F1")],
         figs["fig5"], "Figure 5 layout: macro-F1 by label group (mean ± std over seeds)")
    _fig(res, [("accuracy", "accuracy"), ("macro_f1", "macro-F1")], figs["accuracy"],
         "Test accuracy and macro-F1 (mean ± std over seeds)")
    mode = ("logistic regression on frozen embeddings" if cfg["frozen"]
            else "fine-tuned encoder + linear layer (cross-entropy)")
    sizes = data["split_sizes"]
    facts = (
        f"{data['n_labelled']:,} labelled products ({data['n_unlabelled']:,} without a label"
        + (f" and {data['n_no_title']:,} without a title" if data.get("n_no_title") else "")
        + " left out), "
        f"{data['n_labels']} labels; split adaptation / train / dev / test = "
        f"{sizes['adaptation']:,} / {sizes['train']:,} / {sizes['dev']:,} / {sizes['test']:,}. "
        f"Head labels: {len(data['head_labels'])} labels holding {data['head_instances']:,} instances "
        f"({100 * cfg['head_share']:g} % rule); tail: {len(data['tail_labels'])} labels. "
        f"Classifier: {mode}. Seeds {cfg['seeds']}; mean ± sample std over seeds."
    )
    blocks: list = [("p", facts)]
    blocks.append(_paper_row(res, "accuracy"))
    blocks.append(_table(res, "accuracy", "Accuracy on the test split"))
    blocks.append(_table(res, "macro_f1", "Macro-F1 on the test split (labels present in the test split)"))
    blocks.append(_table(res, "head_macro_f1", "Macro-F1 on head labels"))
    blocks.append(_table(res, "tail_macro_f1", "Macro-F1 on tail labels"))
    blocks.append(_table(res, "head_accuracy", "Accuracy on head-label products"))
    blocks.append(_table(res, "tail_accuracy", "Accuracy on tail-label products"))
    blocks.append(("img", figs["fig5"].name, "Figure 5 layout: macro-F1 on head and tail labels"))
    blocks.append(("img", figs["accuracy"].name, "accuracy and macro-F1 by train fraction"))
    if res.get("adaptation"):
        rows = [[NAMES.get(k, k), f"{v['seconds']:.0f}", ", ".join(f"{x:.4f}" for x in v["loss_per_epoch"]),
                 "yes" if v.get("reused") else "no"] for k, v in res["adaptation"].items()]
        blocks.append(Table("Self-supervised adaptation on the adaptation split",
                            ["method", "seconds", "loss per epoch", "reused"], rows))
    reused = sum(v["seconds"] for v in res.get("adaptation", {}).values() if v.get("reused"))
    blocks.append(("p", f"Wall time of this run: {res['seconds']:.0f} s" + (
        f"; the adaptations marked reused ran earlier with the same data and settings and took "
        f"{reused:.0f} s more (whole evaluation: {res['seconds'] + reused:.0f} s)." if reused else ".")))

    write_documents(out, title, m, {"meta": m, "categorization": res}, [(None, blocks)],
                    "Every number below is in results.json, with the exact configuration and "
                    "every run.")
    return {"report_md": out / "report.md", "report_html": out / "report.html",
            "results_json": out / "results.json", **figs}
