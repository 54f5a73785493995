#!/usr/bin/env python3
"""Figures for detection and spec matching.  Prints numbers; asserts nothing.

* cold start of ``autopkgtest-hw detect``: the whole process, median of N
  runs, with every detector and with only ``cpu,udev`` (and each detector alone);
* the inventory cache's fingerprint: what a run answered from the cache pays;
* spec parse + match throughput: specs per second over a few thousand varied
  specs built from the examples of the spec language with random values
  (tokens repeat, as they do when plan or routing reads many packages), and
  over as many distinct specs (every one new: the cost without any cache).

``--tree DIR`` measures another checkout's code with the same specs (say,
main), so two versions can be compared side by side on one machine.

Usage: .venv/bin/python bench/bench_detect.py [--runs 7] [--specs 5000] [--seed 1] [--tree DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TREE = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--tree=")), None)
sys.path.insert(0, str(Path(_TREE).resolve() if _TREE else ROOT))

from autopkgtest_hw.spec.inventory import Inventory  # noqa: E402
from autopkgtest_hw.spec.language import parse  # noqa: E402
from autopkgtest_hw.spec.matcher import match  # noqa: E402

#: The examples of the spec language, with holes for random values.
TEMPLATES = (
    "cuda",
    "cuda:cc>={cc}",
    "cuda:sm_{sm}",
    "cuda:cc>={cc}:mem>={mem}G",
    "cuda:count>={count}",
    "rocm:{gfx}",
    "rocm:arch={gfx}/{gfx2}",
    "cuda|rocm",
    "opencl",
    "opencl:type={type}",
    "opencl:type=any:fp64",
    "gpu:vendor={vendor}",
    "cpu:{flag}",
    "cpu:cores>={cores}:mem>={mem}G",
    "cuda:cuda>={cuda}:driver>={driver}",
    "gpu:model=*{model}*",
    "cuda:cc>={cc}|rocm:{gfx}:mem>={mem}G",
)
VALUES = {
    "cc": ["5.0", "6.1", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0"],
    "sm": ["70", "75", "80", "86", "89", "90", "100"],
    "mem": ["4", "8", "16", "24", "32", "48", "80", "128"],
    "count": ["1", "2", "4", "8"],
    "gfx": ["gfx900", "gfx906", "gfx908", "gfx90a", "gfx942", "gfx1030", "gfx1100"],
    "gfx2": ["gfx1101", "gfx1102", "gfx1151", "gfx1200"],
    "type": ["gpu", "cpu", "accelerator", "any"],
    "vendor": ["nvidia", "amd", "intel"],
    "flag": ["avx2", "avx512f", "fma", "sse4_2", "amx_tile"],
    "cores": ["2", "8", "32", "64", "128"],
    "cuda": ["11.8", "12.0", "12.4", "12.6"],
    "driver": ["470", "525.60", "535.104", "550.54.15"],
    "model": ["h100", "a100", "t4", "mi210", "arc"],
}


def cold_start(runs: int, detectors: str | None) -> float:
    env = dict(os.environ)
    env.pop("AUTOPKGTEST_HW_DETECTORS", None)
    if detectors is not None:
        env["AUTOPKGTEST_HW_DETECTORS"] = detectors
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "autopkgtest_hw", "detect"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_specs(n: int, rng: random.Random) -> list[str]:
    specs = []
    for _ in range(n):
        template = rng.choice(TEMPLATES)
        fields = {k: rng.choice(v) for k, v in VALUES.items()}
        specs.append(template.format(**fields))
    return specs


def distinct_specs(n: int, rng: random.Random) -> list[str]:
    """``n`` specs that are all different: no cache can help."""
    out = []
    for i in range(n):
        template = rng.choice(TEMPLATES)
        fields = {k: rng.choice(v) for k, v in VALUES.items()}
        out.append(f"{template.format(**fields)}:count>={1 + i % 3}|cpu:cores>={i + 1}")
    return out


def throughput(specs: list[str], inventory: Inventory) -> tuple[float, float, int]:
    start = time.perf_counter()
    parsed = [parse(s) for s in specs]
    parse_s = time.perf_counter() - start
    start = time.perf_counter()
    held = sum(match(p, inventory).satisfied for p in parsed)
    match_s = time.perf_counter() - start
    return len(specs) / parse_s, len(specs) / match_s, held


def fingerprint_ms(runs: int = 50) -> float:
    """One fingerprint of this host, as every cached detect computes it."""
    from autopkgtest_hw.detect import cache

    cache.fingerprint()  # warm: the imports and the file system's caches
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        cache.fingerprint()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="process starts per figure")
    ap.add_argument("--specs", type=int, default=5000, help="specs to parse and match")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-cold", action="store_true", help="only the spec figures")
    ap.add_argument("--tree=", dest="tree", metavar="DIR", help="measure the code of this checkout")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, code of {_TREE or ROOT}")
    if not args.skip_cold:
        print(f"cold start of 'autopkgtest-hw detect', median of {args.runs} runs:")
        for label, detectors in (
            ("all detectors", None),
            ("cpu,udev", "cpu,udev"),
            ("cpu only", "cpu"),
            ("udev only", "udev"),
            ("nvml only", "nvml"),
            ("opencl only", "opencl"),
            ("none (start-up cost)", ""),
        ):
            print(f"  {label:22} {cold_start(args.runs, detectors) * 1000:7.0f} ms")
    print(f"inventory cache fingerprint (a cache hit's cost), median: {fingerprint_ms():.1f} ms")

    rng = random.Random(args.seed)
    workloads = (
        ("varied", make_specs(args.specs, rng)),
        ("distinct", distinct_specs(args.specs, rng)),
    )
    for label, specs in workloads:
        for name in ("gpu-server.json", "workstation.json"):
            inventory = Inventory.load(str(ROOT / "docs" / "examples" / name))
            parse_rate, match_rate, held = throughput(specs, inventory)
            both = 1 / (1 / parse_rate + 1 / match_rate)
            print(
                f"{len(specs)} {label} specs against {name}: parse {parse_rate:,.0f}/s,"
                f" match {match_rate:,.0f}/s, parse+match {both:,.0f}/s ({held} held)"
            )


if __name__ == "__main__":
    main()
