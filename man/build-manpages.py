#!/usr/bin/python3
"""Generate the man pages of the installed commands from their argparse parsers.

The one source of truth is each command's ``build_parser()``: Debian's
argparse-manpage (python3-argparse-manpage, ``build_manpages.manpage``) turns
it into roff, sub-commands included.  This script only adds what that
version (1.2.2 in bookworm) cannot take from the parser: the NAME line, the
title line with version and date, the parser's epilog (examples, exit
status), SEE ALSO, and escaping of text lines that roff would read as
requests (a line that starts with ' or .).

Usage: man/build-manpages.py OUTDIR   (run with the package on sys.path)
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import sys
from pathlib import Path

from build_manpages.manpage import Manpage

#: (command, module with build_parser(), NAME line's description, SEE ALSO)
PAGES = [
    (
        "autopkgtest-hw",
        "autopkgtest_hw.cli",
        "hardware-aware autopkgtest: detect, match, lint, plan and run needs-hw: tests;"
        " build with sbuild, porterbox shells and device status",
        ["autopkgtest-virt-hwgpu(1)", "autopkgtest(1)", "sbuild(1)"],
    ),
    (
        "autopkgtest-virt-hwgpu",
        "autopkgtest_hw.virt.server",
        "autopkgtest virt server that passes GPUs into another virt server's testbed",
        ["autopkgtest-hw(1)", "autopkgtest(1)", "autopkgtest-virt-null(1)"],
    ),
]

DOCS = "/usr/share/doc/autopkgtest-hw/"
#: The requests argparse-manpage 1.2.2 writes; any other line that starts with
#: "." or "'" is text and gets a "\&" in front.
KNOWN_REQUESTS = re.compile(r"^\.(TH|SH|SS|TP|PP|B|BR|br|nf|fi)( |$)")


def _date() -> str:
    """The build date: SOURCE_DATE_EPOCH (from debian/changelog) keeps builds reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch
        else datetime.datetime.now(datetime.UTC)
    )
    return when.strftime("%Y-%m-%d")


def _text(line: str) -> str:
    """One line of plain text as roff: backslashes and minus signs escaped."""
    return _escape(line.replace("\\", "\\e").replace("-", "\\-"))


def _escape(line: str) -> str:
    if line.startswith("'") or (line.startswith(".") and not KNOWN_REQUESTS.match(line)):
        return "\\&" + line
    return line


def _reflow(text: str) -> str:
    """Join hand-wrapped lines: roff fills paragraphs; indented lines stay as they are."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", text.strip("\n")):
        lines = para.splitlines()
        if any(line[:1].isspace() for line in lines):
            paragraphs.append(para)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _reflow_parsers(parser: argparse.ArgumentParser) -> None:
    """Reflow the description of a parser and of its sub-commands' parsers."""
    if parser.description:
        parser.description = _reflow(parser.description)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _reflow_parsers(sub)


def render(prog: str, module_name: str, whatis: str, see_also: list[str], version: str) -> str:
    """The roff text of one man page."""
    parser: argparse.ArgumentParser = importlib.import_module(module_name).build_parser()
    if parser.prog != prog:
        raise SystemExit(f"build-manpages: {module_name} builds a parser for {parser.prog!r}")
    _reflow_parsers(parser)
    parser.man_short_description = whatis  # type: ignore[attr-defined]
    parser._manpage = []  # type: ignore[attr-defined]
    lines = str(Manpage(parser)).splitlines()
    title = f'.TH {prog.upper()} 1 "{_date()}" "autopkgtest-hw {version}" "User Commands"'
    body = [_escape(line) for line in lines[1:]]
    if parser.epilog:  # examples and exit status, laid out by hand: keep the lines
        body += [".SH NOTES", ".nf", *(_text(line) for line in parser.epilog.splitlines()), ".fi"]
    body.append(".SH SEE ALSO")
    for i, ref in enumerate(see_also):
        name, section = ref.rstrip(")").split("(")
        body.append(f".BR {name} ({section})" + ("," if i < len(see_also) - 1 else ""))
    body += [".PP", f"The documentation in {_text(DOCS)}."]
    return "\n".join([title, *body]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path, help="where to write PROG.1 files")
    args = ap.parse_args(argv)
    # argparse wraps text to the terminal's width; roff fills lines itself, so
    # no wrapping here (and the same page whatever terminal runs the build).
    os.environ["COLUMNS"] = "1000"
    version = importlib.import_module("autopkgtest_hw").__version__
    args.outdir.mkdir(parents=True, exist_ok=True)
    for prog, module_name, whatis, see_also in PAGES:
        page = args.outdir / f"{prog}.1"
        page.write_text(render(prog, module_name, whatis, see_also, version), encoding="utf-8")
        print(f"build-manpages: wrote {page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
