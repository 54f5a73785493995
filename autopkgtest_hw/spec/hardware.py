"""Facts about real hardware that detectors, classes and backends share.

PCI vendor ids, base classes and address forms, the kernel drivers of GPUs
and what Debian ships for them, and the device nodes that compute needs.
Each fact is written here once; nothing here reads the machine.
"""

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
#: Kernel drivers with a Vulkan driver in Debian (Mesa's radv/anv/nvk, NVIDIA's).
VULKAN_DRIVERS = GPU_DRIVERS
#: Kernel drivers of Intel GPUs that oneAPI's Level Zero (SYCL) drives.
SYCL_DRIVERS = frozenset({"i915", "xe"})
#: Drivers that hold a GPU away from the host (for passthrough): no ``gpu`` class.
PASSTHROUGH_DRIVERS = frozenset({"vfio-pci", "pci-stub"})
#: Kernel drivers of display-only devices: BMC chips (ASPEED ``ast``, Matrox
#: ``mgag200``), firmware framebuffers and the virtual VGA of hypervisors
#: (bochs, cirrus, qxl, VirtualBox, VMware, Hyper-V, a virtio GPU whose PCI
#: function ``virtio-pci`` holds).  They are recorded but belong to no class:
#: nothing a test can compute or render on (a virtio GPU's virgl/venus 3D is
#: the host's GPU, which the host, not the guest, should offer).
DISPLAY_ONLY_DRIVERS = frozenset(
    {
        "ast",
        "mgag200",
        "matroxfb",
        "simpledrm",
        "simplefb",
        "efifb",
        "vesafb",
        "bochs",
        "bochs-drm",
        "cirrus",
        "cirrus-qemu",
        "qxl",
        "vboxvideo",
        "vmwgfx",
        "hyperv_drm",
        "hyperv_fb",
        "virtio-pci",
        "virtio_gpu",
    }
)
#: Kernel drivers with an OpenCL runtime for their GPUs in Debian: ROCm's
#: rocm-opencl-icd and Mesa's rusticl (amdgpu), intel-opencl-icd (i915, xe),
#: nvidia-opencl-icd (nvidia).
OPENCL_DRIVERS = frozenset({"amdgpu", "i915", "xe", "nvidia"})
#: Kernel drivers with a hardware video runtime in Debian: Mesa's VA-API
#: drivers (amdgpu, radeon, nouveau), intel-media-va-driver (i915, xe),
#: NVIDIA's NVDEC/NVENC (nvidia).
VIDEO_DRIVERS = frozenset({"amdgpu", "radeon", "i915", "xe", "nouveau", "nvidia"})
#: Dpkg architectures where Debian's OpenCL CPU runtime (PoCL,
#: pocl-opencl-icd) is built: ``opencl:type=cpu`` holds on their CPUs.
POCL_ARCHITECTURES = frozenset(
    {"amd64", "arm64", "armhf", "i386", "ppc64el", "riscv64", "s390x", "loong64", "mips64el"}
)
#: Where the kernel tells a module's version (nvidia, AMD's amdgpu-dkms).
MODULE_VERSION = "/sys/module/{}/version"

#: AMD's compute node: every ROCm process opens it, whichever GPU it uses.
KFD_NODE = "/dev/kfd"
#: Device nodes every CUDA process needs besides the GPU's own /dev/nvidiaN.
NVIDIA_SHARED_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
#: Where Debian's dynamic loader finds libraries (multiarch first), and so where
#: libva's drivers and the ICDs' libraries are.
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/powerpc64le-linux-gnu",
    "/usr/lib/riscv64-linux-gnu",
    "/usr/lib/s390x-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/lib",
)
#: NVIDIA's MIG capability nodes (one per GPU and compute instance).
NVIDIA_CAPS_DIR = "/dev/nvidia-caps"
#: Where a GPU's or accelerator's own nodes are, and their names as shell/glob patterns:
#: NVIDIA's ``nvidiaN``, DRM's ``cardN`` and ``renderDN``, the compute accelerators'
#: ``accelN`` (``/dev/accel``).  The probe inside a testbed and the inventory cache read these.
#: A GPU's own node under /dev (NVIDIA's driver numbers them by minor).
NVIDIA_NODES = "nvidia[0-9]*"
GPU_NODE_DIRS = ("/dev", "/dev/dri", "/dev/accel")
GPU_NODE_NAMES = (NVIDIA_NODES, "card[0-9]*", "renderD[0-9]*", "accel[0-9]*")
#: Every node whose appearance, loss or permissions changes what detection finds.
GPU_NODE_PATTERNS = (
    *(f"{d}/{n}" for d in GPU_NODE_DIRS for n in GPU_NODE_NAMES),
    KFD_NODE,
    *NVIDIA_SHARED_NODES,
    f"{NVIDIA_CAPS_DIR}/*",
)
#: The NVIDIA driver's view of itself under /proc (version, GPUs, MIG capabilities).
NVIDIA_PROC = "/proc/driver/nvidia"
#: AMD's KFD topology: one directory per node, its gfx target in ``properties``.
KFD_TOPOLOGY = "/sys/class/kfd/kfd/topology"

_ADDRESS_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<dev>[0-9a-fA-F]{1,2})\.(?P<fn>[0-7])$"
)


def normalise_address(text: str) -> str | None:
    """``00000000:3B:00.0`` (NVML) or ``3b:00.0`` -> ``0000:3b:00.0``; None if not an address."""
    m = _ADDRESS_RE.match(text.strip())
    if m is None:
        return None
    return address_from_parts(
        int(m["domain"] or "0", 16), int(m["bus"], 16), int(m["dev"], 16), int(m["fn"])
    )


def address_from_parts(domain: int, bus: int, device: int, function: int) -> str:
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function:x}"


def address_from_devfn(domain: int, bus: int, devfn: int) -> str:
    """The address of a PCI ``devfn`` byte: ``(device << 3) | function``."""
    return address_from_parts(domain, bus, (devfn >> 3) & 0x1F, devfn & 7)


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


def is_pci_gpu_class(pci_class: str | None) -> bool:
    """A display controller or a processing accelerator."""
    return pci_class is not None and base_class(pci_class) in (DISPLAY_CLASS, ACCELERATOR_CLASS)
