"""The machine itself: CPU model, flags, logical CPUs, RAM and dpkg architecture."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterable

from autopkgtest_hw.detect.base import OK, Inputs, detector, plural
from autopkgtest_hw.spec.inventory import Cpu, DetectorReport

NAME = "cpu"

#: The machine name (uname -m) -> dpkg architecture, when dpkg is absent (a minimal testbed).
MACHINE_TO_DPKG = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armhf",
    "armv6l": "armel",
    "ppc64le": "ppc64el",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips64": "mips64el",
}

_VENDOR_IDS = {"genuineintel": "intel", "authenticamd": "amd", "hygongenuine": "hygon"}
#: "CPU implementer" of arm64 /proc/cpuinfo.
_ARM_IMPLEMENTERS = {
    "0x41": "arm",
    "0x42": "broadcom",
    "0x46": "fujitsu",
    "0x48": "hisilicon",
    "0x4e": "nvidia",
    "0x51": "qualcomm",
    "0x61": "apple",
    "0xc0": "ampere",
}
#: Field names that hold the feature flags, per architecture family.
_FLAG_FIELDS = ("flags", "features", "isa")
_MODEL_FIELDS = ("model name", "cpu model", "cpu", "uarch", "hardware")


#: Read afresh on every run (cheap; its cores depend on the process), never cached.
@detector(
    NAME,
    order=0,
    empty=Cpu,
    cached=False,
    inputs=Inputs(tools=("dpkg",), paths=("/proc/cpuinfo", "/proc/meminfo")),
)
def detect() -> tuple[Cpu, DetectorReport]:
    """The machine itself; it runs first (see :func:`~.base.detector` for the guard)."""
    cpu = this_machine()
    return cpu, DetectorReport(NAME, OK, plural(cpu.cores or 0, "logical CPU"))


def this_machine() -> Cpu:
    """The CPU as this process sees it (also the null testbed's, ``virt.probe``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = parse_cpuinfo(f.read())
    except OSError:
        info = {}
    return Cpu(
        arch=dpkg_architecture(),
        model=info.get("model"),
        vendor=info.get("vendor"),
        flags=tuple(info.get("flags", "").split()),
        cores=logical_cpus(),
        memory=read_memtotal("/proc/meminfo"),
    )


def parse_cpuinfo(text: str) -> dict[str, str]:
    """Model, vendor and flags from the first processor block of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields.get("processor") is not None and len(fields) > 1:
                break  # the first processor's block is enough
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    out: dict[str, str] = {}
    for key in _MODEL_FIELDS:
        if fields.get(key):
            out["model"] = fields[key]
            break
    for key in _FLAG_FIELDS:
        if fields.get(key):
            out["flags"] = fields[key]
            break
    vendor_id = fields.get("vendor_id", "").lower()
    if vendor_id in _VENDOR_IDS:
        out["vendor"] = _VENDOR_IDS[vendor_id]
    elif "cpu implementer" in fields:
        impl = fields["cpu implementer"].lower()
        out["vendor"] = _ARM_IMPLEMENTERS.get(impl, impl)
    elif vendor_id.startswith("ibm"):
        out["vendor"] = "ibm"
    elif vendor_id:
        out["vendor"] = vendor_id
    return out


def read_memtotal(path: str) -> int | None:
    """System RAM in bytes from a ``/proc/meminfo``-style file; None if absent."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_memtotal(f)
    except OSError:
        return None


def parse_memtotal(lines: Iterable[str]) -> int | None:
    """Bytes from the ``MemTotal:  24683656 kB`` line of meminfo text; None if none reads."""
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "MemTotal:" and parts[1].isdigit():
            factor = 1024 if len(parts) > 2 and parts[2].lower() == "kb" else 1
            return int(parts[1]) * factor
    return None


def logical_cpus() -> int | None:
    """CPUs this process may run on (a testbed's cgroup or taskset counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


@functools.cache  # one answer per process: the CPU detector and the null probe both ask
def dpkg_architecture() -> str | None:
    try:
        result = subprocess.run(
            ["dpkg", "--print-architecture"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        result = None
    if result is not None and result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    machine = os.uname().machine
    return MACHINE_TO_DPKG.get(machine, machine.lower() or None)
