"""The ``autopkgtest-hw`` command: one sub-command per module in ``commands/``."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from autopkgtest_hw import __version__
from autopkgtest_hw.base import log
from autopkgtest_hw.base.argparser import Parser
from autopkgtest_hw.base.errors import Exit, HwError

#: Sub-command name -> module under autopkgtest_hw.commands.  Each module has
#: ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; an
#: HwError out of ``run`` is printed here, and only here, and exits with its own
#: ``exit_status``, else the module's ``ERROR_EXIT`` (default: 2, bad usage or
#: unreadable input).
COMMANDS = {
    "detect": "detect",
    "match": "match",
    "lint": "lint",
    "plan": "plan",
    "run": "run",
    "require": "require",
    "build": "build",
    "shell": "shell",
    "attach": "attach",
    "copy": "copy",
    "extend": "extend",
    "status": "status",
    "profile": "profile",
    "route": "route",
    "enqueue": "enqueue",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` just that sub-command's (start-up imports one module)."""
    parser = Parser(
        prog="autopkgtest-hw",
        description="Hardware-aware autopkgtest: detect devices, check needs-hw: specs, "
        "lint packages and run autopkgtest with needs-hw: restrictions understood.",
    )
    parser.add_argument("-d", "--debug", action="store_true", help="print debug messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS if only is None else (only,):
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.commands.{COMMANDS[name]}":
                raise
            continue  # a sub-command this build does not ship
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        p.add_argument(
            "-d",
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print debug messages",
        )
        module.add_arguments(p)
    return parser


def _command_word(argv: list[str]) -> int | None:
    """The index of the sub-command's name in ``argv`` (the global options take no values)."""
    for i, word in enumerate(argv):
        if word.startswith("-"):
            continue
        return i if word in COMMANDS else None
    return None


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split off the words after a sub-command whose module sets PASSTHROUGH (run).

    Those go to the sub-command verbatim (autopkgtest's -d, -o, ... included).
    """
    i = _command_word(argv)
    if i is not None and argv[i + 1 :] not in (["-h"], ["--help"]):
        try:
            if getattr(_load(argv[i]), "PASSTHROUGH", False):
                return argv[: i + 1], argv[i + 1 :]
        except ModuleNotFoundError:
            pass
    return argv, None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log.setup("autopkgtest-hw")  # usage errors already in autopkgtest's style
    # Only the named sub-command's module is imported (and its parser built):
    # the others pull in python-debian, allocation, ... that this run never uses.
    # Without a known sub-command (help, a typo) every one is, for the listing.
    i = _command_word(argv)
    parser = build_parser(None if i is None else argv[i])
    argv, passthrough = _split_passthrough(argv)
    args = parser.parse_args(argv)
    if passthrough is not None:
        args.passthrough = passthrough
    log.setup("autopkgtest-hw", getattr(args, "debug", False))
    if not args.command:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    module = _load(args.command)
    try:
        return int(module.run(args))
    except HwError as exc:
        log.error(str(exc))
        if exc.exit_status is not None:
            return exc.exit_status
        return int(getattr(module, "ERROR_EXIT", Exit.USAGE))
    except KeyboardInterrupt:
        log.error("interrupted")
        return Exit.INTERRUPTED
    except BrokenPipeError:
        return Exit.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
