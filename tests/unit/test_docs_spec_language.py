"""The transcripts in docs/spec-language.md are what the command really prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

from ..conftest import ROOT, console_transcripts

DOC = ROOT / "docs" / "spec-language.md"


def transcripts() -> list[tuple[str, list[str]]]:
    return console_transcripts(DOC)


@pytest.mark.parametrize(("command", "expected"), transcripts())
def test_transcript(command, expected):
    argv = shlex.split(command)  # as a shell reads it: specs with > are quoted
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


def holds_where() -> list[tuple[str, str, bool]]:
    text = DOC.read_text()
    table = text.split("<!-- holds-where -->")[1].split("<!-- /holds-where -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1], {"yes": True, "no": False}[cells[2]]))
    return rows


@pytest.mark.parametrize(("spec", "inventory", "holds"), holds_where())
def test_what_holds_where(spec: str, inventory: str, holds: bool) -> None:
    machine = Inventory.load(str(ROOT / "docs" / "examples" / f"{inventory}.json"))
    assert match(parse(spec), machine).satisfied is holds


def test_the_table_covers_each_decision() -> None:
    specs = " ".join(s for s, _, _ in holds_where())
    for word in ("mem>=16G", "mem>=16Gi", "gpu:count", "generic", "opencl:type=cpu", "vulkan:"):
        assert word in specs
    assert len(holds_where()) >= 12
