#!/usr/bin/env python3
"""Figures for what holding the locks costs: the keeper's start and its command prefix.

* keeper start: from ``Keeper(...)`` to its socket listening (once per run);
* prefix cost: one testbed command (``true``) run directly and through the
  prefix that receives the lock descriptors (once per command autopkgtest
  runs in the testbed), median of N runs each;
* acquire cost: locking one device in a fresh lock directory.

Prints numbers; asserts nothing.  Usage: .venv/bin/python bench/bench_keeper.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autopkgtest_hw.locks.allocate import acquire  # noqa: E402
from autopkgtest_hw.locks.keeper import Keeper  # noqa: E402
from autopkgtest_hw.spec.inventory import Device  # noqa: E402


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    gpu = Device(classes=("gpu",), uuid="GPU-bench", device_nodes=("/dev/null",))
    with tempfile.TemporaryDirectory() as tmp:
        locking = []
        for i in range(args.runs):
            t = time.perf_counter()
            acquire([gpu], None, os.path.join(tmp, f"locks{i}")).release()
            locking.append(time.perf_counter() - t)
        alloc = acquire([gpu], None, os.path.join(tmp, "locks"))
        t = time.perf_counter()
        keeper = Keeper(alloc.fds, [])
        start = time.perf_counter() - t
        direct, prefixed = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run(["true"], check=True)
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([*keeper.prefix(), "true"], check=True)
            prefixed.append(time.perf_counter() - t)
        keeper.finish()
        alloc.release()
    print(f"acquire one lock (fresh directory): {median_ms(locking)}")
    print(f"keeper start (once per run):         {start * 1000:.1f} ms")
    print(f"testbed command `true` directly:     {median_ms(direct)}")
    print(f"testbed command through the prefix: {median_ms(prefixed)}")


if __name__ == "__main__":
    main()
