#!/usr/bin/env python3
"""What autopkgtest-virt-hwgpu costs: a tiny package through autopkgtest, with and without it.

Runs ``autopkgtest PKG -- null`` and ``-- hwgpu null`` alternately (and the same for
unshare when the bookworm tarball of the tests exists), N times each, and prints
the median wall time of each and the ratio.  Run as root from the checkout:

    .venv/bin/python bench/bench_virtserver.py -n 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.fixtures import env, make_package  # noqa: E402


def tarball() -> Path | None:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = base / "autopkgtest-hw" / f"bookworm-{arch}.tar"
    return path if path.is_file() else None


def precompile() -> None:
    """Byte-compile the checkout as the installed package is (py3compile at install).

    With PYTHONDONTWRITEBYTECODE set (as on CI machines), a source tree whose
    .pyc files are stale is compiled again by every process: that, not the
    virt server, would be measured.
    """
    for python in dict.fromkeys(("/usr/bin/python3", sys.executable)):
        if os.access(python, os.X_OK):
            subprocess.run(
                [python, "-m", "compileall", "-q", str(ROOT / "autopkgtest_hw")],
                stdout=subprocess.DEVNULL,
                check=False,
            )


def one_run(src: Path, out: Path, virt: list[str]) -> tuple[float, float]:
    """Wall seconds of one autopkgtest run, and the CPU seconds of all its processes.

    The CPU time does not move with the machine's load as the wall time does:
    on a busy 2-CPU machine every CPU-second of the proxy becomes wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(
        ["autopkgtest", str(src), "--output-dir", str(out), "--", *virt],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
    )
    took = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(
            f"autopkgtest -- {' '.join(virt)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return took, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument(
        "--no-unshare", action="store_true", help="skip the unshare pair even if a tarball exists"
    )
    args = parser.parse_args()
    precompile()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        src = make_package(tmpdir, {"smoke": "echo hello"})
        locks = str(tmpdir / "locks")
        pairs = [("null", ["null"], ["hwgpu", "--lock-dir", locks, "null"])]
        tar = None if args.no_unshare else tarball()
        if tar is not None:
            inner = ["unshare", "--tarball", str(tar)]
            pairs.append(("unshare", inner, ["hwgpu", "--lock-dir", locks, *inner]))
        print(f"{args.runs} runs each, alternating; tiny package, one test")
        print(
            f"{'testbed':10} {'plain median':>13} {'hwgpu median':>13} {'ratio':>7} {'extra':>8}"
            f"   {'CPU plain':>10} {'CPU hwgpu':>10} {'extra':>8}"
        )
        for name, plain, wrapped in pairs:
            times: dict[str, list[float]] = {"plain": [], "hwgpu": []}
            cpus: dict[str, list[float]] = {"plain": [], "hwgpu": []}
            for i in range(args.runs):
                for kind, virt in (("plain", plain), ("hwgpu", wrapped)):
                    took, cpu = one_run(src, tmpdir / f"out-{name}-{kind}-{i}", virt)
                    times[kind].append(took)
                    cpus[kind].append(cpu)
            a = statistics.median(times["plain"])
            b = statistics.median(times["hwgpu"])
            ca = statistics.median(cpus["plain"])
            cb = statistics.median(cpus["hwgpu"])
            print(
                f"{name:10} {a:12.2f}s {b:12.2f}s {b / a:7.2f} {b - a:+7.2f}s"
                f"   {ca:9.3f}s {cb:9.3f}s {cb - ca:+7.3f}s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
