"""Holder records: who holds (or waits for) a device lock, written into the lock file.

One record is one line::

    hw1 pid=4242 kind=porterbox user=alice since=1764320000 until=1764327200 package= argv=...

Values are percent-quoted, every field is validated when read (a field that
fails is dropped, a line that fails is ignored) and bounded, and nothing in a
record is trusted on its own: ``verify`` checks the claimed pid against the
kernel's lock table (``/proc/locks``) and the claimed user against the
owner of that process.  Printing goes through ``text.safe``.  Older lines
(``PID COMMAND LINE``) are still read, as ``kind=unknown``.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import quote, unquote

from autopkgtest_hw.base.text import safe

MAGIC = "hw1"
KINDS = ("ci", "build", "porterbox", "unknown")
MAX_LINE = 4096
MAX_ARGV = 1000
#: Records are read from at most this many lines of a lock or ticket file.
MAX_LINES = 64
#: /proc/locks is read up to this size; beyond it, who holds what is "cannot tell".
MAX_LOCK_TABLE = 256 << 20

_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._/-]{0,127}$")
_INT = re.compile(r"^[0-9]{1,12}$")
#: Times beyond these are not believed (the year 2001 to 2286).
_MIN_TIME, _MAX_TIME = 10**9, 10**10


@dataclass(frozen=True)
class Holder:
    """One process that holds or waits for a device."""

    pid: int
    kind: str = "unknown"
    user: str | None = None
    package: str | None = None
    since: int | None = None
    until: int | None = None
    argv: str | None = None
    #: The locked device's UUID where it has one (the lock's name is its PCI address).
    device: str | None = None
    #: Set by ``verify``: the kernel confirms the pid holds the lock and the user owns it.
    verified: bool = False
    #: Set by ``verify``: the user that really owns the process (when it can be read).
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for a person: ``porterbox session of alice (pid 42) until ...``."""
        if self.kind == "porterbox":
            text = f"porterbox session of {safe(self.user or 'unknown user')} (pid {self.pid})"
        else:
            text = f"pid {self.pid}"
            if self.argv:
                text += f" ({safe(self.argv, 200)})"
            what = {"ci": "CI job", "build": "build"}.get(self.kind)
            if what:
                if self.package:
                    what += f" of {self.package}"
                if self.user:
                    what += f" by {safe(self.user)}"
                text += f", {what}"
        if self.owner and self.user and not self.verified:
            if self.owner != self.user:
                text += f" [unverified: the process belongs to {safe(self.owner)}]"
            else:
                text += " [unverified: another user may have written this record]"
        if self.since is not None:
            text += f" since {clock(self.since)}"
        if self.until is not None:
            text += f" until {clock(self.until)}"
        return text


