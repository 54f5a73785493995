"""Devices and adapters the backend tests share: an NVIDIA and an AMD GPU on fixture hosts."""

from __future__ import annotations

from pathlib import Path

from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.virt.backends import Backend, HostPaths, kind_of

DATA = Path(__file__).resolve().parent.parent / "data"
UNSHARE_528 = "/usr/bin/autopkgtest-virt-unshare"


def nvidia(nodes: tuple[str, ...], index: int = 0, address: str = "0000:65:00.0") -> Device:
    return Device(
        classes=("gpu", "cuda"),
        vendor="nvidia",
        model="NVIDIA H100 PCIe",
        pci_address=address,
        pci_id="10de:2331",
        pci_class="0x030200",
        driver="nvidia",
        device_nodes=nodes,
        uuid=f"GPU-1111111{index}-2222-3333-4444-555555555555",
        index=index,
        sources=("udev", "nvml"),
    )


def amd(nodes: tuple[str, ...], address: str = "0000:03:00.0") -> Device:
    return Device(
        classes=("gpu", "rocm"),
        vendor="amd",
        model="Instinct MI210",
        pci_address=address,
        pci_id="1002:740f",
        pci_class="0x038000",
        arch="gfx90a",
        driver="amdgpu",
        device_nodes=nodes,
        sources=("udev",),
    )


def make(
    cls: type[Backend], server: str, *devices: Device, paths: HostPaths | None = None
) -> Backend:
    return cls(kind_of(server), server, Inventory(devices=devices), paths or HostPaths())
