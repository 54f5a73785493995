"""Run autopkgtest with needs-hw: restrictions understood.

  autopkgtest-hw run [--hw-autopkgtest=PROGRAM] [autopkgtest options] PACKAGE... -- VIRT-SERVER...

Everything after 'run' goes to autopkgtest untouched (its -d, -o,
--summary-file, ... included); only leading --hw-* options are this
command's own (so -d/--debug is autopkgtest's: 'autopkgtest-hw -d run ...'
shows this command's debug messages).  A test's needs-hw:<spec> restrictions are checked against
the hardware the testbed advertises (run it through 'hwgpu', e.g.
'-- hwgpu unshare --tarball T'); a test whose hardware is absent is skipped
with the reason before its dependencies are installed.  Output, summary
file and exit code are autopkgtest's own (0 passed, 2 some skipped, 4
failed, 8 no test ran, 12 bad package, 16 testbed failure, 20 other error
or an unusable autopkgtest).  See 'autopkgtest --help' for its options.
"""

from __future__ import annotations

import argparse

from autopkgtest_hw.base.errors import Exit, UsageError
from autopkgtest_hw.source.adt_compat import ENV_AUTOPKGTEST
from autopkgtest_hw.source.runner import run_autopkgtest

HELP = "run autopkgtest with needs-hw: restrictions checked against the testbed's hardware"

#: cli hands everything after the command name to ``args.passthrough`` verbatim.
PASSTHROUGH = True
#: cli exits with this on an error (UsageError, AdtCompatError): autopkgtest's code.
ERROR_EXIT = Exit.ADT_ERROR
_OWN_OPTIONS = ("--hw-autopkgtest",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--hw-autopkgtest",
        metavar="PROGRAM",
        help=f"the autopkgtest program to run (default: ${ENV_AUTOPKGTEST}, else the one on PATH)",
    )
    parser.add_argument(
        "autopkgtest_args",
        nargs=argparse.REMAINDER,
        metavar="AUTOPKGTEST-ARGS",
        help="autopkgtest's own arguments, passed on verbatim",
    )


def split_own_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Take the leading --hw-* options off ``argv``; the rest is autopkgtest's."""
    own: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--hw-"):
        name, eq, value = argv[i].partition("=")
        if name not in _OWN_OPTIONS:
            raise UsageError(
                f"unknown option {name} (this command's own: {', '.join(_OWN_OPTIONS)})"
            )
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"option {name} needs a value")
            i += 1
            value = argv[i]
        own[name] = value
        i += 1
    return own, argv[i:]


def run(args: argparse.Namespace) -> int:
    argv = getattr(args, "passthrough", None)
    if argv is None:  # parsed by argparse (no passthrough support in the caller)
        argv = list(args.autopkgtest_args)
        if args.hw_autopkgtest:
            argv = ["--hw-autopkgtest", args.hw_autopkgtest, *argv]
    own, rest = split_own_options(argv)
    return run_autopkgtest(rest, own.get("--hw-autopkgtest"))  # AdtCompatError: exit 20
