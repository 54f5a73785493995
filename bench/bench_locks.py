#!/usr/bin/env python3
"""Figures for the lock machinery's reads: what verifying holders and tickets costs.

* acquire + release: lock one free device and let go (the file is removed
  again at release when nobody holds it), median of N;
* waiters: reading a queue of T live tickets (each checked against
  /proc/locks, its owner and its file), median of N;
* status of one held device while F foreign flocks fill /proc/locks (it is
  read whole: a flood makes status slower, never wrong).

Prints numbers; asserts nothing.  Usage: .venv/bin/python bench/bench_locks.py [--runs 21]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autopkgtest_hw.locks import holders, tickets  # noqa: E402
from autopkgtest_hw.locks.allocate import acquire, lock_name  # noqa: E402
from autopkgtest_hw.locks.lockstate import device_states  # noqa: E402
from autopkgtest_hw.spec.inventory import Device, Inventory  # noqa: E402

GPU = Device(classes=("gpu",), model="GPU", pci_address="0000:01:00.0", device_nodes=("/x",))


def median_ms(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--tickets", type=int, default=64)
    ap.add_argument("--flood", type=int, default=10000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-locks-") as top:
        locks = os.path.join(top, "locks")
        ms = median_ms(args.runs, lambda: acquire([GPU], None, locks).release())
        print(f"acquire + release of a free device: {ms:.2f} ms")
        ts = []
        for _ in range(args.tickets):  # one process may hold several tickets: fine for a bench
            ts.append(tickets.Ticket(locks, [lock_name(GPU)], holders.for_this_process()))
        qdir = os.path.join(locks, tickets.QUEUE)
        ms = median_ms(args.runs, lambda: tickets.waiters(qdir, lock_name(GPU)))
        print(f"waiters: {args.tickets} tickets read and verified: {ms:.2f} ms")
        for t in ts:
            t.leave()
        alloc = acquire([GPU], None, locks)
        flood = Path(top) / "flood"
        flood.mkdir()
        fds = []
        for i in range(args.flood):
            fds.append(os.open(flood / str(i), os.O_RDONLY | os.O_CREAT))
            fcntl.flock(fds[-1], fcntl.LOCK_SH)
        size = len(Path("/proc/locks").read_bytes())
        runs = max(1, args.runs // 4)
        inv = Inventory(devices=(GPU,))
        ms = median_ms(runs, lambda: device_states(inv, locks))
        print(f"status of a held device, /proc/locks {size / 1e6:.1f} MB: {ms:.0f} ms")
        for fd in fds:
            os.close(fd)
        alloc.release()


if __name__ == "__main__":
    main()
