"""Build one synthetic shop for ``benchmarks/tune_memtrace.sh`` (fourteenth session): the
generator and build of ``benchmarks/tune_scale.py`` (``--tune off``), writing the tune's
interaction options to ``OUT/inter.txt``.

    python benchmarks/tune_memtrace_shop.py 100000 /tmp/s100
"""
import subprocess
import sys
from pathlib import Path

from prodfusion.data import make_synthetic

n = int(sys.argv[1])
out = Path(sys.argv[2])
paths = make_synthetic(out / "data", n_products=n, n_sessions=n, seed=0, similar_rate=0.5,
                       missing_image_rate=0.999)
inter = ["--interactions", str(paths.interactions), "--session-cols", "session_id",
         "--item-col", "product_id", "--time-col", "timestamp", "--workers", "1"]
(out / "inter.txt").write_text(" ".join(inter))
subprocess.run([sys.executable, "-m", "prodfusion.cli", "build", "--catalog", str(paths.catalog),
                *inter, "--image", "none", "--cache-dir", "none", "--tune", "off", "--out",
                str(out / "model")], check=True)
