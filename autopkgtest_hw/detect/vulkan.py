"""Vulkan devices as the Vulkan loader enumerates them, through ``vulkaninfo --summary``.

Only this detector fills ``vulkan_version`` (``vulkan:version``): the API
version a device's Vulkan driver reports.  Without vulkan-tools and a Vulkan
driver on the host, the version is unknown, never another API's.  CPU
devices (Mesa's llvmpipe) are left out: ``vulkan`` is a class of GPUs.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from autopkgtest_hw.detect.base import OK, Unavailable, detector, no_devices, plural
from autopkgtest_hw.spec.hardware import vendor_name
from autopkgtest_hw.spec.inventory import DetectorReport, Device

NAME = "vulkan"
TIMEOUT = 20  # seconds; vulkaninfo loads every ICD
MAX_OUTPUT = 1 << 20  # bytes of vulkaninfo's output read
PCI_DEVICES = "/sys/bus/pci/devices"

_GPU_RE = re.compile(r"^\s*GPU(\d+):\s*$")
_FIELD_RE = re.compile(r"^\s+(\w+)\s*=\s*(.*?)\s*$")
_VERSION_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})(?:\.\d+)?$")
#: Older vulkaninfo (1.2.x, 1.3 before about 1.3.250) prints the packed
#: VK_MAKE_API_VERSION integer, then the dotted form: ``4194459 (1.0.155)``.
_PACKED_RE = re.compile(r"^(\d{1,10})(?:\s*\((\d{1,3}\.\d{1,3}(?:\.\d+)?)\))?$")
_HEX_RE = re.compile(r"^0x([0-9a-fA-F]{1,8})$")
_CPU_TYPE = "PHYSICAL_DEVICE_TYPE_CPU"


@detector(NAME, order=40, empty=no_devices)
def detect() -> tuple[list[Device], DetectorReport]:
    exe = shutil.which("vulkaninfo")
    if exe is None:
        raise Unavailable("vulkaninfo is not installed (Debian: vulkan-tools)")
    try:
        done = subprocess.run(
            [exe, "--summary"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
            env={**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": ""},
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"vulkaninfo --summary took more than {TIMEOUT} s") from None
    text = done.stdout[:MAX_OUTPUT].decode(errors="replace")
    if done.returncode != 0:
        raise Unavailable(f"no Vulkan driver loads ({_last_error(done.stderr)})")
    found, cpus = parse_summary(text)
    placed = [_with_address(d) for d in found]
    devices = [d for d in placed if d.pci_address]
    detail = plural(len(devices), "GPU")
    if len(devices) < len(placed):
        detail += f"; {plural(len(placed) - len(devices), 'GPU')} without a unique PCI id left out"
    if cpus:
        detail += f"; {plural(cpus, 'CPU device')} (llvmpipe) left out"
    return devices, DetectorReport(NAME, OK, detail, len(devices))


def parse_summary(text: str) -> tuple[list[Device], int]:
    """The GPUs of ``vulkaninfo --summary``'s ``Devices:`` section, and how many CPUs it listed."""
    blocks: list[dict[str, str]] = []
    in_devices = False
    for line in text.splitlines():
        if line.strip() == "Devices:":
            in_devices = True
            continue
        if not in_devices:
            continue
        if _GPU_RE.match(line):
            blocks.append({})
            continue
        m = _FIELD_RE.match(line)
        if m and blocks:
            blocks[-1][m.group(1)] = m.group(2)
    devices = [_device(b) for b in blocks if b.get("deviceType") != _CPU_TYPE]
    return devices, sum(1 for b in blocks if b.get("deviceType") == _CPU_TYPE)


def _device(fields: dict[str, str]) -> Device:
    vendor_id = _hex(fields.get("vendorID"))
    device_id = _hex(fields.get("deviceID"))
    version = api_version(fields.get("apiVersion", ""))
    pci_id = None
    if vendor_id is not None and device_id is not None and vendor_id <= 0xFFFF:
        pci_id = f"{vendor_id:04x}:{device_id:04x}"
    return Device(
        vendor=vendor_name(vendor_id) if vendor_id is not None and vendor_id <= 0xFFFF else None,
        model=fields.get("deviceName", "")[:200] or None,
        pci_id=pci_id,
        vulkan_version=version,
        sources=(NAME,),
    )


def api_version(text: str) -> str | None:
    """``major.minor`` of an apiVersion as any vulkaninfo prints it; None if unreadable.

    ``1.3.230`` (vulkan-tools 1.3.250 and later), ``4206834 (1.3.242)`` and a
    bare packed ``4194459`` (older releases) all read.
    """
    text = text.strip()
    m = _VERSION_RE.match(text)
    if m:
        return f"{int(m.group(1))}.{int(m.group(2))}"
    p = _PACKED_RE.match(text)
    if p is None:
        return None
    if p.group(2):
        return api_version(p.group(2))
    packed = int(p.group(1))
    if packed >= 1 << 32:
        return None
    major, minor = (packed >> 22) & 0x7F, (packed >> 12) & 0x3FF
    return f"{major}.{minor}" if major else None


def _with_address(d: Device, root: str = PCI_DEVICES) -> Device:
    """The PCI address of the one PCI device with this vendor:device id, if exactly one has it.

    ``--summary`` gives no bus address; two identical GPUs stay without one (and
    their Vulkan version unknown on the merged device), which is safe.
    """
    if d.pci_id is None:
        return d
    found = [
        os.path.basename(path)
        for path in sorted(glob.glob(os.path.join(root, "*")))
        if _pci_id_of(path) == d.pci_id
    ]
    if len(found) != 1:
        return d
    from dataclasses import replace

    return replace(d, pci_address=found[0])


def _pci_id_of(path: str) -> str | None:
    try:
        with open(os.path.join(path, "vendor"), encoding="ascii") as f:
            vendor = f.read(16).strip()
        with open(os.path.join(path, "device"), encoding="ascii") as f:
            device = f.read(16).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return f"{vendor.removeprefix('0x')}:{device.removeprefix('0x')}".lower()


def _hex(text: str | None) -> int | None:
    m = _HEX_RE.match(text or "")
    return int(m.group(1), 16) if m else None


def _last_error(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "failed" in ln]
    text = (errors or lines or ["vulkaninfo failed"])[-1]
    return text[:200]
