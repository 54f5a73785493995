#!/usr/bin/env python3
"""What a GPU test costs on a machine without a GPU.  Prints figures; asserts nothing.

The same GPU-only test, whose Depends pull in a large real Debian package
(default python3-torch, about 180 packages), run in an unshare testbed made
from the cached bookworm tarball on this GPU-less machine:

* today's way: ``Restrictions: skippable`` and a launcher that exits 77 when
  ``nvidia-smi`` finds no GPU, run by plain ``autopkgtest``: every dependency
  is downloaded and installed before the test learns it cannot run;
* with ``Restrictions: needs-hw:cuda``, run by ``autopkgtest-hw run -- hwgpu
  unshare``: every test is skipped whatever the testbed, so it is reported
  without opening the testbed (nothing started, nothing installed);
* the same with ``--hw-open-testbed``: the testbed is opened and the test
  skipped while the control file is read (the path before skip-free runs).

Both runs use ``--setup-commands='apt-get update'`` (the tarball has no apt
lists).  Wall time of the whole autopkgtest run, the SKIP lines, how many
packages were newly installed, and the ratio.  If autopkgtest-virt-hwgpu is
not available, the needs-hw run uses plain ``-- unshare`` (the test is then
skipped for having no inventory, at the same point) and says so.

The needs-hw runs are repeated (``--runs``, default 5) and their medians
compared with today's (``--today-runs``, default 1: it downloads and
installs the package every time).

Usage: .venv/bin/python bench/bench_skip_cost.py [--package python3-torch] [--tarball T]
       [--runs N] [--today-runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

LAUNCHER_TODAY = """#!/bin/sh
# today's practice: find out at run time, after Depends were installed
if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "no NVIDIA GPU: skipping"
    exit 77
fi
python3 -c 'import torch; assert torch.cuda.is_available()'
"""
LAUNCHER_HW = """#!/bin/sh
python3 -c 'import torch; assert torch.cuda.is_available()'
"""


def default_tarball() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autopkgtest-hw"
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return cache / f"bookworm-{arch}.tar"


def ensure_tarball(tarball: Path) -> None:
    if tarball.is_file():
        return
    tarball.parent.mkdir(parents=True, exist_ok=True)
    print(f"making {tarball} with mmdebstrap (once)", file=sys.stderr)
    tmp = tarball.with_suffix(".tar.tmp")
    subprocess.run(
        ["mmdebstrap", "--variant=apt", "--format=tar", "--quiet", "bookworm", str(tmp)],
        stdin=subprocess.DEVNULL,
        check=True,
    )
    tmp.rename(tarball)


def make_package(where: Path, restrictions: str, depends: str, launcher: str) -> Path:
    tests = where / "debian" / "tests"
    tests.mkdir(parents=True)
    (tests / "control").write_text(
        f"Tests: gpu-smoke\nRestrictions: {restrictions}\nDepends: {depends}\n"
    )
    script = tests / "gpu-smoke"
    script.write_text(launcher)
    script.chmod(0o755)
    return where


def timed_run(
    program: list[str], args: list[str], outdir: Path
) -> tuple[float, int, list[str], str]:
    """Run ``PROGRAM -o OUTDIR ARGS``: (wall seconds, exit code, summary, what was installed)."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'virt-server'}:{VENV_BIN}:{env.get('PATH', '')}"
    start = time.monotonic()
    proc = subprocess.run(
        [*program, "-o", str(outdir), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.monotonic() - start
    summary_path = outdir / "summary"
    summary = summary_path.read_text().splitlines() if summary_path.exists() else []
    log = proc.stdout + proc.stderr
    installed = sum(int(m) for m in re.findall(r"(\d+) newly installed", log))
    got = re.findall(r"Need to get ([\d.,]+ [kMG]?B)", log)
    disk = re.findall(r"After this operation, ([\d.,]+ [kMG]?B) of additional", log)
    if proc.returncode not in (0, 2, 8):
        print(proc.stderr[-3000:], file=sys.stderr)
    detail = f"packages installed: {installed}"
    if got and disk:  # the last apt run is the test's dependencies
        detail += f", {got[-1]} downloaded, {disk[-1]} on disk"
    return wall, proc.returncode, summary, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="python3-torch", help="the large dependency")
    parser.add_argument("--tarball", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5, help="runs of each needs-hw way")
    parser.add_argument("--today-runs", type=int, default=1, help="runs of today's way")
    args = parser.parse_args()
    tarball = args.tarball or default_tarball()
    ensure_tarball(tarball)
    have_hwgpu = (
        shutil.which("autopkgtest-virt-hwgpu", path=f"{ROOT / 'virt-server'}:{VENV_BIN}")
        is not None
        and (ROOT / "autopkgtest_hw" / "virt" / "server.py").is_file()
    )
    virt_hw = ["hwgpu", "unshare"] if have_hwgpu else ["unshare"]
    setup = "--setup-commands=apt-get update -q"

    with tempfile.TemporaryDirectory(prefix="bench-skip-cost-") as tmp_s:
        tmp = Path(tmp_s)
        today = make_package(tmp / "today", "skippable", args.package, LAUNCHER_TODAY)
        needs = make_package(tmp / "needs-hw", "needs-hw:cuda", args.package, LAUNCHER_HW)
        virt_args = ["--tarball", str(tarball)]
        hw_program = [str(VENV_BIN / "autopkgtest-hw"), "run"]
        hw_args = [setup, str(needs), "--", *virt_hw, *virt_args]
        runs = [
            (
                "today: skippable + exit 77, plain autopkgtest",
                ["autopkgtest"],
                [setup, str(today), "--", "unshare", *virt_args],
                args.today_runs,
            ),
            (
                f"needs-hw:cuda, autopkgtest-hw run -- {' '.join(virt_hw)} (no testbed)",
                hw_program,
                hw_args,
                args.runs,
            ),
            (
                f"needs-hw:cuda, autopkgtest-hw run --hw-open-testbed -- {' '.join(virt_hw)}",
                [*hw_program, "--hw-open-testbed"],
                hw_args,
                args.runs,
            ),
        ]
        results = []
        n = 0
        for label, program, run_args, times in runs:
            walls = []
            for _ in range(max(1, times)):
                print(f"running: {label} ...", file=sys.stderr, flush=True)
                wall, rc, summary, detail = timed_run(program, run_args, tmp / f"out-{n}")
                n += 1
                walls.append(wall)
            results.append((label, walls, rc, summary, detail))

    print(f"skip cost of a GPU-only test with Depends: {args.package}, on a machine without GPU")
    print(f"testbed: unshare from {tarball}; autopkgtest {autopkgtest_version()}")
    if not have_hwgpu:
        print("(autopkgtest-virt-hwgpu not available: the needs-hw run used plain unshare)")
    print()
    for label, walls, rc, summary, detail in results:
        print(f"{label}")
        each = ", ".join(f"{w:.2f}" for w in walls)
        print(f"    wall median {statistics.median(walls):7.2f} s ({each})   exit {rc}   {detail}")
        for line in summary:
            print(f"    summary: {line}")
    today = statistics.median(results[0][1])
    free = statistics.median(results[1][1])
    opened = statistics.median(results[2][1])
    print()
    print(f"ratio today / needs-hw without testbed: {today / free:.1f}x  (target >= 50x)")
    print(f"ratio today / needs-hw, testbed opened:  {today / opened:.1f}x  (before skip-free)")
    return 0


def autopkgtest_version() -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "autopkgtest"], capture_output=True, text=True
    )
    return proc.stdout.strip() or "(unknown)"


if __name__ == "__main__":
    sys.exit(main())
