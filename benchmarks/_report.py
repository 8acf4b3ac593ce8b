"""What the benchmark scripts share at their end: the markdown report printed and, where
asked, written (its folder made)."""

from __future__ import annotations

from pathlib import Path


def write_markdown(lines: list[str], out: str | Path | None = None) -> str:
    """``lines`` joined into a markdown text, printed, and written to ``out`` (UTF-8; its
    folder created) when given; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return text


def command_line(argv: list[str] | None = None) -> str:
    """``python benchmarks/<this script> <its arguments>``: how the report was made."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    return f"python benchmarks/{Path(sys.argv[0]).name}" + "".join(f" {a}" for a in args)


def machine() -> str:
    """The machine in words for a report's head (no GPU is used by the benchmarks)."""
    import os
    import platform

    return f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, no GPU"
