"""The transcripts of docs/lint.md (after the first, which test_lint.py runs in its own tree)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from ..conftest import ROOT

DOC = ROOT / "docs" / "lint.md"


def transcripts() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S)[1:]:
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            else:
                out[-1][1].append(line)
    return out


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
