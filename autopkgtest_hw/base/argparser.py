"""The argument parser both commands use: usage errors in autopkgtest's style, exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

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


def add_gpu_option(parser: argparse._ActionsContainer, help: str, count: bool = False) -> None:
    """--gpu SEL, repeatable: the devices to pass (a command's own help says which).

    ``count``: --count N too, how many of them.
    """
    parser.add_argument("--gpu", action="append", default=[], metavar="SEL", help=help)
    if count:
        add_count_option(parser)


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


#: The options several programs take, each defined once: flag -> add_argument's keywords.
SHARED_OPTIONS: dict[str, dict[str, Any]] = {
    "--count": {
        "type": positive_int,
        "metavar": "N",
        "help": "pass N of the selected devices, whichever are free first",
    },
    "--inventory": {
        "metavar": "FILE",
        "help": "read the host's devices from FILE (autopkgtest-hw detect --json) instead of"
        " detecting them",
    },
    "--no-cache": {
        "action": "store_true",
        "help": "detect the host afresh, not from the host inventory cache (which is then"
        " rewritten)",
    },
    "--lock-dir": {
        "metavar": "DIR",
        "help": "directory of the per-device lock files (default: %(default)s)",
    },
    "--lock-timeout": {
        "type": seconds,
        "default": 0.0,
        "metavar": "SECONDS",
        "help": "wait this long for busy devices, in the queue (default: 0, fail at once)",
    },
}


def add_shared_options(parser: argparse._ActionsContainer, *flags: str, **defaults: object) -> None:
    """Add the named SHARED_OPTIONS; ``defaults`` by dest (``lock_dir=``: base imports no locks)."""
    for flag in flags:
        spec = dict(SHARED_OPTIONS[flag])
        dest = flag.lstrip("-").replace("-", "_")
        if dest in defaults:
            spec["default"] = defaults[dest]
        parser.add_argument(flag, **spec)


def add_count_option(parser: argparse._ActionsContainer) -> None:
    """--count N: how many of the selected devices to pass."""
    add_shared_options(parser, "--count")


def add_inventory_options(parser: argparse._ActionsContainer) -> None:
    """--inventory FILE and --no-cache: where the host's devices come from."""
    add_shared_options(parser, "--inventory", "--no-cache")
