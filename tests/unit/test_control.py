"""Reading control files: the same tokens as autopkgtest, each at its file line and column."""

from __future__ import annotations

import string
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autopkgtest_hw.source.control import (
    ControlError,
    ControlReadError,
    read_paragraphs,
    read_source_control,
    read_source_package,
    read_tests_control,
)

from .fuzzing import fuzz_settings

ROOT = Path(__file__).resolve().parents[2]
AUTOPKGTEST_LIB = Path("/usr/share/autopkgtest/lib")


def write(tmp_path: Path, text: str, name: str = "control") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def restrictions(control: Any) -> dict[str, list[tuple[str, int, int]]]:
    return {
        name: [(t.text, t.line, t.column) for t in stanza.restrictions]
        for name, stanza in control.tests()
    }


def test_comments_everywhere_are_cut_like_autopkgtest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# leading comment\n"  # 1
        "Tests: smoke # trailing comment\n"  # 2
        "Restrictions: needs-hw:cuda:cc>=8.0,\n"  # 3
        "# column-1 comment inside the folded field\n"  # 4
        "    # indented comment line, dropped entirely\n"  # 5
        "  needs-root # trailing, cut\n"  # 6
        "Depends: python3 #, not-a-dependency\n"  # 7
        "\n"
        "Tests: other\n",  # 9
    )
    control = read_tests_control(path)
    assert restrictions(control) == {
        "smoke": [("needs-hw:cuda:cc>=8.0", 3, 15), ("needs-root", 6, 3)],
        "other": [],
    }
    smoke = control.stanzas[0]
    assert smoke.line == 2
    assert [t.text for t in smoke.depends] == ["python3"]
    assert [t.text for t in smoke.needs_hw] == ["needs-hw:cuda:cc>=8.0"]
    assert control.stanzas[1].line == 9


def test_restrictions_split_on_commas_and_whitespace(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Tests: a b,c\n"
        "Restrictions: needs-hw:cuda,needs-hw:rocm:gfx90a  skippable ,\tallow-stderr\n",
    )
    control = read_tests_control(path)
    names = [name for name, _ in control.tests()]
    assert names == ["a", "b", "c"]
    assert restrictions(control)["b"] == [
        ("needs-hw:cuda", 2, 15),
        ("needs-hw:rocm:gfx90a", 2, 29),
        ("skippable", 2, 51),
        ("allow-stderr", 2, 63),
    ]
    line = Path(path).read_text().splitlines()[1]
    for text, _, column in restrictions(control)["a"]:
        assert line[column - 1 :].startswith(text)


def test_test_command_stanzas_are_named_like_autopkgtest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Test-Command: true\n"
        "\n"
        "Test-Command: ./check\n"
        "Features: test-name=check\n"
        "Restrictions: needs-hw:opencl:type=cpu\n"
        "\n"
        "test-command: false\n",
    )
    control = read_tests_control(path)
    assert [name for name, _ in control.tests()] == ["command1", "check", "command2"]
    assert control.stanzas[1].command == "./check"
    assert [(t.text, t.line) for t in control.stanzas[1].needs_hw] == [
        ("needs-hw:opencl:type=cpu", 5)
    ]
    assert [t.text for t in control.stanzas[0].depends] == ["@"]


def test_features_and_classes_keep_their_positions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Tests: t\nFeatures: needs-hw:cuda\nClasses: graphics-driver,\n needs-hw:rocm\n",
    )
    (stanza,) = read_tests_control(path).stanzas
    assert [(t.text, t.line, t.column) for t in stanza.features] == [("needs-hw:cuda", 2, 11)]
    assert [(t.text, t.line, t.column) for t in stanza.classes] == [
        ("graphics-driver", 3, 10),
        ("needs-hw:rocm", 4, 2),
    ]
    assert stanza.needs_hw == ()


def test_unknown_fields_and_ignored_lines_are_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, "Tests: t\nRestriction: needs-hw:cuda\nthis is no field\n")
    control = read_tests_control(path)
    (stanza,) = control.stanzas
    assert [(f.name, f.line) for f in stanza.unknown_fields] == [("Restriction", 2)]
    assert stanza.restrictions == ()
    assert control.ignored_lines == (3,)


def test_a_stanza_without_fields_ends_the_file_as_in_autopkgtest(tmp_path: Path) -> None:
    # python-debian stops at the first stanza without fields; autopkgtest
    # never sees the tests after it.
    path = write(tmp_path, "Tests: a\n\n  stray continuation\n\nTests: b\n")
    control = read_tests_control(path)
    assert [name for name, _ in control.tests()] == ["a"]
    assert control.stopped_at == 3


def test_crlf_and_tabs(tmp_path: Path) -> None:
    path = tmp_path / "control"
    path.write_bytes(b"Tests: t\r\nRestrictions:\r\n\tneeds-hw:cuda\r\n")
    (stanza,) = read_tests_control(str(path)).stanzas
    assert [(t.text, t.line, t.column) for t in stanza.restrictions] == [("needs-hw:cuda", 3, 2)]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("Restrictions: needs-root\n", 1, 'missing "Tests" or "Test-Command"'),
        ("Tests: a\nTest-Command: true\n", 1, 'only one of "Tests" or "Test-Command"'),
        ("\n\nTests:\nDepends: x\n", 3, '"Tests" field is empty'),
        ("Test-Command: true\nFeatures: test-name\n", 1, "test-name feature with no argument"),
        ("Tests: a\nFeatures: test-name=b\n", 1, "test-name feature incompatible with Tests"),
    ],
)
def test_malformed_stanzas_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ControlError) as err:
        read_tests_control(path)
    assert err.value.line == line
    assert message in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "control"
    path.write_bytes(b"Tests: a\nRestrictions: needs-hw:\xff\n")
    with pytest.raises(ControlError) as err:
        read_tests_control(str(path))
    assert err.value.line == 2
    assert "UTF-8" in str(err.value)


