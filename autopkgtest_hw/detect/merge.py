"""Merge what several detectors saw into one device per GPU, then give each its classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from autopkgtest_hw.detect.base import registered
from autopkgtest_hw.spec import classes as hw
from autopkgtest_hw.spec.inventory import Device

#: Lists that several detectors add to (VA-API and NVML both tell encoders).
_UNION_FIELDS = (
    "device_nodes",
    "sources",
    "opencl_extensions",
    "video_decode",
    "video_encode",
    "video_known",
)


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
    """``d`` with every class it qualifies for (classes.py says how), in class order."""
    return dataclasses.replace(d, classes=hw.classes_of(d))


def priority(field: str) -> tuple[str, ...]:
    """The detectors in the order their word wins for ``field``.

    Those that declared the field ``trusted`` first, then the rest in run
    order: NVML's names are marketing names ("NVIDIA H100 PCIe") where udev's
    database has chip names ("GH100 [H100 PCIe]"); the bound driver is udev's.
    """
    return tuple(d.name for d in sorted(registered(), key=lambda d: field not in d.trusted))


def _combine(parts: list[Device]) -> Device:
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda p: _rank(p, priority("")))  # the same result in any order
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Device):
        if f.name == "classes":
            continue
        if f.name in _UNION_FIELDS:
            values[f.name] = tuple(dict.fromkeys(v for p in parts for v in getattr(p, f.name)))
            continue
        order = priority(f.name)
        for p in sorted(parts, key=lambda p: _rank(p, order)):
            value = getattr(p, f.name)
            if value is not None and value != ():
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
