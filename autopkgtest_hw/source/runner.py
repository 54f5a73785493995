"""Run the real autopkgtest in this process, with needs-hw: understood.

The autopkgtest program is executed as ``__main__`` (as ``python3
/usr/bin/autopkgtest ARGS`` would), after adt_compat has wrapped its
restriction check.  Its output, summary file and exit code are its own.
"""

from __future__ import annotations

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
    try:
        runpy.run_path(str(at.program), run_name="__main__")
    except SystemExit as exc:
        return exit_status(exc.code)
    finally:
        sys.argv = saved_argv
    return Exit.OK
