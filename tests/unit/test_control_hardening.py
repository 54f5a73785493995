"""Control files that are hostile or read differently by autopkgtest (issue 9, points 5 and 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.base import bounds
from autopkgtest_hw.source.control import (
    ControlError,
    ControlReadError,
    read_source_package,
    read_tests_control,
)

from .test_control import _autopkgtest_parse_rfc822


def package(tmp_path: Path, tests: str | None = "Tests: t\n") -> Path:
    (tmp_path / "debian" / "tests").mkdir(parents=True)
    (tmp_path / "debian" / "control").write_text("Source: p\n\nPackage: p\n")
    if tests is not None:
        (tmp_path / "debian" / "tests" / "control").write_text(tests)
    return tmp_path


def test_devices_fifos_and_huge_files_are_refused_not_read(tmp_path: Path) -> None:
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (zero, fifo):
        with pytest.raises(ControlReadError, match="not a regular file"):
            read_tests_control(str(path))
    big = tmp_path / "big"
    big.write_bytes(b"Tests: t\n" + b"#" * (10 * 2**20))
    with pytest.raises(ControlReadError, match=f"more than the {bounds.MAX_CONTROL_BYTES} bytes"):
        read_tests_control(str(big))


def test_a_dangling_symlink_is_an_error_not_no_tests(tmp_path: Path) -> None:
    pkg = package(tmp_path, tests=None)
    (pkg / "debian" / "tests" / "control").symlink_to("../../nowhere")
    with pytest.raises(ControlReadError, match="symbolic link to nothing"):
        read_source_package(str(pkg))


def test_a_repeated_restrictions_field_is_an_error(tmp_path: Path) -> None:
    text = "Tests: t\nRestrictions: needs-hw:cuda\nRestrictions: allow-stderr\n"
    path = tmp_path / "control"
    path.write_text(text)
    with pytest.raises(ControlError, match="field Restrictions is given twice") as err:
        read_tests_control(str(path))
    assert err.value.line == 3
    # autopkgtest would have dropped needs-hw:cuda silently
    assert list(_autopkgtest_parse_rfc822()(str(path))) == [
        {"Tests": "t", "Restrictions": "allow-stderr"}
    ]


@pytest.mark.parametrize("sep", ["\u2028", "\x85", "\x0c", "\u2029", "\x1e"])
def test_unicode_line_separators_are_not_line_breaks(tmp_path: Path, sep: str) -> None:
    """Text-mode reading (autopkgtest's) breaks lines at \\n and \\r only, unlike splitlines."""
    path = tmp_path / "control"
    path.write_bytes(f"Tests: t{sep}Restrictions: needs-hw:cuda\n".encode())
    [theirs] = _autopkgtest_parse_rfc822()(str(path))
    control = read_tests_control(str(path))
    [stanza] = control.stanzas
    assert theirs == {"Tests": f"t{sep}Restrictions: needs-hw:cuda"}
    assert stanza.restrictions == ()  # no needs-hw: for autopkgtest either
    assert stanza.names == tuple(theirs["Tests"].split())  # autopkgtest's test names


def test_plan_reports_the_difference_with_a_clear_error(tmp_path: Path) -> None:
    pkg = package(tmp_path, "Tests: t\nRestrictions: needs-hw:cuda\nrestrictions: flaky\n")
    r = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "plan", "--json", str(pkg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "given twice" in r.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.stdout or "")
