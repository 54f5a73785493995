"""Build a package on a GPU host: sbuild in autopkgtest chroot mode through hwgpu.

The package's ``XS-Requires-Hwspec`` (``Requires-Hwspec`` in a .dsc) decides:
where this host does not satisfy it, nothing is built and the verdict says
why.  Otherwise this process allocates the fitting devices and holds their
locks (a ``build`` holder record: package, user, since) for the whole sbuild
run, and gives sbuild ``autopkgtest-virt-hwgpu`` with an inventory of just
those devices.  The testbeds sbuild opens (the build's, and autopkgtest's
with ``--run-autopkgtest``) take shared locks in a private lock directory:
they share the devices this build holds, and nobody else can take them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.locks import allocate, holders
from autopkgtest_hw.source.control import ControlError, read_source_control
from autopkgtest_hw.source.hwspec_field import field_texts, value_texts
from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import SpecError, parse
from autopkgtest_hw.spec.matcher import Verdict, match
from autopkgtest_hw.spec.render import describe_device

_PR_SET_PDEATHSIG = 1


class BuildError(HwError):
    """The package or the host cannot be used (the message says why)."""


@dataclass(frozen=True)
class Package:
    path: str  # the .dsc or the source directory
    source: str
    hwspecs: tuple[str, ...]


def read_package(path: str) -> Package:
    """The source name and hardware specs of a .dsc or an unpacked source tree."""
    if path.endswith(".dsc") and os.path.isfile(path):
        return _read_dsc(path)
    control = os.path.join(path, "debian", "control")
    if not os.path.isfile(control):
        raise BuildError(f"{path}: neither a .dsc file nor a source tree with debian/control")
    try:
        sc = read_source_control(control)
    except ControlError as exc:
        raise BuildError(str(exc)) from None
    if not sc.source:
        raise BuildError(f"{control}: the source stanza has no Source field")
    return Package(path, sc.source, field_texts(sc.hwspec_fields))


def _read_dsc(path: str) -> Package:
    from debian.deb822 import Dsc

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            dsc = Dsc(f)
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path}: cannot read: {exc}") from None
    source = dsc.get("Source")
    if not source:
        raise BuildError(f"{path}: no Source field")
    specs: list[str] = []
    for name, value in dsc.items():
        if name.lower() in ("requires-hwspec", "xs-requires-hwspec", "x-requires-hwspec"):
            specs += value_texts(value)
    return Package(path, source.strip(), tuple(specs))


def verdicts(pkg: Package, inventory: Inventory) -> list[Verdict]:
    """One verdict per spec; BuildError for a spec that does not parse."""
    out = []
    for text in pkg.hwspecs:
        try:
            parsed = parse(text)
        except SpecError as exc:
            raise BuildError(f"{pkg.source}: XS-Requires-Hwspec: {exc}") from None
        out.append(match(parsed, inventory, label=f"XS-Requires-Hwspec: {text}"))
    return out


def find_program(name: str) -> str:
    """``name`` beside the running autopkgtest-hw (a venv, a checkout), else on PATH."""
    here = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), name)
    path = here if os.access(here, os.X_OK) else shutil.which(name)
    if path is None:
        raise BuildError(f"{name} not found on PATH")
    return os.path.abspath(path)


def _sbuild_escape(word: str) -> str:
    """sbuild expands %a, %r, ... in virt-server and autopkgtest options; %% is a %."""
    return word.replace("%", "%%")


@dataclass(frozen=True)
class Plan:
    """Everything sbuild is given."""

    argv: list[str]
    virt: list[str]


def sbuild_argv(
    pkg: Package,
    *,
    sbuild: str,
    hwgpu: str,
    autopkgtest_hw: str | None,
    inventory_file: str,
    lock_dir: str,
    inner: Sequence[str],
    dist: str | None,
    extra: Sequence[str],
    autopkgtest_args: Sequence[str] = (),
) -> Plan:
    """sbuild's command line; ``autopkgtest_hw`` set: run the autopkgtests too, needs-hw aware."""
    virt = [hwgpu, "--inventory", inventory_file, "--lock-dir", lock_dir, "--shared"]
    argv = [sbuild, "--chroot-mode=autopkgtest", f"--autopkgtest-virt-server={hwgpu}"]
    opts = [*virt[1:], "--hold-kind", "build", "--hold-package", pkg.source, *inner]
    argv += [f"--autopkgtest-virt-server-opt={_sbuild_escape(o)}" for o in opts]
    if dist:
        argv.append(f"--dist={dist}")
    if autopkgtest_hw is not None:
        argv.append("--run-autopkgtest")
        for word in (autopkgtest_hw, "run", "--hw-autopkgtest"):
            argv.append(f"--autopkgtest-root-arg={word}")
        test_virt = [
            *autopkgtest_args,
            "--",
            *virt,
            "--hold-kind",
            "ci",
            "--hold-package",
            pkg.source,
            *inner,
        ]
        argv += [f"--autopkgtest-opt={_sbuild_escape(o)}" for o in test_virt]
    else:
        argv.append("--no-run-autopkgtest")
    argv += [*extra, pkg.path]
    return Plan(argv, virt)


