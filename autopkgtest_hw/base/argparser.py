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


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return int(_number(text, int, "a number", 1, "must be at least 1"))


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    return _number(text, float, "a number of seconds", 0, "must not be negative")


def _number(text: str, kind: type[float], what: str, least: float, too_small: str) -> float:
    try:
        n = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(too_small)
    return n


def add_count_option(parser: argparse._ActionsContainer) -> None:
    """--count N: how many of the selected devices to pass."""
    parser.add_argument(
        "--count",
        type=positive_int,
        metavar="N",
        help="pass N of the selected devices, whichever are free first",
    )


def add_inventory_options(parser: argparse._ActionsContainer) -> None:
    """--inventory FILE and --no-cache: where the host's devices come from."""
    parser.add_argument(
        "--inventory",
        metavar="FILE",
        help="read the host's devices from FILE (autopkgtest-hw detect --json) instead of"
        " detecting them",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="detect the host afresh, not from the host inventory cache (which is then rewritten)",
    )


def add_lock_dir_option(parser: argparse._ActionsContainer, default: str) -> None:
    """--lock-dir DIR (``default``: the locks' own default, which base cannot import)."""
    parser.add_argument(
        "--lock-dir",
        default=default,
        metavar="DIR",
        help="directory of the per-device lock files (default: %(default)s)",
    )


def add_lock_timeout_option(parser: argparse._ActionsContainer) -> None:
    """--lock-timeout SECONDS: how long to wait, in the queue, for busy devices."""
    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for busy devices, in the queue (default: 0, fail at once)",
    )
