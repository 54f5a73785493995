"""One base for every error a user may see, and one table of exit codes.

Every error this package raises on bad input or an unready host derives from
:class:`HwError`; its message says what is wrong and how to fix it, so a
command prints it as ``prog: error: message`` and exits with a code from the
table below, never with a traceback.  The domain errors live beside their
domain (``spec.SpecError``, ``inventory.InventoryError``,
``control.ControlError``, ``allocate.AllocationError``,
``backends.PassthroughError``, ``probe.ProbeError``,
``adt_compat.AdtCompatError``); the command-line ones are here.

The exit codes keep the meaning autopkgtest gives them: 2 for bad usage of
our own commands, 12/16/20 as autopkgtest and its virt servers use them, 77
for a skipped test, 126/127 as the shell uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum


class HwError(Exception):
    """An error whose message is fit for the user (what is wrong, how to fix it).

    ``exit_status``: the code a program exits with for it; None leaves it to the
    program (``autopkgtest-hw``: the sub-command's ``ERROR_EXIT``, else 2).
    """

    exit_status: int | None = None


@contextmanager
def exit_status(code: int, *kinds: type[HwError]) -> Iterator[None]:
    """An error of ``kinds`` (default: any HwError) raised in the block exits with ``code``.

    Unless it names its own.  The error still goes up to the one place that prints it.
    """
    try:
        yield
    except HwError as exc:
        if exc.exit_status is None and isinstance(exc, kinds or HwError):
            exc.exit_status = code
        raise


class UsageError(HwError):
    """The command line is wrong."""


class StartupError(HwError):
    """The virt server's testbed cannot be set up; the message says what to do."""


class Exit(IntEnum):
    """Exit statuses, by meaning."""

    OK = 0
    #: A spec does not hold, lint found an error, a control file is malformed, or
    #: the virt server could not set its testbed up (VirtSubproc.bomb() before its loop).
    FAILED = 1
    #: Bad usage or unreadable input of our own commands (argparse's code).
    USAGE = 2
    #: ``build`` refused: the hardware spec does not hold here, or the devices stayed busy.
    REFUSED = 3
    #: The virt server got EOF or a protocol error from autopkgtest (bomb() in the loop).
    PROTOCOL = 12
    #: The virt server's inner server died unexpectedly (autopkgtest: testbed failure).
    INNER_CRASH = 16
    #: autopkgtest's code for bad usage and unexpected errors (``autopkgtest-hw run``).
    ADT_ERROR = 20
    #: The test skipped itself (autopkgtest's skippable restriction).
    SKIP = 77
    #: A porterbox session reached its time limit (as timeout(1) says).
    TIMEOUT = 124
    #: The command was found but cannot be run (as the shell says).
    CANNOT_RUN = 126
    #: The command was not found (as the shell says).
    NOT_FOUND = 127
    #: Interrupted by SIGINT (128 + 2, as the shell says).
    INTERRUPTED = 130
