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
from typing import TYPE_CHECKING

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit, HwError
from autopkgtest_hw.locks import allocate, holder_options
from autopkgtest_hw.virt.backends import HostPaths
from autopkgtest_hw.virt.entry import PROG, build_parser
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
)
from autopkgtest_hw.virt.startup import Request, Testbed, early_argv, prepare

if TYPE_CHECKING:
    from autopkgtest_hw.locks.keeper import Keeper

__all__ = ["PROG", "build_parser", "main", "request_of", "serve"]


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
    """The whole program (``autopkgtest_hw.virt.entry.main``, which starts null/ssh early)."""
    from autopkgtest_hw.virt import entry

    return entry.main(argv)


def serve(args: argparse.Namespace, inner: InnerServer | None = None) -> int:
    """Set the testbed up and proxy until quit; ``inner``: the inner server, if started already.

    The signal handlers are installed (``entry.main``).
    """
    alloc: allocate.Allocation | None = None
    keeper: Keeper | None = None
    try:
        try:
            request = request_of(args)
            early = early_argv(request)
        except HwError as exc:  # StartupError, or any other error that says how to fix it
            log.error(str(exc))
            if inner is not None:
                inner.shutdown()
            return Exit.FAILED
        if early is not None and inner is None:
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
            from autopkgtest_hw.locks.keeper import Keeper

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
