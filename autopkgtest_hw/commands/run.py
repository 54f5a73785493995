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

When every test would be skipped whatever the testbed (the devices hwgpu
would pass into a null, unshare or podman testbed, from this host's
inventory or hwgpu's --inventory, fit no test), the tests are reported
skipped without opening the testbed; the log says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit, HwError, UsageError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.source.adt_compat import ENV_AUTOPKGTEST
from autopkgtest_hw.source.runner import run_autopkgtest
from autopkgtest_hw.source.skipfree import Expected

HELP = "run autopkgtest with needs-hw: restrictions checked against the testbed's hardware"

#: cli hands everything after the command name to ``args.passthrough`` verbatim.
PASSTHROUGH = True
#: cli exits with this on an error (UsageError, AdtCompatError): autopkgtest's code.
ERROR_EXIT = Exit.ADT_ERROR
_OWN_OPTIONS = ("--hw-autopkgtest", "--hw-open-testbed")
_FLAGS = ("--hw-open-testbed",)
_HWGPU = "autopkgtest-virt-hwgpu"
#: Inner servers whose testbed sees the host's devices as passed (not a guest's PCI bus).
_SKIP_FREE_INNERS = ("null", "unshare", "podman")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--hw-autopkgtest",
        metavar="PROGRAM",
        help=f"the autopkgtest program to run (default: ${ENV_AUTOPKGTEST}, else the one on PATH)",
    )
    parser.add_argument(
        "--hw-open-testbed",
        action="store_true",
        help="open the testbed even when every test would be skipped whatever it has"
        " (by default such a run reports the skips without starting the testbed)",
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
        if name in _FLAGS:
            if eq:
                raise UsageError(f"option {name} takes no value")
            value = "yes"
        elif not eq:
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
        if args.hw_open_testbed:
            argv = ["--hw-open-testbed", *argv]
    own, rest = split_own_options(argv)
    predictor = None if "--hw-open-testbed" in own else expect_testbed
    return run_autopkgtest(rest, own.get("--hw-autopkgtest"), predictor)  # AdtCompatError: 20


def expect_testbed(vserver_args: list[str]) -> Expected | str:
    """What an hwgpu testbed would advertise, without opening it; else why that is not known."""
    if not vserver_args or os.path.basename(vserver_args[0]) != _HWGPU:
        return "the virt server is not hwgpu (nobody says what the testbed has)"
    from autopkgtest_hw.virt.entry import build_parser

    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            opts = build_parser().parse_args(vserver_args[1:])
    except SystemExit:
        return "hwgpu refuses its options (it says why when it starts)"
    base = os.path.basename(opts.inner)
    kind = base.removeprefix("autopkgtest-virt-").split("+", 1)[0]
    if kind not in _SKIP_FREE_INNERS:
        return f"a {kind} testbed's devices are known only inside it"
    if not _found(opts.inner):
        return f"the inner server {opts.inner} is not found (hwgpu says so when it starts)"
    from autopkgtest_hw.locks import allocate
    from autopkgtest_hw.spec.inventory import Cpu, Inventory

    try:
        if opts.inventory is not None:
            host = Inventory.load(opts.inventory)
        else:
            from autopkgtest_hw.detect import detect_host

            host = detect_host(not opts.no_cache)[0]
        passed = allocate.select(host, opts.gpu)
    except HwError as exc:
        return f"hwgpu would fail to start: {exc}"
    most = Inventory(cpu=host.cpu, devices=tuple(passed))
    least = Inventory(cpu=Cpu())
    arch = _host_arch() if kind == "null" else None
    source = f"inventory {opts.inventory}" if opts.inventory else "this host's inventory"
    why = f"hwgpu {kind}: {len(passed)} device(s) of {source} would be passed"
    log.debug(f"skip without testbed: {safe(why)}")
    return Expected(tuple(most.to_capabilities()), tuple(least.to_capabilities()), arch, why)


def _found(inner: str) -> bool:
    """Whether hwgpu finds its inner server (as autopkgtest finds virt servers)."""
    if "/" in inner:
        return os.access(inner, os.X_OK)
    name = inner if inner.startswith("autopkgtest-virt-") else f"autopkgtest-virt-{inner}"
    return shutil.which(name) is not None


def _host_arch() -> str | None:
    """This host's dpkg architecture (a null testbed's), as autopkgtest asks the testbed."""
    try:
        proc = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    arch = proc.stdout.strip()
    return arch if proc.returncode == 0 and arch else None
