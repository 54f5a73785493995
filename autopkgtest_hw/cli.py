"""The ``autopkgtest-hw`` command: one sub-command per module in ``commands/``."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from . import __version__, log

#: Sub-command name -> module under autopkgtest_hw.commands.  Each module has
#: ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "detect": "detect",
    "match": "match",
    "lint": "lint",
    "plan": "plan",
    "run": "run",
    "require": "require",
    "profile": "profile",
    "route": "route",
    "enqueue": "enqueue",
}

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        log.error(message)
        raise SystemExit(EXIT_USAGE)


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autopkgtest-hw",
        description="Hardware-aware autopkgtest: detect devices, check needs-hw: specs, "
        "lint packages and run autopkgtest with needs-hw: restrictions understood.",
    )
    parser.add_argument("-d", "--debug", action="store_true", help="print debug messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
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


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split off the words after a sub-command whose module sets PASSTHROUGH (run).

    Those go to the sub-command verbatim (autopkgtest's -d, -o, ... included).
    """
    for i, word in enumerate(argv):
        if word.startswith("-"):
            continue  # the global options take no values
        tail = argv[i + 1 :]
        if word in COMMANDS and tail not in (["-h"], ["--help"]):
            try:
                if getattr(_load(word), "PASSTHROUGH", False):
                    return argv[: i + 1], tail
            except ModuleNotFoundError:
                pass
        break
    return argv, None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    argv, passthrough = _split_passthrough(argv)
    args = parser.parse_args(argv)
    if passthrough is not None:
        args.passthrough = passthrough
    log.setup("autopkgtest-hw", getattr(args, "debug", False))
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(_load(args.command).run(args))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
