"""First come, first served: a waiter's ticket beside the device locks.

A run that finds a device locked takes a ticket: a number from the
system-wide monotonic clock (its arrival), written as
``queue/<number>-<pid>.ticket`` with its holder record and the lock names it
waits for.  The waiter keeps an flock on its ticket, so a waiter that dies
(even by SIGKILL) leaves a ticket that anybody can tell is stale and remove.
A device goes to the live waiter with the lowest number that wants it; a
run with a higher number leaves it alone even when it is free.  Because
numbers are global to the lock directory, waiters for several devices are
ordered the same way on each of them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass

from autopkgtest_hw.locks import holders
from autopkgtest_hw.locks.holders import Holder
from autopkgtest_hw.locks.lockdir import LockDir

QUEUE = "queue"
_TICKET = re.compile(r"^([0-9]{1,18})-([0-9]{1,10})\.ticket$")
_WANTS = "wants "
#: A queue never holds more tickets than this (older ones are read first).
MAX_TICKETS = 1000


@dataclass(frozen=True)
class Waiter:
    number: int
    path: str
    wants: tuple[str, ...]
    holder: Holder | None


class Ticket:
    """This process's place in the queue for some locks (by lock file name)."""

    def __init__(self, lock_dir: str, wants: Sequence[str], holder: Holder) -> None:
        qdir = os.path.join(lock_dir, QUEUE)
        with LockDir(lock_dir, create=False) as top, top.subdir(QUEUE) as queue:
            self.number = _next_number()
            self.wants = tuple(wants)
            self.qdir = qdir
            name = f"{self.number}-{os.getpid()}.ticket"
            self.path = os.path.join(qdir, name)
            tmp = f".new-{os.getpid()}-{self.number}"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o644, dir_fd=queue.fd)
            fcntl.flock(fd, fcntl.LOCK_EX)  # before it has its name: never seen unlocked
            record = holders.format_record(holder) + _WANTS + " ".join(wants) + "\n"
            os.write(fd, record.encode())
            os.rename(tmp, name, src_dir_fd=queue.fd, dst_dir_fd=queue.fd)
        self.fd: int | None = fd

    def first_in_line(self, lock: str) -> bool:
        """No live waiter with a lower number wants ``lock``."""
        return all(w.number >= self.number for w in waiters(self.qdir, lock))

    def leave(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None


def _next_number() -> int:
    """A number that orders waiters by arrival: microseconds of the system-wide monotonic clock.

    No shared counter file: a file every user may write is a file any user
    could lock (blocking every queue) or plant a link as.
    """
    return time.monotonic_ns() // 1000


def waiters(qdir: str, lock: str | None = None) -> list[Waiter]:
    """Live waiters (for ``lock``, or all), lowest number first; stale tickets are removed."""
    try:
        names = os.listdir(qdir)
    except OSError:
        return []
    found = []
    for name in names:
        m = _TICKET.match(name)
        if m:
            found.append((int(m.group(1)), name))
    out = []
    for number, name in sorted(found)[:MAX_TICKETS]:
        path = os.path.join(qdir, name)
        if _stale(path):
            continue
        w = _read(number, path)
        if w is not None and (lock is None or lock in w.wants):
            out.append(w)
    return out


def _stale(path: str) -> bool:
    """True (and the ticket removed) when no process holds its flock any more."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return True
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a planted FIFO or device: no ticket
        os.close(fd)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        return exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)
    return True


def _read(number: int, path: str) -> Waiter | None:
    lines = holders.read_lines(path, 2)
    if len(lines) < 2:
        return None
    holder = holders.parse_record(lines[0])
    wants: tuple[str, ...] = ()
    if lines[1].startswith(_WANTS):
        wants = tuple(lines[1][len(_WANTS) :].split())
    return Waiter(number=number, path=path, wants=wants, holder=holder)
