"""Build a package on a GPU host: sbuild in autopkgtest chroot mode through hwgpu.

The package's ``XS-Requires-Hwspec`` (``Requires-Hwspec`` in a .dsc) decides:
where this host does not satisfy it, nothing is built and the verdict says
why.  Otherwise this process allocates the fewest fitting devices the specs
need (``build_devices``) and locks them (a ``build`` holder record: package,
user, since), and gives sbuild ``autopkgtest-virt-hwgpu`` with an inventory
of just those devices.  The testbeds sbuild opens (the build's, and
autopkgtest's with ``--run-autopkgtest``) take shared locks in a private lock
directory: they share the devices this build holds, and nobody else can take
them.  sbuild runs under a keeper (``build_keeper``) that holds the locks
until the last process of the build is gone; ``build_progress`` says the
phases of the build from sbuild's log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.locks import allocate, holders
from autopkgtest_hw.source import build_devices
from autopkgtest_hw.source.build_keeper import Keeper
from autopkgtest_hw.source.build_progress import Progress
from autopkgtest_hw.source.control import ControlError, read_source_control
from autopkgtest_hw.source.hwspec_field import field_texts, value_texts
from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import Spec, SpecError, parse
from autopkgtest_hw.spec.matcher import Verdict, match
from autopkgtest_hw.spec.render import describe_device

#: Debian Policy 5.6.1: lower-case letters, digits, + - and ., at least two, first alphanumeric.
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
#: How often the build's log is looked at for progress.
LOOK_INTERVAL = 0.5


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
        return _checked(_read_dsc(path))
    control = os.path.join(path, "debian", "control")
    if not os.path.isfile(control):
        raise BuildError(f"{safe(path)}: neither a .dsc file nor a source tree with debian/control")
    try:
        sc = read_source_control(control)
    except ControlError as exc:
        raise BuildError(str(exc)) from None
    if not sc.source:
        raise BuildError(f"{safe(control)}: the source stanza has no Source field")
    return _checked(Package(path, sc.source, field_texts(sc.hwspec_fields)))


def _checked(pkg: Package) -> Package:
    """``pkg``, if its name is a Debian source package name (it goes into logs and records)."""
    if not SOURCE_NAME.fullmatch(pkg.source):
        raise BuildError(
            f"{safe(pkg.path)}: Source '{safe(pkg.source, 100)}' is not a source package name"
            " (Debian Policy 5.6.1: lower-case letters, digits, '+', '-' and '.', at least two"
            " characters, starting with a letter or digit; one line)"
        )
    return pkg


def _read_dsc(path: str) -> Package:
    from debian.deb822 import Dsc

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            dsc = Dsc(f)
    except (OSError, ValueError) as exc:
        raise BuildError(f"{safe(path)}: cannot read: {safe(exc)}") from None
    source = dsc.get("Source")
    if not source:
        raise BuildError(f"{safe(path)}: no Source field")
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


class _Stop(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def run_sbuild(
    argv: Sequence[str], cwd: str | None, fds: Sequence[int], tmp: str, progress: Progress
) -> int:
    """sbuild under a build keeper (``build_keeper``), which removes ``tmp`` at the end.

    Returns once every process of the build is gone, so the devices are free
    unless another process holds them.  A SIGTERM, SIGINT or SIGHUP is passed
    on to sbuild as SIGTERM.
    """
    log.debug(f"running {list(argv)!r}")
    keeper = Keeper(argv, cwd, fds, tmp)
    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while True:
            try:
                while (status := keeper.poll()) is None:
                    progress.look()
                    time.sleep(LOOK_INTERVAL)
                progress.finish(status)
                return status
            except _Stop as stop:
                log.error(f"got {signal.Signals(stop.signum).name}: stopping sbuild")
                for s in old:
                    signal.signal(s, signal.SIG_IGN)
                keeper.stop_sbuild()
                progress.finish(keeper.wait())
                return 128 + stop.signum
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def parsed_specs(pkg: Package) -> list[Spec]:
    """The package's specs, parsed; BuildError for one that does not parse."""
    try:
        return [parse(text) for text in pkg.hwspecs]
    except SpecError as exc:
        raise BuildError(f"{pkg.source}: XS-Requires-Hwspec: {exc}") from None


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
    """Allocate the fewest devices that do, hold the locks, run sbuild; sbuild's exit status."""
    sbuild = find_program("sbuild")
    hwgpu = find_program("autopkgtest-virt-hwgpu")
    adt_hw = find_program("autopkgtest-hw") if run_autopkgtest else None
    try:
        wanted = build_devices.request(parsed_specs(pkg), inventory, selectors, count)
        alloc = allocate.acquire(
            wanted.candidates,
            wanted.count,
            lock_dir,
            timeout=lock_timeout,
            on_wait=log.info,
            holder=holders.for_this_process("build", pkg.source),
        )
    except allocate.AllocationError as exc:
        raise BuildError(str(exc)) from None
    try:
        for d in alloc.devices:
            log.info(f"allocated for the build: {describe_device(d, 'short')} ({safe(d.ident)})")
        if not alloc.fds:
            log.info(
                f"{pkg.source}: no device locked: its hardware specs hold without one that needs"
                " a lock (name one with --gpu to pass it in)"
            )
        tmp = tempfile.mkdtemp(prefix="autopkgtest-hw-build.")
        try:
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
            progress = Progress(
                pkg.source,
                build_dir(extra, cwd),
                log.info,
                phases=not (sys.stdin.isatty() and sys.stdout.isatty()),
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return run_sbuild(plan.argv, cwd, alloc.fds, tmp, progress)
    finally:
        alloc.release()


def build_dir(extra: Sequence[str], cwd: str | None) -> str:
    """Where sbuild writes its log: ``--build-dir`` among its arguments, else its directory."""
    found = None
    for i, word in enumerate(extra):
        if word.startswith("--build-dir="):
            found = word.split("=", 1)[1]
        elif word == "--build-dir" and i + 1 < len(extra):
            found = extra[i + 1]
    base = cwd or os.getcwd()
    return os.path.join(base, found) if found else base
