#!/usr/bin/env python3
"""Hostile Sources indexes through ``autopkgtest-hw route``: wall time and peak memory.

Issue 18 item 9 measured on the earlier reader: 100,000 packages with a
2000-character Requires-Hwspec each took 273 s and ended in a MemoryError; a
0.5 MB .gz of newlines took 64 s and 4.7 GiB; one 64 MiB stanza rejected the
whole index.  Each case runs ``route --sources FILE --no-broker --json`` as a
whole process against bench_route.py's fleet of 20 profiles and prints the
wall time, the child's peak RSS, the exit status and how many packages were
routed or refused.  Prints numbers; asserts nothing.

Usage: .venv/bin/python bench/bench_hostile_sources.py [--packages 100000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_route import fleet_of_20  # noqa: E402

STANZA = "Package: {name}\nVersion: 1.0-1\nArchitecture: any\nTestsuite: autopkgtest\n"


def long_specs(path: Path, packages: int) -> None:
    """Two distinct specs of about 990 characters each (a spec is at most 1000), per package."""
    with open(path, "w") as f:
        for i in range(packages):
            specs = []
            for half in (0, 1):
                alternatives: list[str] = []
                j = 0
                while len("|".join(alternatives)) < 950:
                    alternatives.append(f"cuda:cc>={i % 9}.{j}:mem>={i % 97 + j + half}G")
                    j += 1
                specs.append("|".join(alternatives))
            f.write(STANZA.format(name=f"p{i}") + f"Requires-Hwspec: {', '.join(specs)}\n\n")


def newlines(path: Path, megabytes: int) -> None:
    with gzip.open(path, "wb", compresslevel=9) as f:
        block = b"\n" * (1 << 20)
        for _ in range(megabytes):
            f.write(block)
        f.write(STANZA.format(name="after").encode() + b"\n")


def huge_stanza(path: Path, megabytes: int) -> None:
    with open(path, "w") as f:
        f.write(STANZA.format(name="before") + "\n")
        f.write(STANZA.format(name="huge") + "Description: x\n")
        line = " " + "x" * 1023 + "\n"
        for _ in range(megabytes * 1024):
            f.write(line)
        f.write("\n" + STANZA.format(name="after") + "\n")


def run(fleet: Path, sources: Path) -> str:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/autopkgtest-hw"), "route", "--fleet", str(fleet),
         "--sources", str(sources), "--no-broker", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rss = f"{peak / 1024:.0f} MiB" if peak > before else "<= earlier peak"
    try:
        doc = json.loads(proc.stdout)
        what = (
            f"{len(doc['jobs'])} jobs, {len(doc['unroutable'])} unroutable,"
            f" {len(doc['errors'])} errors"
        )
    except (json.JSONDecodeError, KeyError):
        what = "no JSON; " + ("Traceback" if "Traceback" in proc.stderr else proc.stderr[-200:])
    return f"{wall:7.1f} s  peak RSS {rss:>16}  exit {proc.returncode}  {what}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=100_000)
    parser.add_argument("--newline-mb", type=int, default=500)
    parser.add_argument("--stanza-mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hostile.") as tmp:
        d = Path(tmp)
        fleet = fleet_of_20(d)
        cases = [
            (f"{args.packages} packages, 2000-char Requires-Hwspec", "long", long_specs,
             args.packages),
            (f"{args.newline_mb} MB of newlines, gzipped", "nl.gz", newlines, args.newline_mb),
            (f"one {args.stanza_mb} MiB stanza between two", "huge", huge_stanza, args.stanza_mb),
        ]  # fmt: skip
        # Smallest cases first, so each peak RSS is that case's own.
        for title, name, make, size in sorted(cases, key=lambda c: c[1] != "huge"):
            path = d / name
            make(path, size)
            print(f"{title:45} ({os.path.getsize(path) / 1e6:7.1f} MB): {run(fleet, path)}")


if __name__ == "__main__":
    main()
