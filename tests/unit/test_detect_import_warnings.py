"""A detector's library that warns while it is imported does not print on stderr.

trixie's python3-pytools (imported by pyopencl) warns at import that its
optional hash module is missing; a line on stderr fails an autopkgtest test
that runs autopkgtest-hw.  The warning goes to the debug log instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WARNS = """\
import warnings
warnings.warn("Unable to import recommended hash 'siphash24.siphash13', falling back")
VALUE = 42
"""

PROBE = """
import sys
from autopkgtest_hw.base import log
from autopkgtest_hw.detect.base import optional_module
log.setup("probe", debug=sys.argv[1] == "debug")
print(optional_module("warns_on_import", "not installed").VALUE)
"""


def probe(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "warns_on_import.py").write_text(WARNS)
    return subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}", "PATH": "/usr/bin"},
        check=False,
    )


def test_an_import_warning_stays_off_stderr(tmp_path: Path) -> None:
    proc = probe(tmp_path, "quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "42\n"
    assert proc.stderr == ""


def test_an_import_warning_is_in_the_debug_log(tmp_path: Path) -> None:
    proc = probe(tmp_path, "debug")
    assert proc.returncode == 0, proc.stderr
    assert "importing warns_on_import: UserWarning: Unable to import recommended hash" in (
        proc.stderr
    )
