"""Build a source package with sbuild on this host's GPUs, where its hardware spec holds.

  autopkgtest-hw build [options] PACKAGE -- INNER [inner options...]

PACKAGE is a .dsc or an unpacked source tree.  Its XS-Requires-Hwspec (in a
.dsc: Requires-Hwspec) is checked against this host: where a spec does not
hold, nothing is built and the verdict says why (exit 3).  Otherwise the
fitting devices (or those chosen with --gpu) are allocated and locked for
the whole build, with a 'build' holder record that 'autopkgtest-hw status'
shows, and sbuild runs with --chroot-mode=autopkgtest and the hwgpu virt
server around INNER (e.g. 'unshare --tarball bookworm.tar'), so the build's
tests (dh_auto_test) see the devices.  With --run-autopkgtest, sbuild then
runs the package's autopkgtests through 'autopkgtest-hw run', needs-hw:
understood.  Exit status: sbuild's own (0 built); 2 for bad usage or an
invalid spec; 3 when this host does not satisfy the spec or the devices stay
busy past --lock-timeout.
"""

from __future__ import annotations

import argparse
import os

from autopkgtest_hw.base import log
from autopkgtest_hw.base.argparser import add_gpu_option, add_inner_arguments
from autopkgtest_hw.base.errors import Exit, UsageError, exit_status
from autopkgtest_hw.commands._common import add_inventory_option, add_lock_options, get_inventory
from autopkgtest_hw.source.build import BuildError, build, read_package, verdicts

HELP = "build a package with sbuild on this host's GPUs (refused where its hwspec does not hold)"

EXIT_REFUSED = Exit.REFUSED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_gpu_option(
        parser,
        "the devices to pass (index, UUID, PCI address or spec); repeatable"
        " (default: every device that fits the package's specs)",
        count=True,
    )
    add_inventory_option(parser)
    add_lock_options(parser)
    parser.add_argument("--dist", metavar="DIST", help="sbuild's --dist (e.g. bookworm)")
    parser.add_argument(
        "--run-autopkgtest",
        action="store_true",
        help="after the build, run the package's autopkgtests through autopkgtest-hw run",
    )
    parser.add_argument(
        "--autopkgtest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for autopkgtest with --run-autopkgtest (e.g."
        " --autopkgtest-arg=-U to update a testbed's stale apt lists); repeatable",
    )
    parser.add_argument(
        "--sbuild-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for sbuild (e.g. --sbuild-arg=--no-run-lintian); repeatable",
    )
    parser.add_argument("package", metavar="PACKAGE", help="a .dsc file or a source tree")
    add_inner_arguments(parser)


def run(args: argparse.Namespace) -> int:
    pkg = read_package(os.path.abspath(args.package))
    if not pkg.hwspecs and not args.gpu:
        raise UsageError(
            f"{pkg.source} has no XS-Requires-Hwspec: nothing to allocate (name devices with"
            " --gpu, or build it with plain sbuild)"
        )
    inventory = get_inventory(args)
    results = verdicts(pkg, inventory)
    refused = [v for v in results if not v.satisfied]
    for v in results:
        (log.error if not v.satisfied else log.info)(f"{pkg.source}: {v.message}")
    if refused:
        log.error(f"not building {pkg.source} here: this host does not satisfy its hardware spec")
        return EXIT_REFUSED
    with exit_status(EXIT_REFUSED, BuildError):
        return build(
            pkg,
            inventory,
            selectors=args.gpu,
            count=args.count,
            lock_dir=args.lock_dir,
            lock_timeout=args.lock_timeout,
            inner=[args.inner, *args.inner_args],
            dist=args.dist,
            run_autopkgtest=args.run_autopkgtest,
            autopkgtest_args=args.autopkgtest_arg,
            extra=args.sbuild_arg,
            cwd=None,
        )
