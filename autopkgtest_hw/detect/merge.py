"""Merge what several detectors saw into one device per GPU, then give each its classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from ..inventory import DEVICE_CLASSES, Device
from .pci import ACCELERATOR_CLASS, DISPLAY_CLASS, base_class

#: For each field, the detector whose word wins when several know it.  NVML's
#: names are marketing names ("NVIDIA H100 PCIe"); udev's database has chip
#: names ("GH100 [H100 PCIe]").  The bound driver is udev's to tell.
PRIORITY: dict[str, tuple[str, ...]] = {
    "model": ("nvml", "udev", "opencl"),
    "driver": ("udev", "nvml", "opencl"),
    "memory": ("nvml", "udev", "opencl"),
}
DEFAULT_PRIORITY = ("udev", "nvml", "opencl")
_UNION_FIELDS = ("device_nodes", "sources", "opencl_extensions")

#: Drivers that hold a GPU away from the host (for passthrough): no ``gpu`` class.
PASSTHROUGH_DRIVERS = frozenset({"vfio-pci", "pci-stub"})
#: Kernel drivers with a Vulkan driver in Debian (Mesa's radv/anv/nvk, NVIDIA's).
VULKAN_DRIVERS = frozenset({"amdgpu", "radeon", "i915", "xe", "nouveau", "nvidia"})
SYCL_DRIVERS = frozenset({"i915", "xe"})


def merge(groups: Sequence[Iterable[Device]]) -> list[Device]:
    """One device per PCI address; devices without one stay as they are.

    ``groups`` holds each detector's devices.  An OpenCL GPU without a PCI
    address joins the one GPU of its vendor when that pairing is unambiguous.
    """
    by_address: dict[str, list[Device]] = {}
    loose: list[Device] = []
    for devices in groups:
        for d in devices:
            if d.pci_address:
                by_address.setdefault(d.pci_address, []).append(d)
            else:
                loose.append(d)
    loose = _pair_by_vendor(by_address, loose)
    merged = [_combine(parts) for parts in by_address.values()]
    merged.sort(key=_order)
    return [*merged, *loose]


def classify(d: Device) -> Device:
    return dataclasses.replace(d, classes=tuple(c for c in DEVICE_CLASSES if _has_class(d, c)))


def _has_class(d: Device, cls: str) -> bool:
    usable_gpu = _is_pci_gpu(d) and d.driver is not None and d.driver not in PASSTHROUGH_DRIVERS
    if cls == "gpu":
        # NVML only sees GPUs that the nvidia driver drives.
        return usable_gpu or "nvml" in d.sources
    if cls == "cuda":
        return "nvml" in d.sources
    if cls == "rocm":
        return (
            d.vendor == "amd" and "/dev/kfd" in d.device_nodes and (d.arch or "").startswith("gfx")
        )
    if cls == "opencl":
        return "opencl" in d.sources
    if cls == "sycl":
        return d.vendor == "intel" and d.driver in SYCL_DRIVERS
    if cls == "vulkan":
        return (usable_gpu or "nvml" in d.sources) and d.driver in VULKAN_DRIVERS
    return False


def _is_pci_gpu(d: Device) -> bool:
    if d.pci_class is None:
        return False
    return base_class(d.pci_class) in (DISPLAY_CLASS, ACCELERATOR_CLASS)


def _combine(parts: list[Device]) -> Device:
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda p: _rank(p, DEFAULT_PRIORITY))  # the same result in any order
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Device):
        if f.name == "classes":
            continue
        if f.name in _UNION_FIELDS:
            values[f.name] = tuple(dict.fromkeys(v for p in parts for v in getattr(p, f.name)))
            continue
        order = PRIORITY.get(f.name, DEFAULT_PRIORITY)
        for p in sorted(parts, key=lambda p: _rank(p, order)):
            value = getattr(p, f.name)
            if value is not None:
                values[f.name] = value
                break
    return Device(**values)


def _rank(d: Device, order: tuple[str, ...]) -> int:
    source = d.sources[0] if d.sources else ""
    return order.index(source) if source in order else len(order)


def _pair_by_vendor(by_address: dict[str, list[Device]], loose: list[Device]) -> list[Device]:
    remaining = []
    for d in loose:
        if d.opencl_type in ("gpu", "accelerator") and d.vendor:
            same_vendor = [a for a, parts in by_address.items() if parts[0].vendor == d.vendor]
            rivals = [o for o in loose if o.vendor == d.vendor and o.opencl_type == d.opencl_type]
            if len(same_vendor) == 1 and len(rivals) == 1:
                address = same_vendor[0]
                by_address[address].append(dataclasses.replace(d, pci_address=address))
                continue
        remaining.append(d)
    return remaining


def _order(d: Device) -> str:
    return d.pci_address or ""
