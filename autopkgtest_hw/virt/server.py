"""The command line of autopkgtest-virt-hwgpu: a virt server passing GPUs into another's testbed.

``autopkgtest ... -- hwgpu [hwgpu options] INNER [inner options]`` starts
``autopkgtest-virt-INNER`` with the passthrough options its adapter computes
for the allocated devices (``virt.startup``), forwards the protocol both ways
(``proxy``), checks after ``open``/``revert``/``reboot`` that the devices are
in the testbed, and appends ``hw:*``, ``hw-device=`` and ``hw-cpu=`` words to
the reply to ``capabilities`` (``virt.hooks``).  This module parses the
options and runs those parts in order.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from autopkgtest_hw import __version__
from autopkgtest_hw.base import log
from autopkgtest_hw.base.argparser import (
    Parser,
    add_gpu_option,
    add_inner_arguments,
    add_inventory_options,
    add_shared_options,
)
from autopkgtest_hw.base.errors import Exit, HwError
from autopkgtest_hw.locks import allocate, holder_options
from autopkgtest_hw.locks.keeper import Keeper
from autopkgtest_hw.virt.backends import HostPaths
from autopkgtest_hw.virt.hooks import HardwareHooks
from autopkgtest_hw.virt.proxy import (
    InnerDied,
    InnerServer,
    Interrupted,
    Proxy,
    crash_exit_code,
    describe_status,
    die_by,
    ignore_signals,
    install_signal_handlers,
)
from autopkgtest_hw.virt.startup import Request, Testbed, early_argv, prepare

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
    add_shared_options(locks, "--lock-dir", lock_dir=allocate.DEFAULT_LOCK_DIR)
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


def request_of(args: argparse.Namespace) -> Request:
    """What the parsed options ask start-up for."""
    return Request(
        inner=args.inner,
        inner_args=tuple(args.inner_args),
        selectors=tuple(args.gpu),
        count=args.count,
        inventory=args.inventory,
        lock_dir=args.lock_dir,
        shared=args.shared,
        lock_timeout=args.lock_timeout,
        paths=HostPaths(
            sysfs_root=args.sysfs_root,
            vfio_dir=args.vfio_dir,
            cdi_dirs=tuple(args.cdi_dir) if args.cdi_dir else HostPaths.cdi_dirs,
        ),
        holder=holder_options.record(args),
        use_cache=not args.no_cache,
    )


def main(argv: Sequence[str] | None = None) -> int:
    log.setup(PROG)  # usage errors already carry this program's name
    parser = build_parser()
    args = parser.parse_args(argv)
    log.setup(PROG, args.debug)
    install_signal_handlers()
    alloc: allocate.Allocation | None = None
    inner: InnerServer | None = None
    keeper: Keeper | None = None
    try:
        try:
            request = request_of(args)
            early = early_argv(request)
        except HwError as exc:  # StartupError, or any other error that says how to fix it
            log.error(str(exc))
            return Exit.FAILED
        if early is not None:
            # Nothing to pass (null, ssh): the inner server starts now and
            # detection and locking run while it does; its banner is read after.
            log.debug(f"starting {early} (no passthrough arguments: detecting meanwhile)")
            inner = _start(early, ())
            if inner is None:
                return Exit.FAILED
        try:
            testbed: Testbed = prepare(request)
        except HwError as exc:
            log.error(str(exc))
            if inner is not None:
                inner.shutdown()
            return Exit.FAILED
        alloc = testbed.allocation
        if alloc.fds:
            # Holds the locks past our own end until the testbed is gone (keeper.py).
            try:
                keeper = Keeper(alloc.fds, testbed.backend.leftovers())
            except HwError as exc:  # KeeperError: no keeper, no testbed (it would hold no lock)
                log.error(str(exc))
                if inner is not None:
                    inner.shutdown()
                return Exit.FAILED
        if inner is None or inner.argv != testbed.argv:
            if inner is not None:  # the plan passed arguments after all: start it with them
                inner.shutdown()
            log.debug(f"starting {testbed.argv}")
            inner = _start(testbed.argv, alloc.fds)
            if inner is None:
                return Exit.FAILED
        if keeper is not None:
            keeper.inner_started(inner.pid)
        hooks = HardwareHooks(
            testbed.backend,
            alloc.devices,
            testbed.passthrough,
            inner,
            command_prefix=keeper.prefix() if keeper is not None else (),
        )
        proxy = Proxy(inner, hooks)
        try:
            proxy.start()
            proxy.write("ok")
            return proxy.serve()
        except InnerDied as exc:
            ignore_signals()
            log.error(
                f"{inner.name} died while {exc.while_doing}: it {describe_status(exc.returncode)}"
            )
            inner.shutdown(timeout=0)
            return crash_exit_code(exc.returncode)
    except Interrupted as exc:
        ignore_signals()
        log.error(f"got {exc}; shutting the testbed down")
        if inner is not None:
            inner.shutdown()
        _finish(keeper, alloc)
        die_by(exc.signum)
        return 128 + exc.signum  # not reached
    finally:
        _finish(keeper, alloc)


def _finish(keeper: Keeper | None, alloc: allocate.Allocation | None) -> None:
    """Let go of the locks once the keeper found the testbed gone (and removed what was left)."""
    if keeper is not None:
        keeper.finish()
    if alloc is not None:
        alloc.release()


def _start(argv: list[str], fds: Sequence[int]) -> InnerServer | None:
    """The inner server, started; None (with the error logged) if it cannot be."""
    try:
        return InnerServer(argv, pass_fds=fds)
    except OSError as exc:
        log.error(f"cannot start {argv[0]}: {exc.strerror}")
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
