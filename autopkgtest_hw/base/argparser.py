"""The argument parser both commands use: usage errors in autopkgtest's style, exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit


class Parser(argparse.ArgumentParser):
    """``prog: error: message`` after the usage line, and :attr:`Exit.USAGE`."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        log.error(message)
        raise SystemExit(Exit.USAGE)


def add_inner_arguments(
    parser: argparse.ArgumentParser,
    inner_help: str = "the inner virt server: unshare, podman...",
) -> None:
    """INNER and everything after it: the wrapped virt server's command line."""
    parser.add_argument("inner", metavar="INNER", help=inner_help)
    parser.add_argument(
        "inner_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="the inner server's own options and arguments",
    )


def add_gpu_option(parser: argparse._ActionsContainer, help: str) -> None:
    """--gpu SEL, repeatable: the devices to pass (a command's own help says which)."""
    parser.add_argument("--gpu", action="append", default=[], metavar="SEL", help=help)
