"""plan knows the restrictions of the autopkgtest that will run, not only a copy of 5.28's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from autopkgtest_hw.source.control import KNOWN_RESTRICTIONS

STANZAS = """\
Tests: future
Restrictions: needs-future-thing

Tests: superficial
Restrictions: superficial
"""


def _package(root: Path) -> Path:
    src = root / "pkg"
    (src / "debian/tests").mkdir(parents=True)
    (src / "debian/control").write_text("Source: pkg\n\nPackage: pkg\nArchitecture: all\n")
    (src / "debian/tests/control").write_text(STANZAS)
    return src


def _autopkgtest(root: Path, known: str) -> Path:
    """An autopkgtest checkout (runner/, lib/, virt/) whose testdesc knows ``known``."""
    (root / "adt/runner").mkdir(parents=True)
    (root / "adt/virt").mkdir()
    (root / "adt/lib").mkdir()
    (root / "adt/lib/testdesc.py").write_text(
        f"import os\n\nknown_restrictions = frozenset({{\n    {known}\n}})\n"
    )
    program = root / "adt/runner/autopkgtest"
    program.write_text("#!/bin/sh\nexit 20\n")
    program.chmod(0o755)
    return program


def _runs(tmp_path: Path, program: Path | None) -> dict[str, bool]:
    env = dict(os.environ)
    if program is not None:
        env["AUTOPKGTEST_HW_AUTOPKGTEST"] = str(program)
    proc = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "plan", "--json", str(_package(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return {t["name"]: t["runs"] for t in json.loads(proc.stdout)["tests"]}


def test_a_restriction_the_installed_autopkgtest_knows_runs(tmp_path: Path) -> None:
    program = _autopkgtest(tmp_path, "'needs-future-thing', 'superficial',")
    assert "needs-future-thing" not in KNOWN_RESTRICTIONS
    assert _runs(tmp_path, program) == {"future": True, "superficial": True}


def test_one_it_does_not_know_is_skipped(tmp_path: Path) -> None:
    program = _autopkgtest(tmp_path, "'needs-future-thing',")
    assert _runs(tmp_path, program) == {"future": True, "superficial": False}


def test_an_unreadable_list_falls_back_to_the_copy(tmp_path: Path) -> None:
    program = _autopkgtest(tmp_path, "*SOMETHING,")
    assert _runs(tmp_path, program) == {"future": False, "superficial": True}


def test_lint_does_not_flag_what_the_installed_autopkgtest_knows(tmp_path: Path) -> None:
    program = _autopkgtest(tmp_path, "'needs-future-thing', 'superficial',")
    env = {**os.environ, "AUTOPKGTEST_HW_AUTOPKGTEST": str(program)}
    proc = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "lint", "--json", str(_package(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    codes = {f["code"] for f in json.loads(proc.stdout)["findings"]}
    assert "unknown-restriction" not in codes, proc.stdout
