"""First come, first served: a waiter's ticket beside the device locks.

A run that finds a device locked takes a ticket: a number from the
system-wide monotonic clock (its arrival), written as
``queue/<number>-<pid>.ticket`` with its holder record and the lock names it
waits for.  The waiter keeps an flock on its ticket, so a waiter that dies
(even by SIGKILL) leaves a ticket that anybody can tell is stale.  A device
goes to the live waiter with the lowest number that wants it; a run with a
higher number leaves it alone even when it is free.  Because numbers are
global to the lock directory, waiters for several devices are ordered the
same way on each of them.

The queue is shared by every user, so a ticket is believed only as far as
the kernel vouches for it (docs/security.md):

* the queue directory is checked like the lock directory (root's, or ours,
  sticky if others may write it; never through a symlink); root replaces
  anything else planted at its name, other users wait without a ticket;
* a ticket counts only while ``/proc/locks`` shows the pid in its name
  holding an flock on it, that process belongs to the file's owner, the
  file is a regular file with one link that nobody else may write, and the
  owner may use the device it waits for (``allowed``): a user without the
  device, a forged pid, a hard-linked or dead ticket is no waiter;
* each user counts with at most MAX_PER_USER tickets (one per process), and
  at most MAX_SCAN names of the directory are read, so nobody can make the
  queue unreadable by filling it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autopkgtest_hw.locks import holders
from autopkgtest_hw.locks.holders import Holder
from autopkgtest_hw.locks.lockdir import LockDir, LockDirError

QUEUE = "queue"
_TICKET = re.compile(r"^([0-9]{1,18})-([0-9]{1,10})\.ticket$")
_WANTS = "wants "
#: A queue never yields more waiters than this (older ones are read first).
MAX_TICKETS = 1000
#: Tickets of one user that count at once (each from a process of its own).
MAX_PER_USER = 64
#: Names of the queue directory read at most, in the order the directory lists them.
MAX_SCAN = 100_000


@dataclass(frozen=True)
class Waiter:
    number: int
    path: str
    wants: tuple[str, ...]
    holder: Holder | None
    uid: int = -1


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

    def first_in_line(self, lock: str, allowed: Callable[[int], bool] | None = None) -> bool:
        """No live waiter with a lower number wants ``lock``."""
        return all(w.number >= self.number for w in waiters(self.qdir, lock, allowed))

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


def waiters(
    qdir: str, lock: str | None = None, allowed: Callable[[int], bool] | None = None
) -> list[Waiter]:
    """Live, verified waiters (for ``lock``, or all), lowest number first.

    ``allowed(uid)`` says whether a ticket's owner may use the device (a
    ticket of anybody else is ignored).  Stale tickets are removed where we
    may (ours; root: anybody's).
    """
    try:
        with LockDir(os.path.dirname(qdir), create=False) as top:
            queue = top.subdir(QUEUE, create=False)
    except (LockDirError, OSError):
        return []  # no queue, or one nobody can trust: nobody waits in it
    with queue:
        return _waiters(queue, lock, allowed)


def _waiters(
    queue: LockDir, lock: str | None, allowed: Callable[[int], bool] | None
) -> list[Waiter]:
    try:
        dev = os.fstat(queue.fd).st_dev
        found = _scan(queue.fd)
    except OSError:
        return []
    table = holders.lock_table({(dev, ino) for _, _, _, ino in found})
    if table is None:
        return []  # the kernel's lock table cannot be read whole: no ticket is vouched for
    out: list[Waiter] = []
    per_user: dict[int, int] = {}
    seen_pids: set[int] = set()
    verdicts: dict[int, bool] = {}
    for number, pid, name, ino in sorted(found):
        pids = table.get((dev, ino), set())
        if not pids:
            _remove_stale(queue, name, ino)
            continue
        if pid not in pids or pid in seen_pids:
            continue  # the pid in its name does not hold it: not that process's ticket
        try:
            st = os.stat(name, dir_fd=queue.fd, follow_symlinks=False)
        except OSError:
            continue
        if (
            st.st_ino != ino
            or not stat.S_ISREG(st.st_mode)
            or st.st_nlink != 1
            or st.st_mode & 0o022
            or holders.process_uid(pid) != st.st_uid
        ):
            continue
        uid = st.st_uid
        if allowed is not None and uid not in verdicts:
            verdicts[uid] = uid == 0 or allowed(uid)
        if allowed is not None and not verdicts[uid]:
            continue
        if per_user.get(uid, 0) >= MAX_PER_USER:
            continue
        w = _read(number, os.path.join(queue.path, name), pid, uid)
        if w is None:
            continue
        seen_pids.add(pid)
        per_user[uid] = per_user.get(uid, 0) + 1
        if lock is None or lock in w.wants:
            out.append(w)
            if len(out) >= MAX_TICKETS:
                break
    return out


def _scan(dir_fd: int) -> list[tuple[int, int, str, int]]:
    """(number, pid, name, inode) of the ticket names among the first MAX_SCAN entries."""
    found = []
    with os.scandir(dir_fd) as entries:
        for n, entry in enumerate(entries):
            if n >= MAX_SCAN:
                break
            m = _TICKET.match(entry.name)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), entry.name, entry.inode()))
    return found


def _remove_stale(queue: LockDir, name: str, ino: int) -> None:
    """Remove a ticket nobody holds (a waiter that died), where we may."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=queue.fd)
    except OSError:
        with contextlib.suppress(OSError):  # a FIFO or a link: not even a ticket
            st = os.stat(name, dir_fd=queue.fd, follow_symlinks=False)
            if st.st_ino == ino and not stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=queue.fd)
        return
    try:
        st = os.fstat(fd)
        if st.st_ino != ino or os.geteuid() not in (0, st.st_uid):
            return
        if stat.S_ISREG(st.st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # still nobody's: stale
        if queue.same_file(name, fd):
            os.unlink(name, dir_fd=queue.fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(number: int, path: str, pid: int, uid: int) -> Waiter | None:
    lines, st = holders.read_head(path, 2)
    holder = holders.parse_record(lines[0]) if len(lines) == 2 else None
    if holder is None or holder.pid != pid or not lines[1].startswith(_WANTS):
        return None
    wants = tuple(lines[1][len(_WANTS) :].split())
    return Waiter(number, path, wants, holders.verify(holder, {pid}, st), uid)
