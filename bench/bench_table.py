#!/usr/bin/env python3
"""Every row of issue 10's table, each beside its anchor measured in the same run, as ratios.

Rows (whole processes, medians of N runs, the two of a pair alternating):

* ``autopkgtest PKG -- hwgpu null`` / ``-- null`` (and unshare when the test
  tarball exists; run as root);
* ``autopkgtest-hw run GPU-PKG -- hwgpu null`` on a package whose every test
  needs a GPU this host lacks: reported without a testbed / the same run with
  ``--hw-open-testbed`` (today's path: the testbed opened), and for unshare;
* ``autopkgtest-hw detect``, cold process (host inventory cache warm, and with
  ``--no-cache``) / ``clinfo -l``;
* ``autopkgtest-hw match cpu``, cold process / bare ``python3 -c pass``;
* start-up with no detector (``AUTOPKGTEST_HW_DETECTORS=`` detect) / bare python;
* spec parse + match throughput (specs/s; no anchor).

Prints figures; asserts nothing.  Usage (from the checkout, as root for the
testbed rows):  .venv/bin/python bench/bench_table.py [-n 7] [--no-testbeds]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_detect  # noqa: E402
import bench_virtserver  # noqa: E402

from autopkgtest_hw.spec.inventory import Inventory  # noqa: E402


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        subprocess.run(
            list(argv), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return time.perf_counter() - start

    return run


def pair(runs: int, ours: Callable[[], float], anchor: Callable[[], float]) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    ours()  # warm the page cache (and the inventory cache) first
    anchor()
    for _ in range(runs):
        a.append(ours())
        b.append(anchor())
    return statistics.median(a), statistics.median(b)


def row(label: str, ours: float, anchor_label: str, anchor: float, target: str) -> None:
    print(
        f"{label:44} {ours:7.3f} s  {anchor_label:22} {anchor:7.3f} s"
        f"  ratio {ours / anchor:6.2f}  target {target}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=7, help="runs of each (default 7)")
    ap.add_argument("--testbeds", type=int, default=5, help="autopkgtest runs of each (default 5)")
    ap.add_argument("--no-testbeds", action="store_true", help="skip the autopkgtest rows")
    ap.add_argument("--specs", type=int, default=20000, help="specs for the throughput row")
    args = ap.parse_args()
    bench_virtserver.precompile()

    print(
        f"{platform.node()}: {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} CPUs, python {platform.python_version()}, {time.strftime('%F %T %Z')}"
    )
    py = sys.executable
    env = dict(os.environ)
    env.pop("AUTOPKGTEST_HW_DETECTORS", None)
    cache_dir = tempfile.mkdtemp(prefix="bench-inventory-cache.")
    env["AUTOPKGTEST_HW_CACHE_DIR"] = cache_dir  # a cache of its own, warmed by the first run
    hw = [py, "-m", "autopkgtest_hw"]
    bare = timed([py, "-c", "pass"], env)
    clinfo = shutil.which("clinfo")
    cl = timed([clinfo, "-l"], env) if clinfo else bare
    cl_label = "clinfo -l" if clinfo else "python3 -c pass"

    ours, anchor = pair(args.runs, timed([*hw, "detect"], env), cl)
    row("autopkgtest-hw detect (cache warm)", ours, cl_label, anchor, "<= 0.15 s")
    ours, anchor = pair(args.runs, timed([*hw, "detect", "--no-cache"], env), cl)
    row("autopkgtest-hw detect --no-cache", ours, cl_label, anchor, "(no target)")
    ours, anchor = pair(args.runs, timed([*hw, "match", "cpu"], env), bare)
    row("autopkgtest-hw match cpu", ours, "python3 -c pass", anchor, "<= 0.10 s")
    none_env = {**env, "AUTOPKGTEST_HW_DETECTORS": ""}
    ours, anchor = pair(args.runs, timed([*hw, "detect"], none_env), bare)
    row("start-up, no detector (detect)", ours, "python3 -c pass", anchor, "<= 0.06 s")
    shutil.rmtree(cache_dir, ignore_errors=True)

    specs = bench_detect.make_specs(args.specs, random.Random(1))
    inventory = Inventory.load(str(ROOT / "docs" / "examples" / "gpu-server.json"))
    parse_rate, match_rate, _ = bench_detect.throughput(specs, inventory)
    both = 1 / (1 / parse_rate + 1 / match_rate)
    print(
        f"{'spec parse + match, gpu-server.json':44} {both:,.0f} specs/s"
        f" (parse {parse_rate:,.0f}/s, match {match_rate:,.0f}/s)  target >= 100,000/s"
    )

    if args.no_testbeds:
        return 0
    if os.geteuid() != 0:
        print("testbed rows: skipped (run as root)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        src = bench_virtserver.make_package(tmpdir, {"smoke": "echo hello"})
        locks = str(tmpdir / "locks")
        pairs = [("null", ["null"], ["hwgpu", "--lock-dir", locks, "null"], "<= 1.03")]
        tar = bench_virtserver.tarball()
        if tar is not None:
            inner = ["unshare", "--tarball", str(tar)]
            pairs.append(("unshare", inner, ["hwgpu", "--lock-dir", locks, *inner], "<= 1.02"))
        count = iter(range(10**6))

        def run(virt: list[str]) -> Callable[[], float]:
            return lambda: bench_virtserver.one_run(src, tmpdir / f"out-{next(count)}", virt)[0]

        for name, plain, wrapped, target in pairs:
            ours, anchor = pair(args.testbeds, run(wrapped), run(plain))
            row(f"autopkgtest -- hwgpu {name}", ours, f"-- {name}", anchor, f"ratio {target}")
        gpu_only = bench_virtserver.make_package(
            tmpdir / "gpu-only", {"cuda-smoke": "nvidia-smi"}, restrictions="needs-hw:cuda"
        )
        no_gpu = tmpdir / "no-gpu.json"
        no_gpu.write_text(Inventory().to_json())
        hw_run = [py, "-m", "autopkgtest_hw", "run"]

        def skip(own: list[str], inner: list[str]) -> Callable[[], float]:
            def once() -> float:
                out = tmpdir / f"out-{next(count)}"
                virt = ["hwgpu", "--lock-dir", locks, "--inventory", str(no_gpu), *inner]
                argv = [*hw_run, *own, str(gpu_only), "-o", str(out), "--", *virt]
                return timed(argv, bench_virtserver.env())()

            return once

        for name, _plain, wrapped, _target in pairs:
            inner = wrapped[3:]  # after hwgpu --lock-dir LOCKS
            ours, anchor = pair(args.testbeds, skip([], inner), skip(["--hw-open-testbed"], inner))
            row(f"run, all skipped -- hwgpu {name}", ours, "testbed opened", anchor, "(faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
