"""First come, first served: a waiter's ticket beside the device locks.

A run that finds a device locked takes a ticket: a number from the lock
directory's counter (``queue/.seq``, under an flock), written as
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
from collections.abc import Sequence
from dataclasses import dataclass

from . import holders
from .holders import Holder

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
        _make_queue_dir(qdir)
        self.number = _next_number(qdir)
        self.wants = tuple(wants)
        self.qdir = qdir
        self.path = os.path.join(qdir, f"{self.number}-{os.getpid()}.ticket")
        tmp = os.path.join(qdir, f".new-{os.getpid()}-{self.number}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # before it has its name: never seen unlocked
        os.write(fd, (holders.format_record(holder) + _WANTS + " ".join(wants) + "\n").encode())
        os.rename(tmp, self.path)
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


def _make_queue_dir(qdir: str) -> None:
    try:
        os.mkdir(qdir, 0o1777)
    except FileExistsError:
        return
    with contextlib.suppress(OSError):
        os.chmod(qdir, 0o1777)  # every user's runs queue here, like the locks beside it


def _next_number(qdir: str) -> int:
    fd = os.open(os.path.join(qdir, ".seq"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o666)  # whatever the umask: every user's runs draw numbers here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        n = int(text) + 1 if text.isdigit() else 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, f"{n}\n".encode())
        return n
    finally:
        os.close(fd)


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
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
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
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [f.readline(holders.MAX_LINE) for _ in range(2)]
    except OSError:
        return None
    holder = holders.parse_record(lines[0])
    wants: tuple[str, ...] = ()
    if lines[1].startswith(_WANTS):
        wants = tuple(lines[1][len(_WANTS) :].split())
    return Waiter(number=number, path=path, wants=wants, holder=holder)
