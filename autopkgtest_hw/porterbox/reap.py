"""Ending what a session started, without ever signalling a process that is not ours.

Every process is signalled through a pidfd opened while it was listed as
ours, so a pid that was reused in the meantime is never hit.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import time

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of what this process starts come back to it (and are killed at the end)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read(4096).rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[0] != "Z":
            parents[int(name)] = int(fields[1])
    return parents


def descendants(roots: set[int]) -> set[int]:
    """Every live process whose parent is in ``roots``, and theirs, recursively."""
    parents = _parents()
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        new = {p for p, pp in parents.items() if pp in frontier and p not in found}
        found |= new
        frontier = new
    return found


def pidfds(pids: set[int]) -> dict[int, int]:
    """A pidfd for each pid still there (closed with ``close_all``)."""
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fds[pid] = os.pidfd_open(pid)
    return fds


def signal_all(fds: dict[int, int], sig: int) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(fd, sig)


def wait_gone(fds: dict[int, int], timeout: float) -> None:
    """Until every process of ``fds`` has exited (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    left = dict(fds)
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0:
            return
        ready, _, _ = select.select(list(left.values()), [], [], wait)
        for fd in ready:
            left = {p: f for p, f in left.items() if f != fd}


def close_all(fds: dict[int, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)


def hang_up_tree(root: int, grace: float) -> None:
    """SIGHUP (and SIGCONT) to ``root`` and its descendants, SIGKILL after ``grace``."""
    fds = pidfds({root} | descendants({root}))
    try:
        signal_all(fds, signal.SIGHUP)
        signal_all(fds, signal.SIGCONT)
        wait_gone(fds, grace)
        more = pidfds(descendants(set(fds)) - set(fds))
        fds.update(more)
        signal_all(fds, signal.SIGKILL)
    finally:
        close_all(fds)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep_orphans(keep: set[int]) -> None:
    """Kill and reap what was left behind and came back to us as subreaper."""
    for _ in range(100):
        fds = pidfds(descendants({os.getpid()}) - keep)
        if not fds:
            break
        signal_all(fds, signal.SIGKILL)
        close_all(fds)
        time.sleep(0.05)
        reap()
    reap()
