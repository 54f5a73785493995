"""Progress of an sbuild run, read from its build log: one line per phase, with times.

sbuild prints its log only when stdin and stdout are terminals; otherwise it
writes it to ``PACKAGE_VERSION_ARCH-TIMESTAMP.build`` in its build directory
and prints nothing for minutes.  This follows that file as it grows and
says when each phase begins (testbed, dependencies, build, lintian,
piuparts, autopkgtest, cleanup) and how long the one before took, from the
section headers sbuild writes::

    +------------------------------------------------------------------------------+
    | Install package build dependencies                                           |
    +------------------------------------------------------------------------------+

and (for lintian, piuparts and autopkgtest) ``autopkgtest`` underlined with
dashes.  The log's path is said when it appears and at the end.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from autopkgtest_hw.base.text import safe

#: sbuild's section titles -> our phase names.
SECTIONS = {
    "Install package build dependencies": "dependencies",
    "Build": "build",
    "Cleanup": "cleanup",
}
#: sbuild's sub-sub-section titles (a word underlined with dashes) -> phase names.
SUBSECTIONS = {"lintian": "lintian", "piuparts": "piuparts", "autopkgtest": "autopkgtest"}
FIRST = "testbed"

_RULE = re.compile(r"\+-{3,}\+")
_TITLE = re.compile(r"\| (.*?) *\|")
#: How much of the log is read per look (the rest waits for the next look).
CHUNK = 1 << 20
CHUNKS = 8
#: A longer line is no section header: it is skipped, not kept in memory.
MAX_LINE = 4096


class Progress:
    """Watches one build's log; ``look`` reads what was added since the last look."""

    def __init__(
        self,
        source: str,
        build_dir: str,
        say: Callable[[str], None],
        *,
        phases: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.build_dir = build_dir
        self.say = say
        self.phases = phases
        self.clock = clock
        self.started_at = time.time()
        self.begun = clock()
        self.phase = FIRST
        self.phase_began = self.begun
        self.times: list[tuple[str, float]] = []
        self.path: str | None = None
        self._fd: int | None = None
        self._partial = b""
        self._prev = ""
        if phases:
            self.say(f"{source}: {FIRST}: sbuild is opening the build's testbed")

    def look(self) -> None:
        """Read what sbuild added to its log; say the phases that began."""
        if self._fd is None and not self._open():
            return
        assert self._fd is not None
        for _ in range(CHUNKS):
            try:
                data = os.read(self._fd, CHUNK)
            except OSError:
                return
            if not data:
                return
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            if len(self._partial) > MAX_LINE:
                self._partial = b""
            for raw in lines:
                self._line(raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"))

    def finish(self, status: int) -> None:
        """The build is over (``status``: sbuild's exit status): the phases' times and the log."""
        self.look()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        now = self.clock()
        self.times.append((self.phase, now - self.phase_began))
        spent = ", ".join(f"{name} {_secs(t)}" for name, t in self.times)
        ended = f"{self.source}: sbuild exited {status} after {_secs(now - self.begun)}"
        self.say(ended + (f" ({spent})" if self.phases else ""))
        if self.path:
            self.say(f"{self.source}: sbuild log: {safe(self.path)}")
        else:
            self.say(f"{self.source}: no sbuild log of it in {safe(self.build_dir)}")

    def _open(self) -> bool:
        path = self._find()
        if path is None:
            return False
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        self.path = path
        if self.phases:
            self.say(f"{self.source}: sbuild log: {safe(path)}")
        return True

    def _find(self) -> str | None:
        """The newest log of this package that sbuild began after we started it."""
        prefix = f"{self.source}_"
        best: tuple[float, str] | None = None
        try:
            with os.scandir(self.build_dir) as it:
                for entry in it:
                    if not (entry.name.startswith(prefix) and entry.name.endswith(".build")):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                        continue
                    if st.st_mtime >= self.started_at - 2 and (
                        best is None or st.st_mtime > best[0]
                    ):
                        best = (st.st_mtime, entry.path)
        except OSError:
            return None
        return best[1] if best else None

    def _line(self, line: str) -> None:
        prev, self._prev = self._prev, line
        name: str | None = None
        if _RULE.fullmatch(prev):
            title = _TITLE.fullmatch(line)
            if title:
                name = SECTIONS.get(title.group(1))
        elif line and set(line) == {"-"} and len(line) == len(prev):
            name = SUBSECTIONS.get(prev)
        if name is None or name == self.phase:
            return
        now = self.clock()
        took = now - self.phase_began
        self.times.append((self.phase, took))
        if self.phases:
            self.say(f"{self.source}: {name} ({self.phase} took {_secs(took)})")
        self.phase, self.phase_began = name, now


def _secs(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"
