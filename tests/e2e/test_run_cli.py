"""``autopkgtest-hw run``'s command line: what passes through, what is its own, what fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .fixtures import AUTOPKGTEST_HW, command_test, hw_env, make_tests_tree, run_hw


def run_raw(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AUTOPKGTEST_HW), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    return make_tests_tree(
        tmp_path / "pkg", [command_test("plain"), command_test("gpu", "needs-hw:cuda")]
    )


def test_autopkgtest_options_pass_through_untouched(tmp_path: Path, pkg: Path) -> None:
    """-d and -o are autopkgtest's: its debug log appears, its output dir is written."""
    out = tmp_path / "out"
    proc = run_raw(["run", "-d", "-o", str(out), str(pkg), "--", "null"], hw_env(None))
    assert proc.returncode == 2, proc.stderr
    assert "DBG: " in proc.stderr  # autopkgtest's own debug messages
    summary = (out / "summary").read_text().splitlines()
    assert "plain                PASS" in summary
    assert (out / "log").is_file()


def test_global_debug_is_ours_and_the_rest_is_autopkgtests(tmp_path: Path, pkg: Path) -> None:
    out = tmp_path / "out"
    proc = run_raw(["-d", "run", "-o", str(out), str(pkg), "--", "null"], hw_env(None))
    assert proc.returncode == 2, proc.stderr
    assert "autopkgtest-hw: debug: running autopkgtest" in proc.stderr
    assert "DBG: " not in proc.stderr


def test_program_option_and_environment_pick_the_autopkgtest(
    tmp_path: Path, pkg: Path, autopkgtest_new: Path
) -> None:
    option = f"--hw-autopkgtest={autopkgtest_new}"
    by_option = run_raw(
        ["run", option, "-o", str(tmp_path / "a"), str(pkg), "--", "null"], hw_env(None)
    )
    assert by_option.returncode == 2, by_option.stderr
    assert "version 6.0" in by_option.stderr
    by_env = run_raw(
        ["run", "-o", str(tmp_path / "b"), str(pkg), "--", "null"], hw_env(autopkgtest_new)
    )
    assert by_env.returncode == 2, by_env.stderr
    assert "version 6.0" in by_env.stderr
    system = run_raw(["run", "-o", str(tmp_path / "c"), str(pkg), "--", "null"], hw_env(None))
    assert "version 6.0" not in system.stderr


def test_autopkgtest_usage_errors_are_its_own(tmp_path: Path, pkg: Path) -> None:
    proc = run_raw(["run", str(pkg)], hw_env(None))
    assert proc.returncode == 20
    assert "autopkgtest: error: You must specify -- <virt-server>" in proc.stderr


def test_a_failing_test_gives_autopkgtests_exit_code(tmp_path: Path) -> None:
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("fails", command="false")])
    r = run_hw([str(pkg), "--", "null"], None, tmp_path / "summary")
    assert r.rc == 4
    assert r.summary == ["fails                FAIL non-zero exit status 1"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--hw-bogus=1"], "unknown option --hw-bogus"),
        (["--hw-autopkgtest"], "option --hw-autopkgtest needs a value"),
        (["--hw-open-testbed=yes"], "option --hw-open-testbed takes no value"),
        (
            ["--hw-autopkgtest=/nonexistent/autopkgtest"],
            "autopkgtest program /nonexistent/autopkgtest does not exist",
        ),
    ],
)
def test_bad_own_options(pkg: Path, option: list[str], message: str) -> None:
    proc = run_raw(["run", *option], hw_env(None))
    assert proc.returncode == 20
    assert f"autopkgtest-hw: error: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr


def moved_autopkgtest(where: Path, version: str, edit: tuple[str, str]) -> Path:
    """A checkout-style copy of the system autopkgtest whose testdesc.py was changed."""
    (where / "runner").mkdir(parents=True)
    (where / "virt").mkdir()
    (where / "debian").mkdir()
    shutil.copy("/usr/bin/autopkgtest", where / "runner/autopkgtest")
    shutil.copytree("/usr/share/autopkgtest/lib", where / "lib")
    testdesc = where / "lib/testdesc.py"
    old, new = edit
    text = testdesc.read_text()
    assert old in text
    testdesc.write_text(text.replace(old, new, 1))
    (where / "debian/changelog").write_text(f"autopkgtest ({version}) unstable; urgency=medium\n")
    return where / "runner/autopkgtest"


@pytest.mark.parametrize(
    ("edit", "moved"),
    [
        (
            ("def check_testbed_compat(", "def check_testbed_compatibility("),
            "testdesc.Test.check_testbed_compat",
        ),
        (("ignore_restrictions=()", "ignored=()"), "testdesc.Test.check_testbed_compat(self, caps"),
        (("class Unsupported(Exception)", "class NotSupported(Exception)"), "testdesc.Unsupported"),
    ],
)
def test_a_future_autopkgtest_that_moved_internals_is_refused_clearly(
    tmp_path: Path, pkg: Path, edit: tuple[str, str], moved: str
) -> None:
    program = moved_autopkgtest(tmp_path / "autopkgtest-9.1", "9.1", edit)
    proc = run_raw(["run", str(pkg), "--", "null"], hw_env(program))
    assert proc.returncode == 20
    assert f"autopkgtest-hw: error: autopkgtest 9.1 moved {moved}" in proc.stderr
    assert "this autopkgtest-hw knows autopkgtest 5.28 (bookworm), 5.49 (trixie)" in proc.stderr
    assert "Traceback" not in proc.stderr
