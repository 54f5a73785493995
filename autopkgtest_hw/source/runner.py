"""Run the real autopkgtest in this process, with needs-hw: understood.

The autopkgtest program is executed as ``__main__`` (as ``python3
/usr/bin/autopkgtest ARGS`` would), after adt_compat has wrapped its
restriction check.  Its output, summary file and exit code are its own.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.source import adt_compat, skipfree


def exit_status(code: object) -> int:
    """The process exit status that ``SystemExit(code)`` stands for."""
    if code is None:
        return Exit.OK
    if isinstance(code, int):
        return code
    log.error(str(code))  # what Python itself prints for sys.exit("message")
    return Exit.FAILED  # what Python itself exits with then


def reopen_closed_stdio() -> None:
    """Point file descriptors 1 and 2, where closed, at /dev/null.

    With --output-dir (or --log-file) autopkgtest tees its stdout and stderr
    into the log, and at exit (atexit) closes descriptors 1 and 2 and its tee
    pipes' descriptors so the tees see EOF.  Run in this process (runpy), its
    pipe objects are freed after that, closing those descriptors again
    fails (EBADF), and Python reports it on the closed stderr, which it then
    cannot flush: the process exits 120 instead of autopkgtest's code.  Seen
    with trixie's Python 3.13 in tools/run-example.sh (the same run exits 2
    on bookworm, Python 3.11).
    Registered with atexit before autopkgtest runs, this runs after its
    cleanup (atexit is last in, first out): what is written after that goes
    to /dev/null, as nobody reads it (the tees are gone).
    """
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)  # the lowest free descriptor
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def run_autopkgtest(
    args: list[str], program: str | None = None, predictor: skipfree.Predictor | None = None
) -> int:
    """Run autopkgtest with ``args`` verbatim and return its exit code.

    With ``predictor`` (what the testbed would advertise), a package whose
    every test is skipped whatever the testbed is reported without opening it
    (``skipfree``).  Raises AdtCompatError when that autopkgtest cannot be used.
    """
    at = adt_compat.locate(program)
    adt_compat.install(at)
    if predictor is not None:
        saved_argv = sys.argv
        try:
            code = skipfree.try_without_testbed(at, args, predictor)
        finally:
            sys.argv = saved_argv
        if code is not None:
            return code
    log.debug(f"running {at.describe()}, library {at.lib_dir}, with {args!r}")
    saved_argv = sys.argv
    sys.argv = [str(at.program), *args]
    atexit.register(reopen_closed_stdio)
    try:
        runpy.run_path(str(at.program), run_name="__main__")
    except SystemExit as exc:
        return exit_status(exc.code)
    finally:
        sys.argv = saved_argv
    return Exit.OK
