"""The one renderer of the library's reports: :class:`Table`, the number formats, the
header metadata (machine, command, libraries) and :func:`write_documents`, which writes
``results.json``, ``report.md`` and a self-contained ``report.html``.

Used by the evaluation report (:mod:`prodfusion.evaluation.report`), the text-encoder
comparison and the categorization report (:mod:`prodfusion.training.report`).

>>> t = Table("T", ["method", "score"], [["a", _f(0.12345)]])
>>> print(t.markdown().splitlines()[2])
| method | score |
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

from prodfusion._checks import to_jsonable

__all__ = ["Table", "write_documents"]


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


def _f(x: Any, nd: int = 3, signed: bool = False) -> str:
    if x is None:
        return "–"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "–"
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


def _pm(d: Mapping | None, nd: int = 3) -> str:
    if not d:
        return "–"
    return f"{_f(d['mean'], nd)} ± {_f(d['std'], nd)}"


def _ci(d: Mapping, nd: int = 3, signed: bool = False) -> str:
    """``value [lo, hi]``; ``signed``: a difference, ``+0.010 [-0.004, +0.024]``."""
    return (f"{_f(d['value'], nd, signed)} [{_f(d['ci_lo'], nd, signed)}, "
            f"{_f(d['ci_hi'], nd, signed)}]")


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
