#!/usr/bin/python3
"""Generate the man pages of the installed commands from their argparse parsers.

The one source of truth is each command's ``build_parser()``: Debian's
argparse-manpage (python3-argparse-manpage, ``build_manpages.manpage``) turns
it into roff.  ``autopkgtest-hw`` gets a page that lists its sub-commands,
and each sub-command a page of its own (``autopkgtest-hw-build(1)``, as git
does), from the sub-command's parser.  This script only adds what that
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
from typing import Any

from build_manpages.manpage import Manpage

#: (command, module with build_parser(), NAME line's description, SEE ALSO); the
#: main page's SEE ALSO gets every sub-command's page in front.
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

#: Pages a sub-command's page refers to, besides autopkgtest-hw(1).
SUB_SEE_ALSO = {
    "run": ["autopkgtest(1)"],
    "build": ["sbuild(1)"],
    "shell": ["autopkgtest-hw-status(1)"],
    "status": ["autopkgtest-hw-shell(1)"],
    "route": ["autopkgtest-hw-enqueue(1)", "autopkgtest-hw-profile(1)"],
    "enqueue": ["autopkgtest-hw-route(1)", "autopkgtest-hw-profile(1)"],
    "profile": ["autopkgtest-hw-route(1)"],
}

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


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def sub_commands() -> list[str]:
    """The sub-commands of autopkgtest-hw this tree has, in the order of its help."""
    cli = importlib.import_module("autopkgtest_hw.cli")
    sub = _subparsers(cli.build_parser())
    return list(sub.choices) if sub is not None else []


def render(prog: str, module_name: str, whatis: str, see_also: list[str], version: str) -> str:
    """The roff text of one command's page (the main command's lists its sub-commands only)."""
    parser: argparse.ArgumentParser = importlib.import_module(module_name).build_parser()
    if parser.prog != prog:
        raise SystemExit(f"build-manpages: {module_name} builds a parser for {parser.prog!r}")
    sub = _subparsers(parser)
    if sub is not None:
        # Each sub-command has its own page: here only their names and one line each.
        sub.choices.clear()  # type: ignore[attr-defined]
        see_also = [f"{prog}-{a.dest}(1)" for a in sub._choices_actions] + see_also
    return _page(parser, prog, whatis, see_also, version)


def render_sub(name: str, version: str) -> str:
    """The roff text of ``autopkgtest-hw-NAME(1)``, from the sub-command's own parser."""
    cli = importlib.import_module("autopkgtest_hw.cli")
    sub = _subparsers(cli.build_parser(only=name))
    if sub is None or name not in sub.choices:
        raise SystemExit(f"build-manpages: autopkgtest-hw has no sub-command {name!r}")
    parser = sub.choices[name]
    whatis = next(a.help for a in sub._choices_actions if a.dest == name) or name
    see_also = ["autopkgtest-hw(1)", *SUB_SEE_ALSO.get(name, []), "autopkgtest-virt-hwgpu(1)"]
    return _page(parser, f"autopkgtest-hw-{name}", whatis, see_also, version)


def _page(
    parser: argparse.ArgumentParser, page: str, whatis: str, see_also: list[str], version: str
) -> str:
    _reflow_parsers(parser)
    parser._manpage = []  # type: ignore[attr-defined]
    lines = str(Manpage(parser)).splitlines()
    title = f'.TH {page.upper()} 1 "{_date()}" "autopkgtest-hw {version}" "User Commands"'
    if lines[1:2] != [".SH NAME"]:
        raise SystemExit(f"build-manpages: unexpected output of argparse-manpage for {page}")
    # NAME is what whatis and apropos read: the page's name, one word.
    body = [".SH NAME", f"{_text(page)} \\- {_text(whatis)}"]
    body += [_escape(line) for line in lines[3:]]
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
    pages = {prog: render(prog, *rest, version) for prog, *rest in PAGES}  # type: ignore[misc]
    for name in sub_commands():
        pages[f"autopkgtest-hw-{name}"] = render_sub(name, version)
    for prog, text in pages.items():
        page = args.outdir / f"{prog}.1"
        page.write_text(text, encoding="utf-8")
        print(f"build-manpages: wrote {page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
