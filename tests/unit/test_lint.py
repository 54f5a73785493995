"""lint: each mistake at its file, line and column, with the fix; exit codes like a compiler's."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hwdemo"

SOURCE = "Source: demo\nMaintainer: A <a@example.org>\n{extra}\nPackage: demo\nArchitecture: all\n"


def make_source(tmp_path: Path, tests: str | None, extra: str = "") -> Path:
    src = tmp_path / "demo"
    (src / "debian" / "tests").mkdir(parents=True)
    (src / "debian" / "control").write_text(SOURCE.format(extra=extra), encoding="utf-8")
    if tests is not None:
        (src / "debian" / "tests" / "control").write_text(tests, encoding="utf-8")
    return src


def lint(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["lint", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def findings(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    rc = main(["lint", "--json", *args])
    data = json.loads(capsys.readouterr().out)
    return rc, data["findings"]


def test_misspelt_class_names_file_line_column_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: smoke\nRestrictions: needs-root, needs-hw:cdua:cc>=8.0\nDepends: @\n",
        extra="XS-Requires-Hwspec: cuda\n",
    )
    rc, out, _ = lint(capsys, str(src))
    assert rc == 1
    path = src / "debian" / "tests" / "control"
    # "needs-hw:" starts at column 27 of line 2; "cdua" at 36.
    assert (
        f"{path}:2:36: error: invalid hardware spec 'needs-hw:cdua:cc>=8.0': unknown class 'cdua'"
        in out
    )
    assert "[invalid-needs-hw-spec]\n    fix: needs-hw:cuda:cc>=8.0\n" in out
    assert out.rstrip().endswith("1 error, 1 hint")


@pytest.mark.parametrize(
    ("token", "fix"),
    [
        ("needs-hw:cuda:vram>=16G", "needs-hw:cuda:mem>=16G"),
        ("needs-hw:cuda:mem>=16", "needs-hw:cuda:mem>=16G"),
        ("needs-hw:rocm:arch>=sm_80", None),  # no sensible fix offered for rocm
        ("needs-hw:cuda:arch>=sm_80", "needs-hw:cuda:cc>=8.0"),
        ("needs-hw:opencl:type=gpuu", "needs-hw:opencl:type=gpu"),
        ("needs-hw:cdua:memm>=16", "needs-hw:cuda:mem>=16G"),  # two errors, both fixed
        ("need-hw:cuda", "needs-hw:cuda"),
        ("needs_hw:rocm:gfx90a", "needs-hw:rocm:gfx90a"),
        ("needs-gpu:cuda", "needs-hw:cuda"),
    ],
)
def test_fixes_are_specs_that_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], token: str, fix: str | None
) -> None:
    src = make_source(tmp_path, f"Tests: t\nRestrictions: skippable {token}\n")
    rc, found = findings(capsys, str(src))
    assert rc == 1
    errors = [f for f in found if f["severity"] == "error"]
    assert len(errors) == 1
    assert errors[0]["line"] == 2
    assert errors[0]["fix"] == fix
    if fix:
        from autopkgtest_hw.spec.language import parse

        parse(fix)


def test_bare_needs_hw_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_source(tmp_path, "Tests: t\nRestrictions: needs-hw\n")
    rc, found = findings(capsys, str(src))
    assert rc == 1
    assert [(f["tag"], f["line"], f["column"]) for f in found] == [("needs-hw-without-spec", 2, 15)]


def test_clean_package_exits_0_with_hints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: t\nRestrictions: needs-hw:cuda:cc>=8.0, skippable\n\n"
        "Tests: u\nRestrictions: needs-hw:opencl:type=cpu\n",
        extra="XS-Requires-Hwspec: cuda:cc>=8.0, opencl:type=cpu\n",
    )
    rc, found = findings(capsys, str(src))
    assert rc == 0
    assert [(f["severity"], f["tag"], f["line"]) for f in found] == [
        ("info", "requires-hwspec-admits", 3),
        ("info", "needs-hw-without-skippable", 5),
    ]
    assert found[0]["message"] == (
        "on a host that XS-Requires-Hwspec admits: cuda:cc>=8.0 runs t, u; "
        "opencl:type=cpu runs t, u"  # commas: every host has both
    )


def test_nothing_to_say_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_source(tmp_path, "Tests: t\nRestrictions: needs-root\n")
    assert lint(capsys, str(src)) == (0, "", "")


def test_plain_x_field_is_advised_to_become_xs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, None, extra="X-Requires-Hwspec: rocm:gfx90a\n")
    rc, out, _ = lint(capsys, str(src))
    assert rc == 0
    path = src / "debian" / "control"
    assert f"{path}:3:1: warning: X-Requires-Hwspec reaches neither the .dsc nor" in out
    assert "    fix: XS-Requires-Hwspec\n" in out


def test_invalid_requires_hwspec_item_has_its_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, None, extra="XS-Requires-Hwspec: cuda,\n rocm:gfx90a|syc\n")
    rc, found = findings(capsys, str(src))
    assert rc == 1
    (error,) = found
    assert error["tag"] == "invalid-requires-hwspec"
    assert (error["line"], error["column"]) == (4, 14)  # the "syc" after the '|'
    assert error["fix"] == "rocm:gfx90a|sycl"


def test_unknown_key_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, "Tests: t\nRestrictions: skippable needs-hw:cuda:nvlink>=4\n")
    rc, found = findings(capsys, str(src))
    assert rc == 0
    assert [(f["tag"], f["column"], f["fix"]) for f in found] == [
        ("needs-hw-without-requires-hwspec", None, "XS-Requires-Hwspec: cuda:nvlink>=4"),
        ("needs-hw-unknown-key", 39, None),
    ]
    assert "'nvlink'" in str(found[1]["message"])


def test_needs_hw_in_features_or_classes_and_unknown_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: a\nFeatures: needs-hw:cuda\n\n"
        "Tests: b\nClasses: desktop needs-hw:rocm\n\n"
        "Tests: c\nRestriction: needs-hw:cuda\n",
    )
    rc, found = findings(capsys, str(src))
    assert rc == 0
    assert [(f["tag"], f["line"], f["fix"]) for f in found] == [
        ("needs-hw-in-features", 2, "Restrictions: needs-hw:cuda"),
        ("needs-hw-in-classes", 5, "Restrictions: needs-hw:rocm"),
        ("unknown-test-field", 8, "Restrictions:"),
    ]


def test_unknown_restriction_and_lost_stanzas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, "Tests: a\nRestrictions: needs-rot\n\n   oops\n\nTests: b\n")
    rc, found = findings(capsys, str(src))
    assert rc == 1
    assert [(f["severity"], f["tag"], f["line"], f["fix"]) for f in found] == [
        ("warning", "unknown-restriction", 2, "needs-root"),
        ("error", "control-stanza-without-fields", 4, found[1]["fix"]),
    ]


def test_malformed_control_is_an_error_with_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, "Depends: foo\n\nTests: a\n")
    rc, out, _ = lint(capsys, str(src))
    assert rc == 1
    path = src / "debian" / "tests" / "control"
    assert (
        f'{path}:1: error: missing "Tests" or "Test-Command" field [malformed-control-file]' in out
    )


def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = lint(capsys, str(tmp_path / "missing"))
    assert rc == 2
    assert "not a directory" in err
    assert "Traceback" not in err
    rc, _, err = lint(capsys, str(tmp_path))
    assert rc == 2
    assert "no debian/control" in err


def test_several_sources_and_the_worst_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = make_source(tmp_path, "Tests: t\nRestrictions: needs-hw:gpu:vendor=nvidia:memm>=1G\n")
    rc, out, err = lint(capsys, str(EXAMPLE), str(bad), str(tmp_path / "none"))
    assert rc == 2
    assert "fix: needs-hw:gpu:vendor=nvidia:mem>=1G" in out
    assert "none: not a directory" in err


def test_the_example_package_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    rc, found = findings(capsys, str(EXAMPLE))
    assert rc == 0
    assert {f["severity"] for f in found} == {"info"}


def test_default_srcdir_and_real_command(tmp_path: Path) -> None:
    src = make_source(tmp_path, "Tests: t\nRestrictions: needs-hw:cdua\n")
    proc = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "lint"],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "\ndebian/tests/control:2:24: error: invalid hardware spec" in proc.stdout
    assert "fix: needs-hw:cuda" in proc.stdout


@pytest.mark.skipif(
    not (shutil.which("lintian") and shutil.which("dpkg-source")), reason="needs lintian"
)
def test_example_lintian_overrides_cover_needs_hw(tmp_path: Path) -> None:
    """Bookworm's lintian sees the needs-hw: tags and the example's overrides silence them."""
    shutil.copytree(EXAMPLE, tmp_path / "hwdemo")
    subprocess.run(["dpkg-source", "-b", "hwdemo"], cwd=tmp_path, check=True, capture_output=True)
    proc = subprocess.run(
        ["lintian", "--pedantic", "--show-overrides", "hwdemo_1.0.dsc"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    tags = [line for line in proc.stdout.splitlines() if not line.startswith("N:")]
    assert "O: hwdemo source: unknown-field Requires-Hwspec" in tags
    assert (
        "O: hwdemo source: unknown-runtime-tests-restriction needs-hw:opencl:type=cpu "
        "[debian/tests/control:6]" in tags
    )
    assert not [t for t in tags if t[:2] in ("E:", "W:")], tags


# -- docs/lint.md stays true -----------------------------------------------------

DOC = ROOT / "docs" / "lint.md"


def test_doc_example_is_what_lint_prints(tmp_path: Path) -> None:
    text = DOC.read_text()
    (control,) = re.findall(r"```control\n(.*?)```", text, re.S)
    console = re.findall(r"```console\n(.*?)```", text, re.S)[0].splitlines()
    assert console[0] == "$ autopkgtest-hw lint"
    src = make_source(tmp_path, control)
    # The doc's debian/control has X-Requires-Hwspec on line 3.
    (src / "debian" / "control").write_text(
        "Source: gpu-demo\nMaintainer: A <a@example.org>\nX-Requires-Hwspec: cuda:cc>=8.0\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "lint"],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.splitlines() == console[1:]
    assert proc.returncode == 1


def test_doc_lintian_overrides_are_the_examples() -> None:
    text = DOC.read_text()
    overrides = (EXAMPLE / "debian" / "source" / "lintian-overrides").read_text()
    assert f"```\n{overrides}```" in text
