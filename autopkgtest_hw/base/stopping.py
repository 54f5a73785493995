"""Ending a child process that was asked to quit: wait, then SIGTERM, then SIGKILL."""

from __future__ import annotations

import contextlib
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
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
