"""The transcripts in docs/spec-language.md are what the command really prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from autopkgtest_hw.spec import parse

from ..conftest import ROOT

DOC = ROOT / "docs" / "spec-language.md"


def transcripts() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            else:
                out[-1][1].append(line)
    return out


@pytest.mark.parametrize(("command", "expected"), transcripts())
def test_transcript(command, expected):
    argv = shlex.split(command)  # the specs are quoted, as a shell needs them
    assert argv[0] == "autopkgtest-hw"
    done = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert (done.stdout + done.stderr).splitlines() == expected
    text = "\n".join(expected)
    if argv[1] == "match":
        assert done.returncode == (2 if "error:" in text else 1 if "not satisfied" in text else 0)
    else:  # lint and plan: 1 only for an error in the package
        assert done.returncode == (1 if ": error:" in text else 0)


def test_every_documented_token_parses():
    tokens = re.findall(r"`(needs-hw:[^`]+)`", DOC.read_text())
    assert len(tokens) >= 14
    for token in tokens:
        if "<spec>" in token:
            continue
        parse(token.replace("\\|", "|"))
