"""Every command shown in the docs and man pages quotes its specs.

``autopkgtest-hw match cuda:cc>=8.0`` typed into a shell runs ``match cuda:cc``
with its output in a file called ``=8.0``; ``a|b`` is a pipe and ``*`` a
glob.  So wherever we show a command, a spec with ``> < | *`` is quoted.
"""

from __future__ import annotations

import argparse
import re

import pytest

from autopkgtest_hw import cli
from autopkgtest_hw.virt import server as virtserver

from ..conftest import ROOT

#: A shell word holding a spec operator the shell would act on: cc>=8.0, a|b, model=*h100*.
_UNQUOTED = re.compile(r"[\w.)](>=|<=|>|<)[\w.]|[\w.]\|[\w.]|=\S*\*")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_COMMAND = re.compile(
    r"^\s*(\$ )?(sudo )?(autopkgtest|autopkgtest-hw|autopkgtest-virt-hwgpu|hwgpu)\b"
)


def unquoted(line: str) -> bool:
    return bool(_UNQUOTED.search(_QUOTED.sub("''", line)))


def doc_commands() -> list[tuple[str, int, str]]:
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_block = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("```"):
                in_block = not in_block
                continue
            if in_block and _COMMAND.match(line):
                out.append((path.name, number, line))
    return out


def test_the_check_itself() -> None:
    assert unquoted("$ autopkgtest-hw match cuda:cc>=8.0")
    assert unquoted("autopkgtest-hw match cuda|rocm")
    assert unquoted("autopkgtest-hw match gpu:model=*h100*")
    assert not unquoted("$ autopkgtest-hw match 'cuda:cc>=8.0' \"rocm|cuda\"")
    assert not unquoted("autopkgtest-hw detect --json > host.json")
    assert not unquoted("autopkgtest pkg.dsc -- hwgpu --gpu 0 podman debian:sid")
    assert unquoted("autopkgtest-hw match gpu:model=h100*")
    # a shell glob in a path is meant for the shell
    assert not unquoted("autopkgtest-hw route --sources /var/lib/apt/lists/*_Sources")


@pytest.mark.parametrize(("doc", "number", "line"), doc_commands())
def test_doc_commands_quote_their_specs(doc: str, number: int, line: str) -> None:
    assert not unquoted(line), f"{doc}:{number}: quote the spec: {line}"


def parsers() -> list[argparse.ArgumentParser]:
    top = cli.build_parser()
    out = [top, virtserver.build_parser()]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += list(action.choices.values())
    return out


def test_man_pages_quote_their_specs() -> None:
    """The man pages are made of these parsers' help and epilogs (man/build-manpages.py)."""
    checked = 0
    for parser in parsers():
        for line in parser.format_help().splitlines():
            checked += 1
            assert not unquoted(line), f"{parser.prog}: quote the spec: {line.strip()}"
    assert checked > 100
