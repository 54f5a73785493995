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

_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
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
        if self.owner and self.user and self.owner != self.user and not self.verified:
            text += f" [unverified: the process belongs to {safe(self.owner)}]"
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
    lines = read_lines(path, MAX_LINES)
    out = []
    for line in lines:
        h = parse_record(line)
        if h is not None:
            out.append(h)
    return out


def read_lines(path: str, count: int) -> list[str]:
    """Up to ``count`` lines of a regular file (each cut at MAX_LINE), never through a symlink.

    Lock and ticket files may have been planted by anybody: a FIFO would
    block, /dev/zero would never end a line.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        data = os.read(fd, count * MAX_LINE)
    except OSError:
        return []
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    return [line[:MAX_LINE] for line in text.splitlines(keepends=True)[:count]]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def process_owner(pid: int) -> str | None:
    try:
        return user_name(os.stat(f"/proc/{pid}").st_uid)
    except OSError:
        return None


def flock_pids(path: str) -> set[int] | None:
    """The pids the kernel says hold an flock on ``path`` (None: cannot tell)."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read(1 << 20)
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: set[int] = set()
    for line in table.splitlines():
        words = line.split()
        if "->" in words:  # a waiter, not a holder
            continue
        if len(words) >= 6 and words[1] == "FLOCK" and words[5] == want and words[4].isdigit():
            pids.add(int(words[4]))
    return pids


def verify(h: Holder, lock_pids: set[int] | None) -> Holder:
    """Fill in ``owner`` and ``verified`` from the kernel's view of the process."""
    owner = process_owner(h.pid)
    holds = lock_pids is None or h.pid in lock_pids
    ok = holds and owner is not None and (h.user is None or h.user == owner or owner == "root")
    return replace(h, owner=owner, verified=ok)


def live_holders(path: str) -> list[Holder]:
    """The records of ``path`` whose process is alive, verified against the kernel."""
    pids = flock_pids(path)
    return [verify(h, pids) for h in read_records(path) if alive(h.pid)]
