"""PCI facts shared by the detectors: addresses, vendors, classes."""

from __future__ import annotations

import re

#: PCI vendor id -> the vendor word of the spec language.
PCI_VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel"}

#: PCI base classes of compute devices: display controllers and processing accelerators.
DISPLAY_CLASS = 0x03
ACCELERATOR_CLASS = 0x12

#: Kernel drivers of GPUs.  A processing accelerator (class 0x12, e.g. an
#: Instinct MI300X) counts as a GPU only when one of these drives it.
GPU_DRIVERS = frozenset({"amdgpu", "radeon", "i915", "xe", "nouveau", "nvidia"})

_ADDRESS_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<dev>[0-9a-fA-F]{1,2})\.(?P<fn>[0-7])$"
)


def normalise_address(text: str) -> str | None:
    """``00000000:3B:00.0`` (NVML) or ``3b:00.0`` -> ``0000:3b:00.0``; None if not an address."""
    m = _ADDRESS_RE.match(text.strip())
    if m is None:
        return None
    domain = int(m["domain"] or "0", 16)
    return f"{domain:04x}:{int(m['bus'], 16):02x}:{int(m['dev'], 16):02x}.{m['fn']}"


def address_from_parts(domain: int, bus: int, device: int, function: int) -> str:
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function:x}"


def vendor_name(vendor_id: str | int) -> str:
    """The vendor word for a PCI vendor id (``0x10de``, ``10DE`` or 4318)."""
    if isinstance(vendor_id, int):
        hex_id = f"{vendor_id:04x}"
    else:
        hex_id = vendor_id.lower().removeprefix("0x").rjust(4, "0")
    return PCI_VENDORS.get(hex_id, hex_id)


def base_class(pci_class: str) -> int | None:
    """The base class of ``0x030200`` or udev's ``30200``; None if unreadable."""
    try:
        return int(pci_class, 16) >> 16
    except ValueError:
        return None