def clock(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def this_user() -> str:
    """The person behind this process: the sudo caller when root runs through sudo."""
    sudo_user = os.environ.get("SUDO_USER", "")
    if os.geteuid() == 0 and sudo_user and _USER.match(sudo_user):
        return sudo_user
    return user_name(os.getuid())


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def for_this_process(
    kind: str = "ci",
    package: str | None = None,
    hold_for: float | None = None,
    pid: int | None = None,
) -> Holder:
    now = int(time.time())
    return Holder(
        pid=os.getpid() if pid is None else pid,
        kind=kind if kind in KINDS else "unknown",
        user=this_user(),
        package=package if package and _PACKAGE.match(package) else None,
        since=now,
        until=now + int(hold_for) if hold_for else None,
        argv=shlex.join(sys.argv)[:MAX_ARGV],
    )


def restamp(h: Holder) -> Holder:
    """``h`` as of now: the lock is taken now, and held for as long as asked from now."""
    now = int(time.time())
    if h.since is None:
        return replace(h, since=now)
    until = None if h.until is None else now + (h.until - h.since)
    return replace(h, since=now, until=until)


def format_record(h: Holder) -> str:
    fields = {
        "pid": str(h.pid),
        "kind": h.kind,
        "user": h.user or "",
        "package": h.package or "",
        "since": "" if h.since is None else str(h.since),
        "until": "" if h.until is None else str(h.until),
        "argv": (h.argv or "")[:MAX_ARGV],
    }
    if h.device:
        fields["device"] = h.device
    words = [f"{k}={quote(v, safe='/:.,+@-_')}" for k, v in fields.items()]
    return " ".join([MAGIC, *words]) + "\n"


def parse_record(line: str) -> Holder | None:
    """A validated record, or None for a line that is not one."""
    line = line[:MAX_LINE]
    words = line.split()
    if not words:
        return None
    if words[0] != MAGIC:
        return _parse_legacy(line)
    raw: dict[str, str] = {}
    for w in words[1:]:
        key, eq, value = w.partition("=")
        if eq and key not in raw:
            raw[key] = unquote(value, errors="replace")
    pid = raw.get("pid", "")
    if not _INT.match(pid) or int(pid) == 0:
        return None
    return Holder(
        pid=int(pid),
        kind=raw.get("kind", "") if raw.get("kind") in KINDS else "unknown",
        user=_valid(raw.get("user"), _USER),
        package=_valid(raw.get("package"), _PACKAGE),
        since=_time(raw.get("since")),
        until=_time(raw.get("until")),
        argv=(raw.get("argv") or None) and raw["argv"][:MAX_ARGV],
        device=_valid(raw.get("device"), _DEVICE),
    )


def _parse_legacy(line: str) -> Holder | None:
    pid, _, argv = line.strip().partition(" ")
    if not _INT.match(pid) or int(pid) == 0:
        return None
    return Holder(pid=int(pid), argv=argv[:MAX_ARGV] or None)


def _valid(value: str | None, pattern: re.Pattern[str]) -> str | None:
    return value if value and pattern.match(value) else None


def _time(value: str | None) -> int | None:
    if not value or not _INT.match(value):
        return None
    t = int(value)
    return t if _MIN_TIME <= t < _MAX_TIME else None


def read_records(path: str) -> list[Holder]:
    """The records of a lock or ticket file (at most MAX_LINES lines are read)."""
    return read_file(path)[0]


def read_file(path: str) -> tuple[list[Holder], os.stat_result | None]:
    """The records of a lock or ticket file and the status of the file they were read from."""
    lines, st = read_head(path, MAX_LINES)
    out = []
    for line in lines:
        h = parse_record(line)
        if h is not None:
            out.append(h)
    return out, st


def read_lines(path: str, count: int) -> list[str]:
    """Up to ``count`` lines of a regular file (each cut at MAX_LINE), never through a symlink."""
    return read_head(path, count)[0]


def read_head(path: str, count: int) -> tuple[list[str], os.stat_result | None]:
    """Up to ``count`` lines of a regular file, and its status.

    Lock and ticket files may have been planted by anybody: a FIFO would
    block, /dev/zero would never end a line.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return [], None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return [], None
        data = os.read(fd, count * MAX_LINE)
    except OSError:
        return [], None
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    return [line[:MAX_LINE] for line in text.splitlines(keepends=True)[:count]], st


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def process_owner(pid: int) -> str | None:
    uid = process_uid(pid)
    return None if uid is None else user_name(uid)


def process_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def flock_pids(path: str) -> set[int] | None:
    """The pids the kernel says hold an flock on ``path`` (None: cannot tell)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_dev, st.st_ino)
    table = lock_table({key})
    return None if table is None else table.get(key, set())


def lock_table(files: set[tuple[int, int]]) -> dict[tuple[int, int], set[int]] | None:
    """For each ``(st_dev, st_ino)`` of ``files``: the pids holding an flock on it.

    ``/proc/locks`` is read whole, line by line (memory stays small however
    many locks there are): reading only a first part would let a user hide a
    holder behind enough locks of their own.  Past MAX_LOCK_TABLE bytes the
    answer is None, "cannot tell", never "nobody".
    """
    want = {f"{os.major(d):02x}:{os.minor(d):02x}:{i}": (d, i) for d, i in files}
    out: dict[tuple[int, int], set[int]] = {}
    read = 0
    try:
        with open("/proc/locks", "rb") as f:
            for raw in f:
                read += len(raw)
                if read > MAX_LOCK_TABLE:
                    return None
                words = raw.split()
                if len(words) < 6 or words[1] != b"FLOCK" or b"->" in words:
                    continue  # not an flock, or a waiter rather than a holder
                key = want.get(words[5].decode("ascii", "replace"))
                if key is not None and words[4].isdigit():
                    out.setdefault(key, set()).add(int(words[4]))
    except OSError:
        return None
    return out


def verify(h: Holder, lock_pids: set[int] | None, st: os.stat_result | None = None) -> Holder:
    """Fill in ``owner`` and ``verified`` from the kernel's view of the process and the file.

    A record is verified when the kernel confirms that its pid holds the lock,
    its user owns that process (root may act for anybody: sudo), and the file
    it was read from (``st``) could have been written by nobody else: it
    belongs to that process's user or to root and no group or other may write
    it.  Without ``st`` the file is not checked.
    """
    uid = process_uid(h.pid)
    owner = None if uid is None else user_name(uid)
    holds = lock_pids is None or h.pid in lock_pids
    ok = holds and owner is not None and (h.user is None or h.user == owner or owner == "root")
    if ok and st is not None:
        ok = st.st_uid in (0, uid) and not st.st_mode & 0o022
    return replace(h, owner=owner, verified=ok)


def live_holders(path: str, pids: set[int] | None = None) -> list[Holder]:
    """The records of ``path`` whose process is alive, verified against the kernel.

    ``pids``: the holders the kernel names (``flock_pids``), if already read.
    """
    if pids is None:
        pids = flock_pids(path)
    records, st = read_file(path)
    return [verify(h, pids, st) for h in records if alive(h.pid)]
