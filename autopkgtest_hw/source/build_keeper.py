"""The build's keeper: sbuild's parent, holding the device locks until the build's last process.

``autopkgtest-hw build`` locks the devices, then forks this keeper, which
starts sbuild.  The keeper makes itself a child subreaper
(``PR_SET_CHILD_SUBREAPER``): every process of the build -- sbuild, the
``hwgpu`` virt servers, the lock keepers they start in sessions of their
own, the testbeds' processes -- is its descendant, and one whose parent ends
is reparented to it, so it can wait until none is left.  It holds the lock
descriptors (sbuild inherits them too) the whole time: the devices stay
locked while any process of the build lives, whatever way
``autopkgtest-hw build`` ended, SIGKILL included.  Then it removes the
build's temporary directory and exits with sbuild's status.

When ``autopkgtest-hw build`` is gone before sbuild is, the keeper sends
sbuild SIGTERM (sbuild then closes its testbed); processes that outlive
sbuild get ``GRACE`` seconds, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from autopkgtest_hw.base.text import safe

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

#: How long processes that outlive sbuild may take to end (a virt server's keeper
#: removing an unpacked testbed) before they get SIGTERM; then SIGKILL after TERM_WAIT.
GRACE = 300.0
TERM_WAIT = 10.0
POLL = 0.2


def _prctl(option: int, arg: int) -> bool:
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    return bool(ctypes.CDLL(libc_name, use_errno=True).prctl(option, arg, 0, 0, 0) == 0)


class Keeper:
    """The keeper of one build, seen from ``autopkgtest-hw build``."""

    def __init__(self, argv: Sequence[str], cwd: str | None, fds: Sequence[int], tmp: str) -> None:
        alive_r, self._alive = os.pipe()  # EOF for the keeper: we are gone
        pid_r, pid_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the keeper's side, measured by the e2e tests
            code = 70
            try:
                os.close(self._alive)
                os.close(pid_r)
                code = _keep(list(argv), cwd, list(fds), tmp, alive_r, pid_w)
            finally:
                os._exit(code)
        self.pid = pid
        os.close(alive_r)
        os.close(pid_w)
        with os.fdopen(pid_r, "rb") as f:
            text = f.read(32)
        self.sbuild_pid = int(text) if text.isdigit() else 0
        self._sbuild_fd: int | None = None
        if self.sbuild_pid:
            with contextlib.suppress(OSError):
                self._sbuild_fd = os.pidfd_open(self.sbuild_pid)

    def poll(self) -> int | None:
        """The keeper's exit status (sbuild's) once it is done: every build process is gone."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        self._close()
        return os.waitstatus_to_exitcode(status)

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        self._close()
        return os.waitstatus_to_exitcode(status)

    def stop_sbuild(self) -> None:
        """SIGTERM to sbuild (it then closes its testbed); the keeper waits for the rest."""
        if self._sbuild_fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._sbuild_fd, signal.SIGTERM)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._alive)
        if self._sbuild_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._sbuild_fd)
            self._sbuild_fd = None


# -- the keeper process -----------------------------------------------------------


def _child_setup() -> None:  # pragma: no cover - sbuild's side, before exec
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _say(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"autopkgtest-hw: {message}", file=sys.stderr, flush=True)


def _keep(
    argv: list[str], cwd: str | None, fds: list[int], tmp: str, alive: int, pid_w: int
) -> int:  # pragma: no cover - runs in the forked keeper; the e2e tests watch it
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # only sbuild's end and ours decide
    try:
        if not _prctl(_PR_SET_CHILD_SUBREAPER, 1):
            _say(
                "warning: cannot become a child subreaper: the devices are held until sbuild"
                " ends, not until the last process of the build does"
            )
        try:
            proc = subprocess.Popen(argv, cwd=cwd, pass_fds=fds, preexec_fn=_child_setup)
        except OSError as exc:
            os.close(pid_w)
            _say(f"error: cannot run {safe(argv[0])}: {exc.strerror}")
            return 127
        os.write(pid_w, str(proc.pid).encode())
        os.close(pid_w)
        return _reap(proc.pid, alive)  # holding ``fds`` all along
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _reap(sbuild: int, alive: int) -> int:  # pragma: no cover - keeper side
    status: int | None = None
    parent_gone = False
    sbuild_end = 0.0
    termed = killed = False
    while True:
        ready, _, _ = select.select([] if parent_gone else [alive], [], [], POLL)
        if ready and not os.read(alive, 64):
            parent_gone = True
            if status is None:
                _say(
                    "the build command is gone: stopping sbuild; the devices stay locked"
                    " until the last process of the build has ended"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sbuild, signal.SIGTERM)
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 1 if status is None else status
            if pid == 0:
                break
            if pid == sbuild:
                code = os.waitstatus_to_exitcode(wstatus)
                status = code if code >= 0 else 128 - code
                sbuild_end = time.monotonic()
        if status is None:
            continue
        waited = time.monotonic() - sbuild_end
        if waited > GRACE and not termed:
            _say(f"processes of the build outlived sbuild by {GRACE:.0f} s: sending SIGTERM")
            _signal_descendants(signal.SIGTERM)
            termed = True
        elif waited > GRACE + TERM_WAIT and not killed:
            _say("processes of the build are still there: sending SIGKILL")
            _signal_descendants(signal.SIGKILL)
            killed = True


def _signal_descendants(sig: int) -> None:  # pragma: no cover - keeper side
    """``sig`` to every process below this one (all are ours: we are their subreaper)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read(4096)
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents[int(name)] = int(fields[1])
    for pid in parents:
        p, seen = pid, 0
        while p in parents and p != me and seen < 4096:
            p, seen = parents[p], seen + 1
        if p == me and pid != me:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
