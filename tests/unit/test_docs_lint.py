"""The transcripts of docs/lint.md (after the first, which test_lint.py runs in its own tree)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from ..conftest import ROOT, console_transcripts

DOC = ROOT / "docs" / "lint.md"


def transcripts() -> list[tuple[str, list[str]]]:
    return console_transcripts(DOC, skip_blocks=1)


def test_there_are_transcripts() -> None:
    assert len(transcripts()) >= 2


@pytest.mark.parametrize(("command", "expected"), transcripts())
def test_transcript(command: str, expected: list[str]) -> None:
    argv = shlex.split(command)
    assert argv[:2] == ["autopkgtest-hw", "lint"]
    done = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.stdout.splitlines() == expected
    assert done.returncode == (1 if any(": error: " in line for line in expected) else 0)
