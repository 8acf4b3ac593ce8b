"""The systemd units in deploy/systemd: every command line they run is one prodfusion's
parser accepts, and systemd itself finds nothing wrong with them (``systemd-analyze
verify``, where this machine has it; the prodfusion binary pointed at this environment's)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prodfusion.cli.main import build_parser

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
BINARY = "/opt/prodfusion/venv/bin/prodfusion"


def _exec_lines(unit: Path) -> list[list[str]]:
    return [shlex.split(line.split("=", 1)[1]) for line in unit.read_text().splitlines()
            if line.startswith("ExecStart=")]


def test_every_command_line_of_the_units_is_one_prodfusion_accepts():
    lines = [cmd for unit in sorted(UNITS.glob("*.service")) for cmd in _exec_lines(unit)]
    assert len(lines) == 3  # serve; build, then export
    parser = build_parser()
    for cmd in lines:
        assert cmd[0] == BINARY
        args = parser.parse_args(cmd[1:])  # exits (fails the test) on an unknown option
        assert args.command in ("serve", "build", "export")
    # the nightly job writes what the service reads
    serve, build, export = lines[-1], lines[0], lines[1]
    model = build[build.index("--out") + 1]
    assert serve[2] == model and export[2] == model
    assert serve[serve.index("--lists") + 1] == export[export.index("--out") + 1]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_finds_nothing_wrong_with_the_units(tmp_path):
    binary = Path(sys.executable).parent / "prodfusion"
    if not binary.exists():
        pytest.skip(f"no prodfusion script beside {sys.executable}")
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(BINARY, str(binary)))
    for unit in sorted(tmp_path.iterdir()):
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True, cwd=tmp_path)
        assert r.returncode == 0 and not r.stderr.strip(), (unit.name, r.stderr)
