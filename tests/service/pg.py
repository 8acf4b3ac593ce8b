"""Start a throw-away PostgreSQL server for the event-store tests (when one can be started)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile


def find_pg_bin() -> str | None:
    """Folder of initdb/pg_ctl: $PATH, else Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(cands[-1]) if cands else None


class TempPostgres:
    """initdb + pg_ctl start in a temp folder, Unix socket only; as user 'postgres' when root."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.base = tempfile.mkdtemp(prefix="pf-pg-")
        self.data = os.path.join(self.base, "data")
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust", "-U", "pf",
                  "--no-sync", "-E", "UTF8")
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w", "-t", "60",
                  "-l", os.path.join(self.base, "log"),
                  "-o", f"-k {self.base} -c listen_addresses='' -F", "start")
        return f"postgresql://pf@/postgres?host={self.base}"

    def stop(self) -> None:
        try:
            self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