def _die_with_parent() -> None:  # pragma: no cover - child side
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Stop(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def run_sbuild(argv: Sequence[str], cwd: str | None) -> int:
    """sbuild in the foreground; it dies with us, and a SIGTERM/SIGINT/SIGHUP is passed on."""
    log.debug(f"running {list(argv)!r}")
    proc = subprocess.Popen(list(argv), cwd=cwd, preexec_fn=_die_with_parent)
    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while True:
            try:
                return proc.wait()
            except _Stop as stop:
                log.error(f"got {signal.Signals(stop.signum).name}: stopping sbuild")
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                for s in old:
                    signal.signal(s, signal.SIG_IGN)
                proc.wait()
                return 128 + stop.signum
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def build(
    pkg: Package,
    inventory: Inventory,
    *,
    selectors: Sequence[str],
    count: int | None,
    lock_dir: str,
    lock_timeout: float,
    inner: Sequence[str],
    dist: str | None,
    run_autopkgtest: bool,
    autopkgtest_args: Sequence[str] = (),
    extra: Sequence[str],
    cwd: str | None,
) -> int:
    """Allocate, hold the locks, run sbuild; sbuild's exit status."""
    sbuild = find_program("sbuild")
    hwgpu = find_program("autopkgtest-virt-hwgpu")
    adt_hw = find_program("autopkgtest-hw") if run_autopkgtest else None
    try:
        candidates = allocate.select(inventory, list(selectors) or list(pkg.hwspecs))
        alloc = allocate.acquire(
            candidates,
            count,
            lock_dir,
            timeout=lock_timeout,
            on_wait=log.info,
            holder=holders.for_this_process("build", pkg.source),
        )
    except allocate.AllocationError as exc:
        raise BuildError(str(exc)) from None
    try:
        for d in alloc.devices:
            log.info(f"allocated for the build: {describe_device(d, 'short')} ({d.ident})")
        with tempfile.TemporaryDirectory(prefix="autopkgtest-hw-build.") as tmp:
            inv_file = os.path.join(tmp, "devices.json")
            with open(inv_file, "w", encoding="utf-8") as f:
                f.write(Inventory(cpu=inventory.cpu, devices=tuple(alloc.devices)).to_json())
            plan = sbuild_argv(
                pkg,
                sbuild=sbuild,
                hwgpu=hwgpu,
                autopkgtest_hw=adt_hw,
                inventory_file=inv_file,
                lock_dir=os.path.join(tmp, "locks"),
                inner=inner,
                dist=dist,
                extra=extra,
                autopkgtest_args=autopkgtest_args,
            )
            return run_sbuild(plan.argv, cwd)
    finally:
        alloc.release()
