"""Ending a child process that was asked to quit: wait, then SIGTERM, then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Callable


def escalate(
    proc: subprocess.Popen[bytes],
    wait: float,
    term_wait: float,
    warn: Callable[[str], None],
) -> None:
    """Close ``proc``'s stdin and wait ``wait`` seconds; then SIGTERM and ``term_wait``; SIGKILL.

    ``warn`` gets the signal's name (``SIGTERM``) before each signal is sent.
    The process is gone when this returns.
    """
    if proc.stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()
    for sig, timeout in ((None, wait), (signal.SIGTERM, term_wait), (signal.SIGKILL, None)):
        if sig is not None and proc.poll() is None:
            warn(signal.Signals(sig).name)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        if wait_for_exit(proc, timeout):
            return


def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Whether ``proc`` exited (and was reaped) within ``timeout`` seconds (None: no limit).

    Waits on a pidfd, so the exit is seen at once: ``Popen.wait(timeout)``
    polls with sleeps of up to 50 ms, which a virt server's ``quit`` (a
    few ms of the inner server's own) would pay on every run.
    """
    if timeout is None or proc.poll() is not None:
        proc.wait()
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)  # not reaped yet (poll above): still our child
    except OSError:  # a kernel without pidfds (before 5.3)
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not readable:
        return False
    proc.wait()
    return True
