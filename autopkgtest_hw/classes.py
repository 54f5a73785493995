"""The hardware classes of the spec language and the keys that read them: one entry each.

A class is its name, how messages name it, the detectors that inform it and
how a device qualifies for it.  A key is its value type, the classes it
applies to and how it reads a device or the CPU.  The spec parser, the
matcher, the inventory and the detectors' merge all look here, so adding a
class (``video``, ``level-zero``) is one entry below plus the detector that
sees its devices (docs/design.md, "Recipe: add a hardware class").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .hardware import KFD_NODE, PASSTHROUGH_DRIVERS, SYCL_DRIVERS, VULKAN_DRIVERS, is_pci_gpu_class

if TYPE_CHECKING:
    from .inventory import Cpu, Device

#: Value types of keys: how a value is checked when parsed and compared when matched.
STRING = "string"  # '*' globs, '=' and '!=' only
SIZE = "size"  # 16G
INT = "int"
VERSION = "version"  # 8.0, compared component-wise
CHOICE = "type"  # one of the key's ``choices``
KINDS = (STRING, SIZE, INT, VERSION, CHOICE)

#: Arch families a bare word can name: ``sm_90`` (CUDA), ``gfx90a`` (ROCm).
CUDA_ARCH = "cuda"
ROCM_ARCH = "rocm"


@dataclass(frozen=True)
class HwClass:
    """One class of the spec language (``cuda`` in ``needs-hw:cuda:cc>=8.0``)."""

    name: str
    display: str  # how messages name it: "CUDA" (in "no CUDA device")
    #: The detectors whose devices inform it: when one is unavailable, a
    #: missing device may only be unseen, and the verdict says so.
    detectors: tuple[str, ...]
    #: Whether a device is of this class; None for the machine itself (``cpu``).
    qualifies: Callable[[Device], bool] | None = None
    #: Bare words are feature flags (CPU flags, OpenCL extensions).
    features: bool = False
    #: Arch families whose bare words (``sm_90``, ``gfx90a``) this class accepts.
    arch_words: tuple[str, ...] = ()

    @property
    def is_machine(self) -> bool:
        """The class of the machine itself: always present, read from the CPU."""
        return self.qualifies is None


def _usable_gpu(d: Device) -> bool:
    """A PCI GPU with a driver that is not holding it for passthrough, or NVML's."""
    bound = d.driver is not None and d.driver not in PASSTHROUGH_DRIVERS
    return (is_pci_gpu_class(d.pci_class) and bound) or "nvml" in d.sources


def _rocm(d: Device) -> bool:
    return d.vendor == "amd" and KFD_NODE in d.device_nodes and (d.arch or "").startswith("gfx")


#: Every class, in the order messages and inventories list them.
CLASSES: tuple[HwClass, ...] = (
    HwClass("cpu", "CPU", ("cpu",), features=True),
    HwClass("gpu", "GPU", ("udev",), _usable_gpu, arch_words=(CUDA_ARCH, ROCM_ARCH)),
    HwClass("cuda", "CUDA", ("nvml",), lambda d: "nvml" in d.sources, arch_words=(CUDA_ARCH,)),
    HwClass("rocm", "ROCm", ("udev",), _rocm, arch_words=(ROCM_ARCH,)),
    HwClass("opencl", "OpenCL", ("opencl",), lambda d: "opencl" in d.sources, features=True),
    HwClass("sycl", "SYCL", ("udev",), lambda d: d.vendor == "intel" and d.driver in SYCL_DRIVERS),
    HwClass("vulkan", "Vulkan", ("udev",), lambda d: _usable_gpu(d) and d.driver in VULKAN_DRIVERS),
)
BY_NAME: Mapping[str, HwClass] = {c.name: c for c in CLASSES}
#: Every class name, then those a device can have (all but the machine's).
NAMES = tuple(c.name for c in CLASSES)
DEVICE_CLASSES = tuple(c.name for c in CLASSES if not c.is_machine)

#: A key's scope: every class, or every class a device can have.
ALL = "all"
DEVICES = "devices"


@dataclass(frozen=True)
class Key:
    """One ``key op value`` key and how it reads a device or the CPU."""

    name: str
    kind: str  # one of KINDS
    scope: str | tuple[str, ...]  # ALL, DEVICES or class names
    device: Callable[[Device], object] | None = None
    cpu: Callable[[Cpu], object] | None = None
    #: For CHOICE keys: the allowed values, ``any`` meaning every one.
    choices: tuple[str, ...] = ()
    #: The values assumed when a spec does not name the key, and how messages say them.
    default: tuple[str, ...] = ()
    default_text: str = ""

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes this key applies to, in class order."""
        if self.scope == ALL:
            return NAMES
        if self.scope == DEVICES:
            return DEVICE_CLASSES
        return tuple(n for n in NAMES if n in self.scope)

    def applies(self, cls: str) -> bool:
        return cls in self.classes

    def read(self, device: Device | None, cpu: Cpu | None) -> object:
        """The key's value on a device or the CPU; None where it has none."""
        if cpu is not None:
            return self.cpu(cpu) if self.cpu else None
        if device is not None and self.device is not None:
            return self.device(device)
        return None


#: The count of fitting devices; it reads no device.
COUNT = "count"
#: The OpenCL device type: a choice with a default (GPUs and accelerators).
ANY = "any"

KEYS: Mapping[str, Key] = {
    k.name: k
    for k in (
        Key("vendor", STRING, ALL, lambda d: d.vendor, lambda c: c.vendor),
        Key("model", STRING, ALL, lambda d: d.model, lambda c: c.model),
        Key("pci", STRING, DEVICES, lambda d: d.pci_id),
        Key("mem", SIZE, ALL, lambda d: d.memory, lambda c: c.memory),
        Key(COUNT, INT, ALL),
        Key("driver", VERSION, DEVICES, lambda d: d.driver_version),
        Key("arch", STRING, ("cuda", "rocm", "cpu", "gpu"), lambda d: d.arch, lambda c: c.arch),
        Key("cc", VERSION, ("cuda",), lambda d: d.compute_capability),
        Key("cuda", VERSION, ("cuda",), lambda d: d.cuda_version),
        Key("version", VERSION, ("opencl", "vulkan"), lambda d: d.opencl_version),
        Key(
            "type",
            CHOICE,
            ("opencl",),
            lambda d: d.opencl_type,
            choices=("gpu", "cpu", "accelerator", ANY),
            default=("gpu", "accelerator"),
            default_text="GPU or accelerator",
        ),
        Key("cores", INT, ("cpu",), cpu=lambda c: c.cores),
    )
}


def get(name: str) -> HwClass:
    """The class called ``name`` (KeyError if there is none)."""
    return BY_NAME[name]


def defaulted_keys(cls: str) -> tuple[Key, ...]:
    """The keys of ``cls`` that hold a default when a spec does not name them."""
    return tuple(k for k in KEYS.values() if k.default and k.applies(cls))
