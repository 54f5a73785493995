"""GPUs on the PCI bus as udev sees them (pyudev), with their device nodes.

Reads PCI display controllers (and processing accelerators that a GPU driver
drives), their DRM nodes, the NVIDIA driver's nodes, ``/dev/kfd`` with the KFD
topology (gfx targets), IOMMU groups and NUMA nodes.
"""

from __future__ import annotations

import os
import re
from typing import Any

from autopkgtest_hw.detect import kfd
from autopkgtest_hw.detect.base import (
    OK,
    Inputs,
    Unavailable,
    detector,
    no_devices,
    optional_module,
    plural,
)
from autopkgtest_hw.spec.hardware import (
    ACCELERATOR_CLASS,
    DISPLAY_CLASS,
    GPU_DRIVERS,
    GPU_NODE_PATTERNS,
    KFD_NODE,
    KFD_TOPOLOGY,
    MODULE_VERSION,
    NVIDIA_PROC,
    NVIDIA_SHARED_NODES,
    base_class,
    vendor_name,
)
from autopkgtest_hw.spec.inventory import DetectorReport, Device

NAME = "udev"

#: The udev hardware database (PCI ids to names).
HWDB = ("/etc/udev/hwdb.bin", "/usr/lib/udev/hwdb.bin", "/lib/udev/hwdb.bin")
_NVIDIA_INFO = "/proc/driver/nvidia/gpus/{}/information"
_MINOR_RE = re.compile(r"^Device Minor:\s*(\d+)", re.MULTILINE)
_MODULE_VERSION_RE = re.compile(r"^\d+(?:[.\-+~]\w+)*$")


#: The bound driver is the kernel's word, which udev tells.
@detector(
    NAME,
    order=10,
    empty=no_devices,
    trusted=("driver",),
    inputs=Inputs(
        libraries=("libudev.so.1",),
        modules=("pyudev",),
        env=("UMOCKDEV_DIR",),
        paths=(
            *HWDB,
            f"{NVIDIA_PROC}/gpus/*/information",
            f"{KFD_TOPOLOGY}/generation_id",
            f"{KFD_TOPOLOGY}/nodes/*/properties",
        ),
        nodes=GPU_NODE_PATTERNS,
    ),
)
def detect() -> tuple[list[Device], DetectorReport]:
    pyudev = optional_module("pyudev", "pyudev is not installed")
    try:
        context = pyudev.Context()
    except ImportError as exc:  # pyudev loads libudev.so.1 here, not at import
        raise Unavailable(f"libudev cannot be loaded: {exc}") from None

    gpus = sorted(
        (d for d in context.list_devices(subsystem="pci") if _is_gpu(d)),
        key=lambda d: str(d.sys_name),
    )
    drm = _drm_nodes(context)
    kfd_nodes = kfd.read_topology()
    have_kfd = os.path.exists(KFD_NODE)
    nvidia = [str(d.sys_name) for d in gpus if _driver(d) == "nvidia"]

    devices = []
    for dev in gpus:
        address = str(dev.sys_name)
        nodes = list(drm.get(address, ()))
        gfx = _gfx_for(address, nodes, kfd_nodes)
        if gfx is not None and have_kfd:
            nodes.append(KFD_NODE)
        if address in nvidia:
            nodes += _nvidia_nodes(address, nvidia.index(address))
        devices.append(_device(dev, gfx, tuple(nodes)))
    return devices, DetectorReport(NAME, OK, plural(len(devices), "GPU"), len(devices))


def _device(dev: Any, gfx: str | None, nodes: tuple[str, ...]) -> Device:
    props = dev.properties
    pci_id = (props.get("PCI_ID") or "").lower() or None
    pci_class = props.get("PCI_CLASS")
    driver = _driver(dev)
    return Device(
        vendor=vendor_name(pci_id.split(":")[0]) if pci_id else None,
        model=props.get("ID_MODEL_FROM_DATABASE"),
        pci_address=str(dev.sys_name),
        pci_id=pci_id,
        pci_class=f"0x{int(pci_class, 16):06x}" if pci_class else None,
        memory=_int_attribute(dev, "mem_info_vram_total"),
        arch=gfx,
        driver=driver,
        driver_version=module_version(driver) if driver else None,
        device_nodes=nodes,
        iommu_group=_iommu_group(dev),
        numa_node=_numa_node(dev),
        sources=(NAME,),
    )


def _is_gpu(dev: Any) -> bool:
    cls = base_class(dev.properties.get("PCI_CLASS") or "")
    if cls == DISPLAY_CLASS:
        return True
    return cls == ACCELERATOR_CLASS and _driver(dev) in GPU_DRIVERS


def _driver(dev: Any) -> str | None:
    driver = dev.driver or dev.properties.get("DRIVER")
    return str(driver) if driver else None


def _drm_nodes(context: Any) -> dict[str, list[str]]:
    """PCI address -> its own ``card*`` and ``renderD*`` nodes (connectors have no node)."""
    out: dict[str, list[str]] = {}
    for dev in context.list_devices(subsystem="drm"):
        name = str(dev.sys_name)
        if dev.device_node is None or not name.startswith(("card", "renderD")):
            continue
        parent = dev.find_parent("pci")
        if parent is not None:
            out.setdefault(str(parent.sys_name), []).append(str(dev.device_node))
    for nodes in out.values():
        nodes.sort(key=lambda n: (not os.path.basename(n).startswith("card"), n))
    return out


def _gfx_for(address: str, drm_nodes: list[str], nodes: list[kfd.KfdNode]) -> str | None:
    """The KFD node of this GPU: by its render node, else by its PCI location."""
    for node in nodes:
        if node.render_minor is not None and f"/dev/dri/renderD{node.render_minor}" in drm_nodes:
            return node.gfx
    for node in nodes:
        if node.pci_address == address:
            return node.gfx
    return None


def _nvidia_nodes(address: str, position: int) -> list[str]:
    """``/dev/nvidiaN`` of this GPU and the driver's shared nodes, those that exist.

    The driver tells the minor number in /proc; without it, minors follow PCI order.
    """
    minor = position
    try:
        with open(_NVIDIA_INFO.format(address), encoding="utf-8") as f:
            m = _MINOR_RE.search(f.read())
        if m:
            minor = int(m.group(1))
    except OSError:
        pass
    wanted = (f"/dev/nvidia{minor}", *NVIDIA_SHARED_NODES)
    return [n for n in wanted if os.path.exists(n)]


def module_version(module: str, pattern: str = MODULE_VERSION) -> str | None:
    """The version the kernel module tells in /sys/module/<module>/version, if it tells one.

    The nvidia module does (``550.54.15``), as does AMD's amdgpu-dkms; Debian's
    in-tree amdgpu, i915, xe and nouveau do not.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", module):
        return None
    try:
        with open(pattern.format(module.replace("-", "_")), encoding="ascii") as f:
            text = f.read(65).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) <= 64 and _MODULE_VERSION_RE.match(text) else None


def _iommu_group(dev: Any) -> str | None:
    link = os.path.join(dev.sys_path, "iommu_group")
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return None


def _numa_node(dev: Any) -> int | None:
    node = _int_attribute(dev, "numa_node")
    return node if node is not None and node >= 0 else None


def _int_attribute(dev: Any, name: str) -> int | None:
    try:
        return int(dev.attributes.asstring(name).strip())
    except (KeyError, ValueError, OSError):
        return None
