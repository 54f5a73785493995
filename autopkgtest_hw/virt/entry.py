"""The entry point of autopkgtest-virt-hwgpu: start a null/ssh inner server first, then parse.

autopkgtest waits for the virt server's banner before anything else; for
``null`` and ``ssh``, whose adapters pass no arguments, the inner server is
started here, found in the command line without argparse (:func:`scan_inner`),
before the option parser, allocation, the adapters and detection are
imported (``virt.server``), so that their import overlaps its start.  At
module level this imports nothing but ``os`` and ``sys``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

#: locks/allocate.DEFAULT_LOCK_DIR (a unit test keeps them equal; allocate is not imported here).
DEFAULT_LOCK_DIR = "/run/lock/autopkgtest-hw"
_VIRT_PREFIX = "autopkgtest-virt-"
#: Inner servers whose adapters pass no arguments (backends: ``passes_arguments`` false).
EARLY_KINDS = ("null", "ssh")
#: The options before INNER that take a value (a unit test keeps this equal to the parser's):
#: what :func:`scan_inner` skips to find INNER without importing argparse.
VALUE_OPTIONS = frozenset(
    {
        "--gpu",
        "--count",
        "--inventory",
        "--lock-dir",
        "--lock-timeout",
        "--hold-kind",
        "--hold-package",
        "--hold-for",
        "--sysfs-root",
        "--vfio-dir",
        "--cdi-dir",
    }
)


PROG = "autopkgtest-virt-hwgpu"

EPILOG = """\
examples:
  autopkgtest pkg.dsc -- hwgpu null
      run on this host; advertise its GPUs (nothing to pass)
  autopkgtest pkg.dsc -- hwgpu --gpu 0 podman debian:sid
      one GPU into a podman container (CDI name if a CDI spec lists it)
  autopkgtest pkg.dsc -- hwgpu --gpu 'cuda:cc>=8.0' --count 1 --lock-timeout 3600 \\
      qemu --ram-size 8192 sid.img
      any one free Ampere-or-newer GPU, by VFIO, waiting up to an hour for it
  autopkgtest pkg.dsc -- hwgpu --inventory host.json unshare -t sid.tar
      pin the host inventory instead of detecting it

