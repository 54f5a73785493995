"""OpenCL devices that the host's ICDs enumerate, through pyopencl."""

from __future__ import annotations

import re
from typing import Any

from autopkgtest_hw.detect.base import (
    OK,
    Inputs,
    Unavailable,
    detector,
    no_devices,
    one_line,
    optional_module,
    plural,
)
from autopkgtest_hw.spec.hardware import (
    GPU_NODE_PATTERNS,
    PCI_VENDORS,
    address_from_devfn,
    address_from_parts,
    vendor_name,
)
from autopkgtest_hw.spec.inventory import DetectorReport, Device

NAME = "opencl"

_VERSION_RE = re.compile(r"OpenCL\s+(\d+\.\d+)")
_GFX_RE = re.compile(r"^(gfx[0-9a-f]{3,5})\b")
#: Words of a vendor string -> the vendor word (CPU devices report the CPU's vendor).
_VENDOR_WORDS = (
    ("nvidia", "nvidia"),
    ("advanced micro devices", "amd"),
    ("authenticamd", "amd"),
    ("amd", "amd"),
    ("intel", "intel"),
    ("genuineintel", "intel"),
)


@detector(
    NAME,
    order=30,
    empty=no_devices,
    inputs=Inputs(
        libraries=("libOpenCL.so.1",),
        modules=("pyopencl",),
        env=(
            "OCL_ICD_*",
            "OPENCL_VENDOR_PATH",
            "POCL_*",
            "ROCR_*",
            "HIP_*",
            "GPU_DEVICE_ORDINAL",
            "CUDA_VISIBLE_DEVICES",
        ),
        paths=("/etc/OpenCL/vendors", "$OCL_ICD_VENDORS", "$OPENCL_VENDOR_PATH"),
        nodes=GPU_NODE_PATTERNS,
    ),
)
def detect() -> tuple[list[Device], DetectorReport]:
    cl = optional_module("pyopencl", "pyopencl is not installed")
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        if _code(exc) == cl.status_code.PLATFORM_NOT_FOUND_KHR:
            raise Unavailable("no OpenCL platform (no ICD installed or none loads)") from None
        raise
    devices: list[Device] = []
    problems = []
    for platform in platforms:
        try:
            found = platform.get_devices()
        except cl.Error as exc:  # one broken ICD must not hide the others
            problems.append(f"{platform.name}: {one_line(exc)}")
            continue
        devices += [_device(cl, platform, d) for d in found]
    detail = f"{plural(len(devices), 'device')} on {plural(len(platforms), 'platform')}"
    if problems:
        detail += "; " + "; ".join(problems)
    return devices, DetectorReport(NAME, OK, detail, len(devices))


def _device(cl: Any, platform: Any, d: Any) -> Device:
    extensions = tuple(d.extensions.split())
    kind = device_type(cl, d.type)
    vendor = _vendor(d, kind)
    model = d.name.strip()
    arch = cc = None
    if "cl_amd_device_attribute_query" in extensions:
        board = _info(cl, d, "BOARD_NAME_AMD")
        gfx = _GFX_RE.match(model)
        if gfx:
            arch = gfx.group(1)
        if board:
            model = str(board).strip()
    if "cl_nv_device_attribute_query" in extensions:
        major = _info(cl, d, "COMPUTE_CAPABILITY_MAJOR_NV")
        minor = _info(cl, d, "COMPUTE_CAPABILITY_MINOR_NV")
        if major is not None and minor is not None:
            cc, arch = f"{major}.{minor}", f"sm_{major}{minor}"
    return Device(
        vendor=vendor,
        model=model,
        pci_address=pci_address(cl, d, extensions),
        memory=int(d.global_mem_size),
        arch=arch,
        compute_capability=cc,
        opencl_version=opencl_version(d.version),
        opencl_type=kind,
        opencl_platform=platform.name.strip(),
        opencl_extensions=extensions,
        sources=(NAME,),
    )


def device_type(cl: Any, bits: int) -> str:
    """One word for OpenCL's type bit set.

    A device that says it is a CPU runs on the host, whatever else it claims
    (Oclgrind claims CPU|GPU|ACCELERATOR): it never counts as a GPU.
    """
    if bits & cl.device_type.CPU:
        return "cpu"
    if bits & cl.device_type.GPU:
        return "gpu"
    return "accelerator"


def opencl_version(text: str) -> str | None:
    """``OpenCL 3.0 PoCL HSTR: ...`` -> ``3.0``."""
    m = _VERSION_RE.search(text)
    return m.group(1) if m else None


def pci_address(cl: Any, d: Any, extensions: tuple[str, ...]) -> str | None:
    """From NVIDIA's or AMD's vendor attributes; OpenCL itself has none in pyopencl."""
    if "cl_nv_device_attribute_query" in extensions:
        domain = _info(cl, d, "PCI_DOMAIN_ID_NV")
        bus = _info(cl, d, "PCI_BUS_ID_NV")
        slot = _info(cl, d, "PCI_SLOT_ID_NV")  # (device << 3) | function
        if bus is not None and slot is not None:
            return address_from_devfn(int(domain or 0), int(bus), int(slot))
    if "cl_amd_device_attribute_query" in extensions:
        topo = _info(cl, d, "TOPOLOGY_AMD")
        if topo is not None:
            return address_from_parts(0, int(topo.bus), int(topo.device), int(topo.function))
    return None


def _vendor(d: Any, kind: str) -> str:
    # A GPU's vendor_id is its PCI vendor id; a CPU device's may be anything
    # (PoCL says 0x8086 on an AMD CPU), so trust its vendor string instead.
    if kind != "cpu":
        hex_id = f"{int(d.vendor_id):04x}"
        if hex_id in PCI_VENDORS:
            return vendor_name(hex_id)
    text = d.vendor.strip().lower()
    for word, vendor in _VENDOR_WORDS:
        if word in text:
            return vendor
    return text.split()[0] if text else "unknown"


def _info(cl: Any, d: Any, name: str) -> Any:
    param = getattr(cl.device_info, name, None)
    if param is None:
        return None
    try:
        return d.get_info(param)
    except cl.Error:
        return None


def _code(exc: Exception) -> Any:
    try:
        return exc.code  # type: ignore[attr-defined]
    except (AttributeError, IndexError):
        return None
