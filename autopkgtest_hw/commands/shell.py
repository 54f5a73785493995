"""Open a porterbox session: an interactive shell in a testbed with the host's GPUs passed in.

  autopkgtest-hw shell [--name NAME] [--for DURATION] [--detach] [--workdir DIR]
                       [--gpu SEL]... -- INNER [inner options...]

The devices are allocated and locked by autopkgtest-virt-hwgpu exactly as for
a CI run (the same locks, the same queue), and held for at most --for (and
the site's maximum, /etc/autopkgtest-hw/porterbox.conf, which also says who
may open sessions).  The session lives in a process of its own: Ctrl-]
detaches (as does a terminal that hangs up), 'autopkgtest-hw attach NAME'
comes back, 'autopkgtest-hw copy' copies files in and out, 'autopkgtest-hw
extend' adds time, 'autopkgtest-hw status' lists the sessions.  Ctrl-C and
Ctrl-\\ go to the shell's foreground job.  The session ends when the shell
exits, the time is up or on SIGTERM: everything it started is killed, the
testbed is torn down and the locks are released.  Exit status: the shell's
own; 0 after detaching; 124 when the time ran out; 128+N after signal N
(130: Ctrl-C while waiting for the devices); 1 when the testbed could not be
set up (devices busy past --lock-timeout, inner server failure); 2 for bad
usage; 3 when the site's policy refuses the session.
"""

from __future__ import annotations

import argparse
import os
import sys

from autopkgtest_hw.base import log
from autopkgtest_hw.base.argparser import add_gpu_option, add_inner_arguments
from autopkgtest_hw.base.duration import format_duration, parse_duration
from autopkgtest_hw.base.errors import Exit, UsageError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.commands._common import add_inventory_option, add_lock_options
from autopkgtest_hw.porterbox import client, config, wire
from autopkgtest_hw.porterbox.daemon import Spec
from autopkgtest_hw.porterbox.session import free_name, launch

HELP = "an interactive shell in a testbed with the GPUs passed in, for a limited time"

EXIT_USAGE = Exit.USAGE
#: Testbeds a --workdir can be bound into (the others: autopkgtest-hw copy).
WORKDIR_TESTBEDS = ("null", "unshare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_gpu_option(
        parser,
        "a device to pass: index, UUID, PCI address or a spec such as 'cuda:cc>=8.0';"
        " repeatable (default: every device, or those the site allows you)",
        count=True,
    )
    parser.add_argument(
        "--for",
        dest="hold_for",
        metavar="DURATION",
        help="how long the session may last: 90s, 30m, 2h, 1h30m (default: the site's"
        f" default-for, 1h; at most its max-for, 8h, from {config.SITE_CONF})",
    )
    parser.add_argument(
        "--name", metavar="NAME", help="the session's name (default: INNER-N, the first free)"
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="open the session and return; autopkgtest-hw attach NAME gets its shell",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="a directory of yours, bound at the same path in the testbed and the shell's"
        " starting directory (null and unshare testbeds)",
    )
    add_inventory_option(parser)
    add_lock_options(parser)
    add_inner_arguments(parser)


def testbed_kind(inner: str) -> str:
    return os.path.basename(inner).removeprefix("autopkgtest-virt-")


def virt_argv(
    args: argparse.Namespace, hold_for: float, gpus: list[str], extra: list[str]
) -> list[str]:
    argv = [sys.executable, "-m", "autopkgtest_hw.virt.server"]
    if getattr(args, "debug", False):
        argv.append("--debug")
    for sel in gpus:
        argv += ["--gpu", sel]
    if args.count:
        argv += ["--count", str(args.count)]
    if args.inventory:
        argv += ["--inventory", args.inventory]
    if args.no_cache:
        argv.append("--no-cache")
    argv += ["--lock-dir", args.lock_dir, "--lock-timeout", f"{args.lock_timeout:g}"]
    argv += ["--hold-kind", "porterbox", "--hold-for", f"{int(hold_for)}s"]
    return [*argv, args.inner, *args.inner_args, *extra]


def _workdir(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The work directory and the inner server's arguments that bind it."""
    if not args.workdir:
        return None, []
    path = os.path.realpath(args.workdir)
    kind = testbed_kind(args.inner)
    if kind not in WORKDIR_TESTBEDS:
        raise config.ConfigError(
            f"--workdir binds a directory into null and unshare testbeds, not {safe(kind, 40)};"
            " copy files with autopkgtest-hw copy"
        )
    try:
        st = os.stat(path)
    except OSError as exc:
        raise config.ConfigError(f"--workdir {safe(path)}: {exc.strerror}") from None
    if not os.path.isdir(path) or (os.getuid() != 0 and st.st_uid != os.getuid()):
        raise config.ConfigError(f"--workdir {safe(path)} is not a directory of yours")
    return path, (["--bind", path, path] if kind == "unshare" else [])


def run(args: argparse.Namespace) -> int:
    try:
        name = wire.check_name(args.name) if args.name else free_name(args.inner)
        policy = config.load()
        allowed = config.grant(policy, os.getuid(), list(args.gpu))
        hold_for = parse_duration(args.hold_for) if args.hold_for else policy.default_for
        workdir, extra = _workdir(args)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from None
    if hold_for > allowed.max_for:
        log.warning(
            f"--for {format_duration(hold_for)} is more than this site allows;"
            f" the session lasts {format_duration(allowed.max_for)}"
        )
        hold_for = allowed.max_for
    gpus = list(args.gpu) or list(allowed.gpus or ())
    spec = Spec(
        name=name,
        virt_argv=virt_argv(args, hold_for, gpus, extra),
        duration=hold_for,
        max_for=allowed.max_for,
        warn_before=list(policy.warn_before),
        inner=testbed_kind(args.inner),
        lock_dir=args.lock_dir,
        workdir=workdir,
        term=os.environ.get("TERM"),
    )
    sock = launch(spec)  # a SessionError exits 2 (ERROR_EXIT)
    with sock:
        if args.detach:
            return client.wait_started(sock, name)
        return client.attach(sock, name)