Options before INNER are hwgpu's; everything from INNER on belongs to the
inner server (autopkgtest-virt-INNER, or a path).  Exit status: 0 after quit,
1 if the testbed could not be set up (allocation, locks, host not ready for
passthrough), 2 for bad usage, 12 on EOF from autopkgtest, the inner server's
own status (16 if killed by a signal) if it died.  See docs/virt-server.md.
"""


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from autopkgtest_hw import __version__
    from autopkgtest_hw.base.argparser import (
        Parser,
        add_gpu_option,
        add_inner_arguments,
        add_inventory_options,
        add_shared_options,
    )
    from autopkgtest_hw.locks import holder_options

    parser = Parser(
        prog=PROG,
        usage="%(prog)s [-h] [-d] [options] INNER [inner options...]",
        description=(
            "autopkgtest virt server that wraps another one (INNER: null, ssh, unshare,"
            " podman, docker, qemu or any autopkgtest-virt-* command), passes the"
            " allocated GPUs into its testbed (device nodes, bind mounts, CDI names or"
            " VFIO), locks them against other runs, checks inside the testbed that they"
            " arrived, and advertises them as hw:<class>, hw-device= and hw-cpu="
            " capabilities for needs-hw: restrictions."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-d", "--debug", action="store_true", help="enable debugging output")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sel = parser.add_argument_group("device selection")
    add_gpu_option(
        sel,
        "a device to pass: NVML index (else position in the inventory), UUID, PCI"
        " address, or a hardware spec such as 'cuda:cc>=8.0' (every fitting device);"
        " repeatable; default: every device of the inventory",
        count=True,
    )
    add_inventory_options(sel)
    locks = parser.add_argument_group("locking")
    add_shared_options(locks, "--lock-dir", lock_dir=DEFAULT_LOCK_DIR)
    locks.add_argument(
        "--shared",
        action="store_true",
        help="take shared locks: other --shared runs may use the same devices at once",
    )
    add_shared_options(locks, "--lock-timeout")
    holder_options.add_arguments(parser)
    host = parser.add_argument_group("host paths (for tests and unusual hosts)")
    host.add_argument(
        "--sysfs-root",
        default="/sys",
        metavar="DIR",
        help="where sysfs is, for the VFIO checks (default: %(default)s)",
    )
    host.add_argument(
        "--vfio-dir",
        default="/dev/vfio",
        metavar="DIR",
        help="where the VFIO group nodes are (default: %(default)s)",
    )
    host.add_argument(
        "--cdi-dir",
        action="append",
        metavar="DIR",
        help="directory of CDI specs; repeatable (default: /etc/cdi and /var/run/cdi)",
    )
    add_inner_arguments(
        parser, "the inner virt server: a name (null, podman, qemu+rocm, ...) or a path"
    )
    return parser


def scan_inner(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """INNER and its arguments as the parser will find them, read without argparse.

    A guess that lets the inner server start first: the parsed options decide,
    and ``virt.server`` restarts the inner server where the guess was wrong
    (an abbreviated option, say).  None for --help, --version or no INNER.
    """
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("-h", "--help", "--version"):
            return None
        if word == "--" or not word.startswith("-") or word == "-":
            rest = argv[i + 1 :] if word == "--" else argv[i:]
            return (rest[0], list(rest[1:])) if rest else None
        i += 2 if word in VALUE_OPTIONS else 1
    return None


def early_inner(inner: str, inner_args: Sequence[str]) -> list[str] | None:
    """The argv of a null/ssh inner server, found as autopkgtest finds it; None otherwise.

    Anything unusual (a name not found, hwgpu itself) is left to ``virt.startup``,
    which explains it.
    """
    base = os.path.basename(inner)
    kind = base[len(_VIRT_PREFIX) :] if base.startswith(_VIRT_PREFIX) else base
    if kind.split("+", 1)[0] not in EARLY_KINDS:
        return None
    if "/" in inner:
        path: str | None = inner if os.access(inner, os.X_OK) else None
    else:
        path = _which(inner if inner.startswith(_VIRT_PREFIX) else _VIRT_PREFIX + inner)
    return [path, *inner_args] if path else None


def _which(name: str) -> str | None:
    """``shutil.which`` for a plain name (shutil loads the compression modules)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Start a null/ssh inner server, then parse the options and serve.

    The inner server starts before this process imports argparse, allocation,
    the adapters or detection: autopkgtest waits for the slower of the two
    start-ups (docs/performance.md).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from autopkgtest_hw.base import log
    from autopkgtest_hw.base.errors import Exit
    from autopkgtest_hw.virt.proxy import (
        InnerServer,
        Interrupted,
        die_by,
        ignore_signals,
        install_signal_handlers,
    )

    log.setup(PROG)  # usage errors already carry this program's name
    install_signal_handlers()
    inner = None
    try:
        scanned = scan_inner(argv)
        early = early_inner(*scanned) if scanned is not None else None
        if early is not None:
            try:
                inner = InnerServer(early, pass_fds=())
            except OSError as exc:
                log.error(f"cannot start {early[0]}: {exc.strerror}")
                return Exit.FAILED
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # usage error, --help
            if inner is not None:
                inner.shutdown()
            raise
        log.setup(PROG, args.debug)
        if inner is not None:
            log.debug(f"started {early} (no passthrough arguments: detecting meanwhile)")
        from autopkgtest_hw.virt import server  # allocation, adapters, detection

        return server.serve(args, inner)
    except Interrupted as exc:  # before serve() took over (it handles its own)
        ignore_signals()
        log.error(f"got {exc}; shutting the testbed down")
        if inner is not None:
            inner.shutdown()
        die_by(exc.signum)
        return 128 + exc.signum  # not reached


def run() -> None:
    """The installed command: ``main``, then an exit without the interpreter's teardown.

    Everything is released when ``main`` returns (the inner server reaped, the
    locks given to the keeper or let go); what is left is freeing some
    hundred modules, which autopkgtest would wait for after every ``quit``.
    """
    rc = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(rc)


if __name__ == "__main__":  # pragma: no cover
    run()
