"""Check the hardware requirements of source packages.

Reports every invalid needs-hw: restriction in debian/tests/control and every
invalid X-/XS-Requires-Hwspec spec in debian/control, as FILE:LINE:COLUMN with
the fix where one is clear, plus warnings about what autopkgtest would
silently do differently than the maintainer meant.

Exit status: 0 when there is no error (warnings and hints allowed), 1 when
there is an error, 2 when a source directory cannot be read.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import escape
from autopkgtest_hw.commands._common import add_json_option
from autopkgtest_hw.source.control import ControlReadError
from autopkgtest_hw.source.linter import SEVERITIES, Finding, lint_source

HELP = "check the needs-hw: restrictions and XS-Requires-Hwspec of source packages"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "srcdirs",
        nargs="*",
        default=["."],
        metavar="SRCDIR",
        help="unpacked source package (default: the current directory)",
    )
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    findings: list[Finding] = []
    unreadable = False
    for srcdir in args.srcdirs:
        try:
            findings += lint_source(srcdir)
        except ControlReadError as exc:
            log.error(str(exc))
            unreadable = True
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    if args.json:
        print(json.dumps({"findings": [asdict(f) for f in findings], **counts}, indent=2))
    else:
        for f in findings:
            print(escape(f.render(), keep_newlines=True))
        if findings:
            print(_summary(counts))
    if unreadable:
        return Exit.USAGE
    return Exit.FAILED if counts["error"] else Exit.OK


def _summary(counts: dict[str, int]) -> str:
    words = {"error": "error", "warning": "warning", "info": "hint"}
    parts = [f"{n} {words[s]}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    return ", ".join(parts)
