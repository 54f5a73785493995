"""Open a porterbox session: an interactive shell in a testbed with the host's GPUs passed in.

  autopkgtest-hw shell [--gpu SEL]... [--for DURATION] -- INNER [inner options...]

The devices are allocated and locked by autopkgtest-virt-hwgpu exactly as for
a CI run (the same locks, the same queue), and held for at most --for (and
the site maximum).  Runs that wait for them say whose session holds them and
until when; 'autopkgtest-hw status' shows it too.  The session ends when the
shell exits, the time is up, the terminal hangs up, or on SIGTERM/SIGINT:
the shell and what it started are killed, the testbed is torn down and the
locks are released.  Exit status: the shell's own; 124 when the time ran
out; 128+N after signal N; 1 when the testbed could not be set up (devices
busy past --lock-timeout, inner server failure); 2 for bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys

from autopkgtest_hw.base import log
from autopkgtest_hw.base.argparser import add_gpu_option, add_inner_arguments
from autopkgtest_hw.base.duration import format_duration, parse_duration
from autopkgtest_hw.base.errors import UsageError
from autopkgtest_hw.commands._common import add_inventory_option, add_lock_options
from autopkgtest_hw.porterbox import session

HELP = "an interactive shell in a testbed with the GPUs passed in, for a limited time"

#: The site's settings (max-for = DURATION); AUTOPKGTEST_HW_PORTERBOX_CONF names another file.
SITE_CONF = "/etc/autopkgtest-hw/porterbox.conf"
DEFAULT_FOR = 3600.0
DEFAULT_MAX_FOR = 8 * 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_gpu_option(
        parser,
        "a device to pass: index, UUID, PCI address or a spec such as 'cuda:cc>=8.0';"
        " repeatable (default: every device)",
        count=True,
    )
    parser.add_argument(
        "--for",
        dest="hold_for",
        metavar="DURATION",
        default=format_duration(DEFAULT_FOR),
        help="how long the session may last: 90s, 30m, 2h, 1h30m (default: %(default)s;"
        f" at most the site's max-for from {SITE_CONF}, default"
        f" {format_duration(DEFAULT_MAX_FOR)})",
    )
    add_inventory_option(parser)
    add_lock_options(parser)
    add_inner_arguments(parser)


def site_max_for() -> float:
    path = os.environ.get("AUTOPKGTEST_HW_PORTERBOX_CONF", SITE_CONF)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [f.readline(1000) for _ in range(100)]
    except FileNotFoundError:
        return DEFAULT_MAX_FOR
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    for line in lines:
        key, eq, value = line.partition("=")
        if eq and key.strip() == "max-for":
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise ValueError(f"{path}: max-for: {exc}") from None
    return DEFAULT_MAX_FOR


def virt_argv(args: argparse.Namespace, hold_for: float) -> list[str]:
    argv = [sys.executable, "-m", "autopkgtest_hw.virt.server"]
    if getattr(args, "debug", False):
        argv.append("--debug")
    for sel in args.gpu:
        argv += ["--gpu", sel]
    if args.count:
        argv += ["--count", str(args.count)]
    if args.inventory:
        argv += ["--inventory", args.inventory]
    if args.no_cache:
        argv.append("--no-cache")
    argv += ["--lock-dir", args.lock_dir, "--lock-timeout", f"{args.lock_timeout:g}"]
    argv += ["--hold-kind", "porterbox", "--hold-for", f"{int(hold_for)}s"]
    return [*argv, args.inner, *args.inner_args]


def run(args: argparse.Namespace) -> int:
    try:
        hold_for = parse_duration(args.hold_for)
        limit = site_max_for()
    except ValueError as exc:
        raise UsageError(f"--for: {exc}" if "duration" in str(exc) else str(exc)) from None
    if hold_for > limit:
        log.warning(
            f"--for {format_duration(hold_for)} is more than this site allows;"
            f" the session lasts {format_duration(limit)}"
        )
        hold_for = limit
    return session.run(virt_argv(args, hold_for), hold_for)