def test_missing_file_and_missing_source_dir(tmp_path: Path) -> None:
    with pytest.raises(ControlReadError):
        read_tests_control(str(tmp_path / "nope"))
    with pytest.raises(ControlReadError, match="not a source package"):
        read_source_package(str(tmp_path))
    with pytest.raises(ControlReadError, match="not a directory"):
        read_source_package(str(tmp_path / "nope"))


def test_source_stanza_hwspec_fields_with_positions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Source: demo\n"
        "# a comment\n"
        "XS-Requires-Hwspec: cuda:cc>=8.0 ,\n"
        "  rocm:gfx90a # the MI210 runners\n"
        "X-Requires-Hwspec: opencl\n"
        "\n"
        "Package: demo\n"
        "XB-Requires-Hwspec: cuda\n",
    )
    control = read_source_control(path)
    assert control.source == "demo"
    assert [f.name for f in control.hwspec_fields] == ["XS-Requires-Hwspec", "X-Requires-Hwspec"]
    assert [(t.text, t.line, t.column) for t in control.hwspecs] == [
        ("cuda:cc>=8.0", 3, 21),
        ("rocm:gfx90a", 4, 3),
        ("opencl", 5, 20),
    ]
    assert [(f.name, f.line) for f in control.misplaced_hwspec_fields] == [
        ("XB-Requires-Hwspec", 8)
    ]


def test_absent_hwspec_means_no_field(tmp_path: Path) -> None:
    control = read_source_control(write(tmp_path, "Source: demo\n\nPackage: demo\n"))
    assert control.hwspecs == ()
    with pytest.raises(ControlError, match="no source stanza"):
        read_source_control(write(tmp_path, "Package: demo\n", "c2"))


def test_example_package() -> None:
    pkg = read_source_package(str(ROOT / "examples" / "hwdemo"))
    assert pkg.control.source == "hwdemo"
    assert [t.text for t in pkg.control.hwspecs] == ["opencl:type=cpu|cuda"]
    assert pkg.tests is not None
    found = {name: [t.text for t in s.needs_hw] for name, s in pkg.tests.tests()}
    assert found == {
        "opencl-cpu": ["needs-hw:opencl:type=cpu"],
        "cuda-smoke": ["needs-hw:cuda:cc>=7.0"],
        "plain": [],
        "opencl-legacy": [],
    }


# -- the same reading as autopkgtest's own parser -----------------------------


def _autopkgtest_parse_rfc822() -> Any:
    if not (AUTOPKGTEST_LIB / "testdesc.py").exists():
        pytest.skip("autopkgtest is not installed")
    sys.path.insert(0, str(AUTOPKGTEST_LIB))
    try:
        import testdesc
    finally:
        sys.path.remove(str(AUTOPKGTEST_LIB))
    return testdesc.parse_rfc822


_LINE = st.one_of(
    st.sampled_from(
        [
            "Tests: a b",
            "Restrictions: needs-hw:cuda, needs-root",
            "restrictions:needs-hw:rocm",
            "Depends: python3 , @",
            "Features: test-name=x",
            "  needs-hw:opencl:type=cpu,",
            "\tskippable",
            " .",
            "",
            "   ",
            "# comment",
            "  # indented comment",
            "Tests: t # trailing",
            "not a field",
            "Classes: x,y",
            "Restrictions : spaced-colon",
            # Characters str.splitlines() breaks at but text-mode reading does not,
            # a lone CR (text mode does break there), and blank-looking lines that
            # python-debian does not take as blank (issue 9, point 7).
            "Restrictions: needs-root\u2028Restrictions: needs-hw:cuda",
            "Tests: u\x85Restrictions: needs-hw:cuda",
            "Restrictions: x\x0cneeds-hw:cuda",
            "Tests: c\rRestrictions: needs-hw:cuda",
            "\x0c",
            "\x0b",
            "\u2029",
            "\u00a0",
            " \u00a0",
            "-----BEGIN PGP SIGNED MESSAGE-----",
        ]
    ),
    st.text(alphabet="abc:#, \t-=\u2028\x0c\x85\r", max_size=12),
)


@fuzz_settings
@given(st.lists(_LINE, max_size=12))
def test_fuzz_fields_and_tokens_equal_autopkgtest(lines: list[str]) -> None:
    parse_rfc822 = _autopkgtest_parse_rfc822()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "control"
        text = "\n".join(lines) + "\n"
        path.write_bytes(text.encode("utf-8"))
        try:
            theirs = list(parse_rfc822(str(path)))
        except ValueError:  # python-debian refuses it, and autopkgtest stops with a traceback
            with pytest.raises(ControlError):
                read_paragraphs(str(path))
            return
        try:
            ours = read_paragraphs(str(path)).paragraphs
        except ControlError as exc:
            # A difference we report instead of reading past it: a repeated field
            # (autopkgtest keeps only the last) or an OpenPGP armour line.
            assert "given twice" in exc.message or "armour" in exc.message
            return
    file_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    assert len(ours) == len(theirs)
    for para, record in zip(ours, theirs, strict=True):
        assert {string.capwords(f.name): f.value for f in para.fields} == record
        for f in para.fields:
            expected = record[string.capwords(f.name)].replace(",", " ").split()
            assert [t.text for t in f.tokens()] == expected
            for t in f.tokens():  # each token stands where we say it does
                assert file_lines[t.line - 1][t.column - 1 :].startswith(t.text)
