"""One error hierarchy and one table of exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autopkgtest_hw.base.errors import Exit, HwError, StartupError, UsageError
from autopkgtest_hw.locks.allocate import AllocationError
from autopkgtest_hw.source.adt_compat import AdtCompatError
from autopkgtest_hw.source.control import ControlError, ControlReadError
from autopkgtest_hw.spec.inventory import InventoryError
from autopkgtest_hw.spec.language import SpecError
from autopkgtest_hw.virt.backends import PassthroughError
from autopkgtest_hw.virt.probe import ProbeError
from autopkgtest_hw.virt.proxy import InnerDied


@pytest.mark.parametrize(
    "cls",
    [
        AdtCompatError,
        AllocationError,
        ControlError,
        ControlReadError,
        InnerDied,
        InventoryError,
        PassthroughError,
        ProbeError,
        SpecError,
        StartupError,
        UsageError,
    ],
)
def test_every_error_a_user_may_see_is_an_hw_error(cls: type[Exception]) -> None:
    assert issubclass(cls, HwError)


def test_exit_codes_mean_what_autopkgtest_and_the_shell_mean() -> None:
    assert (Exit.OK, Exit.FAILED, Exit.USAGE) == (0, 1, 2)
    assert (Exit.PROTOCOL, Exit.INNER_CRASH, Exit.ADT_ERROR) == (12, 16, 20)
    assert (Exit.SKIP, Exit.CANNOT_RUN, Exit.NOT_FOUND) == (77, 126, 127)
    assert len(set(Exit)) == len(Exit.__members__)  # no code means two things


def test_an_error_out_of_a_command_is_one_message_and_its_exit_code() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "detect", "--inventory", "/nonexistent.json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == Exit.USAGE
    assert proc.stderr.startswith("autopkgtest-hw: error: ")
    assert "Traceback" not in proc.stderr
