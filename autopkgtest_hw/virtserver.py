"""autopkgtest-virt-hwgpu: a virt server that passes GPUs into any other virt server's testbed.

``autopkgtest ... -- hwgpu [hwgpu options] INNER [inner options]`` starts
``autopkgtest-virt-INNER`` with the passthrough options its adapter computes
for the allocated devices, forwards the protocol both ways, checks after
``open``/``revert``/``reboot`` that the devices are in the testbed, and
appends ``hw:*``, ``hw-device=`` and ``hw-cpu=`` words to the reply to
``capabilities``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from urllib.parse import quote, unquote

from . import __version__, allocate, holder_options, log, probe
from .backends import Backend, FallbackBackend, HostPaths, PassthroughError, backend_class
from .backends.base import VIRT_PREFIX, kind_of
from .inventory import Device, Inventory, InventoryError
from .proxy import (
    EXIT_STARTUP,
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

PROG = "autopkgtest-virt-hwgpu"
EXIT_USAGE = 2
#: The failure word of a reply to open/revert/reboot whose devices are not in the testbed.
PASSTHROUGH_FAILED = "hw-passthrough-failed"

EPILOG = """\
examples:
  autopkgtest pkg.dsc -- hwgpu null
      run on this host; advertise its GPUs (nothing to pass)
  autopkgtest pkg.dsc -- hwgpu --gpu 0 podman debian:sid
      one GPU into a podman container (CDI name if a CDI spec lists it)
  autopkgtest pkg.dsc -- hwgpu --gpu cuda:cc>=8.0 --count 1 --lock-timeout 3600 \\
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        log.error(message)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    sel.add_argument(
        "--gpu",
        action="append",
        default=[],
        metavar="SEL",
        help="a device to pass: NVML index (else position in the inventory), UUID, PCI"
        " address, or a hardware spec such as cuda:cc>=8.0 (every fitting device);"
        " repeatable; default: every device of the inventory",
    )
    sel.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="pass N of the selected devices, whichever are free first",
    )
    sel.add_argument(
        "--inventory",
        metavar="FILE",
        help="read the host's devices from FILE (autopkgtest-hw detect --json) instead of"
        " detecting them",
    )
    locks = parser.add_argument_group("locking")
    locks.add_argument(
        "--lock-dir",
        default=allocate.DEFAULT_LOCK_DIR,
        metavar="DIR",
        help="directory of the per-device lock files (default: %(default)s)",
    )
    locks.add_argument(
        "--shared",
        action="store_true",
        help="take shared locks: other --shared runs may use the same devices at once",
    )
    locks.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a locked device (default: 0, fail at once)",
    )
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
    parser.add_argument(
        "inner",
        metavar="INNER",
        help="the inner virt server: a name (null, podman, qemu+rocm, ...) or a path",
    )
    parser.add_argument(
        "inner_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="the inner server's own options and arguments",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _seconds(text: str) -> float:
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


class StartupError(RuntimeError):
    """Anything that stops the testbed from being set up; the message says what to do."""


def find_inner(inner: str) -> str:
    """The inner server's executable, found the way autopkgtest finds virt servers."""
    if "/" in inner:
        if not os.access(inner, os.X_OK):
            raise StartupError(f"inner virt server {inner} is not an executable file")
        return inner
    name = inner if inner.startswith(VIRT_PREFIX) else VIRT_PREFIX + inner
    if kind_of(name) == "hwgpu":
        raise StartupError("INNER cannot be hwgpu itself")
    path = shutil.which(name)
    if path is None:
        raise StartupError(f"inner virt server {name} not found on PATH")
    return path


def load_inventory(path: str | None) -> Inventory:
    if path is not None:
        try:
            return Inventory.load(path)
        except InventoryError as exc:
            raise StartupError(str(exc)) from None
    from .detect import detect_inventory  # only when needed: it imports the detectors

    return detect_inventory()


def describe_device(d: Device) -> str:
    """Vendor, model, PCI id, arch, driver, UUID: what a result log must record."""
    parts = [d.vendor or "unknown vendor", repr(d.model) if d.model else "unknown model"]
    if d.pci_address:
        parts.append(f"at {d.pci_address}")
    if d.pci_id:
        parts.append(f"[{d.pci_id}]")
    if d.arch:
        parts.append(f"arch {d.arch}")
    if d.driver:
        parts.append(f"driver {d.driver}" + (f" {d.driver_version}" if d.driver_version else ""))
    if d.uuid:
        parts.append(f"UUID {d.uuid}")
    if d.opencl_type and not d.pci_address:
        parts.append(f"OpenCL {d.opencl_type} device of {d.opencl_platform or 'unknown'}")
    return " ".join(parts)


class HardwareHooks:
    """Rewrites replies: verifies devices after open/revert/reboot, extends capabilities."""

    def __init__(self, backend: Backend, devices: Sequence[Device], inner: InnerServer) -> None:
        self.backend = backend
        self.devices = list(devices)
        self.inner = inner
        self.testbed: Inventory | None = None  # what the open testbed has, once verified
        self.logged = False

    def __call__(self, command: str, words: list[str], reply: str) -> str:
        ok = reply.split()[:1] == ["ok"]
        if command in ("open", "revert", "reboot"):
            self.testbed = None
            if ok:
                return self._verify(command) or reply
        elif command == "close" and ok:
            self.testbed = None
        elif command == "capabilities" and ok and self.testbed is not None:
            extra = " ".join(quote(w) for w in self.testbed.to_capabilities())
            return f"{reply} {extra}"
        return reply

    def _verify(self, command: str) -> str | None:
        """None if the testbed has the devices; else a failure reply."""
        auxverb_reply = self.inner.request("print-execute-command")
        words = auxverb_reply.split()
        if words[:1] != ["ok"] or len(words) < 2:
            return self._fail(command, [f"print-execute-command replied {auxverb_reply!r}"], [])
        auxverb = [unquote(w) for w in words[1].split(",")]
        try:
            result = probe.run(auxverb, self.backend.nodes_to_check(self.devices))
        except probe.ProbeError as exc:
            return self._fail(command, [f"cannot look inside the testbed: {exc}"], [])
        present, problems = self.backend.verify(self.devices, result)
        if problems and self.backend.strict:
            lacking = [d.ident for d in self.devices if d not in present]
            return self._fail(command, problems, lacking)
        for p in problems:
            log.warning(f"not in the testbed, not advertised: {p}")
        self.testbed = Inventory(cpu=result.cpu, devices=tuple(present))
        if not self.logged or log.debugging():
            self.logged = True
            self._log_testbed(present)
        return None

    def _fail(self, command: str, problems: list[str], lacking: list[str]) -> str:
        """Log what is missing and why; the reply names the devices (autopkgtest shows it)."""
        log.error(
            f"after {command}: the testbed lacks devices that were passed in"
            f" ({self.backend.describe(self.devices)}):"
        )
        for p in problems:
            log.error(f"  {p}")
        log.error("this is a testbed failure (passthrough did not work), not a test failure")
        return " ".join([PASSTHROUGH_FAILED, *(quote(i, safe="/:") for i in lacking)])

    def _log_testbed(self, present: Sequence[Device]) -> None:
        assert self.testbed is not None
        cpu = self.testbed.cpu
        log.info(
            f"testbed CPU: {cpu.model or 'unknown'}, {cpu.cores or '?'} logical CPUs,"
            f" {(cpu.memory or 0) // 2**20} MiB RAM, {cpu.arch or 'unknown arch'}"
        )
        if not present:
            log.info("testbed devices: none")
        for d in present:
            log.info(f"testbed device: {describe_device(d)}")


def _prepare(
    args: argparse.Namespace,
) -> tuple[Backend, allocate.Allocation, list[str]]:
    server = find_inner(args.inner)
    cls = backend_class(server)
    paths = HostPaths(
        sysfs_root=args.sysfs_root,
        vfio_dir=args.vfio_dir,
        cdi_dirs=tuple(args.cdi_dir) if args.cdi_dir else HostPaths.cdi_dirs,
    )
    inventory = load_inventory(args.inventory)
    backend = cls(kind_of(server), server, inventory, paths)
    if cls is FallbackBackend:
        log.warning(backend.describe([]))
    try:
        candidates = allocate.select(inventory, args.gpu)
        alloc = allocate.acquire(
            candidates,
            args.count,
            args.lock_dir,
            shared=args.shared,
            timeout=args.lock_timeout,
            on_wait=lambda m: log.info(m),
            holder=holder_options.record(args),
        )
    except allocate.AllocationError as exc:
        raise StartupError(str(exc)) from None
    try:
        inner_args = backend.inner_args(args.inner_args, alloc.devices)
    except PassthroughError as exc:
        alloc.release()
        raise StartupError(str(exc)) from None
    for d in alloc.devices:
        log.info(f"allocated: {describe_device(d)}")
    if not alloc.devices:
        log.info("allocated: no devices (the inventory has none, or none were selected)")
    log.info(f"{backend.name} passthrough: {backend.describe(alloc.devices)}")
    return backend, alloc, [server, *inner_args]


def main(argv: Sequence[str] | None = None) -> int:
    log.setup(PROG)  # usage errors already carry this program's name
    parser = build_parser()
    args = parser.parse_args(argv)
    log.setup(PROG, args.debug)
    install_signal_handlers()
    alloc: allocate.Allocation | None = None
    inner: InnerServer | None = None
    try:
        try:
            backend, alloc, inner_argv = _prepare(args)
        except StartupError as exc:
            log.error(str(exc))
            return EXIT_STARTUP
        log.debug(f"starting {inner_argv}")
        try:
            inner = InnerServer(inner_argv, pass_fds=alloc.fds)
        except OSError as exc:
            log.error(f"cannot start {inner_argv[0]}: {exc.strerror}")
            return EXIT_STARTUP
        hooks = HardwareHooks(backend, alloc.devices, inner)
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
        if alloc is not None:
            alloc.release()
        die_by(exc.signum)
        return 128 + exc.signum  # not reached
    finally:
        if alloc is not None:
            alloc.release()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
