"""The hardware classes of the spec language and the keys that read them: one entry each.

A class is its name, how messages name it, the detectors that inform it and
how a device qualifies for it.  A key is its value type, the classes it
applies to and how it reads a device or the CPU.  The spec parser, the
matcher, the inventory and the detectors' merge all look here, so adding a
class (``video``, ``level-zero``) is one entry below plus the detector that
sees its devices (docs/design.md, "Recipe: add a hardware class").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autopkgtest_hw.spec.hardware import (
    DISPLAY_ONLY_DRIVERS,
    GPU_DRIVERS,
    KFD_NODE,
    OPENCL_DRIVERS,
    PASSTHROUGH_DRIVERS,
    SYCL_DRIVERS,
    VIDEO_DRIVERS,
    VULKAN_DRIVERS,
    is_pci_gpu_class,
)

if TYPE_CHECKING:
    from autopkgtest_hw.spec.inventory import Cpu, Device

#: Value types of keys: how a value is checked when parsed and compared when matched.
STRING = "string"  # '*' globs, '=' and '!=' only
SIZE = "size"  # 16G
INT = "int"
VERSION = "version"  # 8.0, compared component-wise
CHOICE = "type"  # one of the key's ``choices``
SET = "set"  # the device has a set (video codecs): '=' any of the values is in it, '!=' none
KINDS = (STRING, SIZE, INT, VERSION, CHOICE, SET)

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
    """A PCI GPU with a rendering or compute driver bound, or NVML's.

    Not one held for passthrough (vfio-pci), not a display-only chip (a BMC's
    ``ast``, a hypervisor's virtual VGA): those are recorded, in no class.
    Where no PCI class was recorded (an inventory saved by an older version,
    or written by hand), a GPU kernel driver bound to it says it is a GPU.
    """
    bound = (
        d.driver is not None
        and d.driver not in PASSTHROUGH_DRIVERS
        and d.driver not in DISPLAY_ONLY_DRIVERS
    )
    return (is_pci_gpu_class(d.pci_class) and bound) or gpu_by_driver(d) or "nvml" in d.sources


def gpu_by_driver(d: Device) -> bool:
    """No PCI class recorded, but a GPU kernel driver bound: a GPU, inferred from the driver."""
    return d.pci_class is None and d.driver in GPU_DRIVERS


def _rocm(d: Device) -> bool:
    return d.vendor == "amd" and KFD_NODE in d.device_nodes and (d.arch or "").startswith("gfx")


def _opencl(d: Device) -> bool:
    """An OpenCL ICD lists it, or a GPU whose kernel driver has an OpenCL runtime in Debian."""
    return "opencl" in d.sources or (_usable_gpu(d) and d.driver in OPENCL_DRIVERS)


def opencl_type(d: Device) -> str | None:
    """The OpenCL device type: the ICD's word, else ``gpu`` for a GPU the class admits by driver."""
    if d.opencl_type:
        return d.opencl_type
    return "gpu" if _usable_gpu(d) and d.driver in OPENCL_DRIVERS else None


def _video(d: Device) -> bool:
    return "vaapi" in d.sources or (_usable_gpu(d) and d.driver in VIDEO_DRIVERS)


#: Every class, in the order messages and inventories list them.
CLASSES: tuple[HwClass, ...] = (
    HwClass("cpu", "CPU", ("cpu",), features=True),
    HwClass("gpu", "GPU", ("udev",), _usable_gpu, arch_words=(CUDA_ARCH, ROCM_ARCH)),
    HwClass("cuda", "CUDA", ("nvml",), lambda d: "nvml" in d.sources, arch_words=(CUDA_ARCH,)),
    HwClass("rocm", "ROCm", ("udev",), _rocm, arch_words=(ROCM_ARCH,)),
    HwClass("opencl", "OpenCL", ("udev", "opencl"), _opencl, features=True),
    HwClass("sycl", "SYCL", ("udev",), lambda d: d.vendor == "intel" and d.driver in SYCL_DRIVERS),
    HwClass(
        "vulkan",
        "Vulkan",
        ("udev", "vulkan"),
        lambda d: _usable_gpu(d) and d.driver in VULKAN_DRIVERS,
    ),
    HwClass("video", "video", ("udev", "vaapi", "nvml"), _video),
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
    #: For CHOICE and SET keys: the allowed values (``any`` meaning every one for CHOICE).
    choices: tuple[str, ...] = ()
    #: The values assumed when a spec does not name the key, and how messages say them.
    default: tuple[str, ...] = ()
    default_text: str = ""
    #: Classes where the key reads another field than ``device`` does:
    #: ``version`` is OpenCL's version for ``opencl``, Vulkan's for ``vulkan``.
    by_class: tuple[tuple[str, Callable[[Device], object]], ...] = ()
    #: Class -> why no detector answers the key there (``lint`` warns; the
    #: matcher reads the value as unknown).
    unanswered: tuple[tuple[str, str], ...] = ()
    #: Class -> what to install on the host to make an unknown value known
    #: (only a user-space runtime can tell it); "" for every class.
    to_know: tuple[tuple[str, str], ...] = ()

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes this key applies to, in class order."""
        if self.scope == ALL:
            return NAMES
        if self.scope == DEVICES:
            return DEVICE_CLASSES
        return tuple(n for n in NAMES if n in self.scope)

    def applies(self, cls: str) -> bool:
        return cls in _applies(self.scope)

    def reader(self, cls: str) -> Callable[[Device], object] | None:
        """How the key reads a device of class ``cls``."""
        for name, fn in self.by_class:
            if name == cls:
                return fn
        return self.device

    def read(self, device: Device | None, cpu: Cpu | None, cls: str = "") -> object:
        """The key's value on a device or the CPU; None where it has none (unknown)."""
        if cpu is not None:
            return self.cpu(cpu) if self.cpu else None
        fn = self.reader(cls)
        if device is not None and fn is not None:
            return fn(device)
        return None

    def why_unanswered(self, cls: str) -> str | None:
        """Why no detector answers this key on class ``cls``, or None."""
        return dict(self.unanswered).get(cls)

    def how_to_know(self, cls: str) -> str | None:
        """What to install on the host so that an unknown value becomes known."""
        hints = dict(self.to_know)
        return hints.get(cls) or hints.get("")


@functools.lru_cache(maxsize=64)
def _applies(scope: str | tuple[str, ...]) -> frozenset[str]:
    if scope == ALL:
        return frozenset(NAMES)
    if scope == DEVICES:
        return frozenset(DEVICE_CLASSES)
    return frozenset(scope)


#: The count of fitting devices; it reads no device.
COUNT = "count"
#: The OpenCL device type: a choice with a default (GPUs and accelerators).
ANY = "any"
#: Video codecs of the ``decode`` and ``encode`` keys.
CODECS = ("h264", "hevc", "av1", "vp9", "vp8", "mpeg2", "vc1", "jpeg")

_OPENCL_RUNTIME = (
    "install the device's OpenCL ICD (pocl-opencl-icd for CPUs, mesa-opencl-icd or"
    " rocm-opencl-icd, intel-opencl-icd, nvidia-opencl-icd) and python3-pyopencl on the host"
)
_VULKAN_RUNTIME = (
    "install vulkan-tools and the device's Vulkan driver (mesa-vulkan-drivers,"
    " nvidia-vulkan-icd) on the host"
)
#: amdgpu (sysfs) and NVML report a GPU's memory; for others (i915, xe) only OpenCL does.
_MEM_RUNTIME = (
    "install the device's OpenCL ICD (intel-opencl-icd for Intel GPUs, mesa-opencl-icd)"
    " and python3-pyopencl on the host"
)
_VIDEO_RUNTIME = (
    "install vainfo and the device's VA-API driver (mesa-va-drivers,"
    " intel-media-va-driver; NVML answers encode on NVIDIA) on the host"
)


def _codecs(field: str) -> Callable[[Device], object]:
    def read(d: Device) -> object:
        known = field.removeprefix("video_") in d.video_known
        return frozenset(getattr(d, field)) if known else None

    return read


KEYS: Mapping[str, Key] = {
    k.name: k
    for k in (
        Key("vendor", STRING, ALL, lambda d: d.vendor, lambda c: c.vendor),
        Key("model", STRING, ALL, lambda d: d.model, lambda c: c.model),
        Key("pci", STRING, DEVICES, lambda d: d.pci_id),
        Key(
            "mem",
            SIZE,
            ALL,
            lambda d: d.memory,
            lambda c: c.memory,
            to_know=tuple((c, _MEM_RUNTIME) for c in ("gpu", "sycl", "vulkan", "video")),
        ),
        Key(COUNT, INT, ALL),
        Key(
            "driver",
            VERSION,
            DEVICES,
            lambda d: d.driver_version,
            unanswered=(
                ("sycl", "Intel's i915 and xe kernel drivers report no version"),
                (
                    "rocm",
                    "Debian's amdgpu kernel driver reports no version"
                    " (only AMD's amdgpu-dkms module does)",
                ),
            ),
        ),
        Key("module", STRING, DEVICES, lambda d: d.driver),
        Key("arch", STRING, ("cuda", "rocm", "cpu", "gpu"), lambda d: d.arch, lambda c: c.arch),
        Key("cc", VERSION, ("cuda",), lambda d: d.compute_capability),
        Key("cuda", VERSION, ("cuda",), lambda d: d.cuda_version),
        Key(
            "version",
            VERSION,
            ("opencl", "vulkan"),
            lambda d: d.opencl_version,
            by_class=(("vulkan", lambda d: d.vulkan_version),),
            to_know=(("opencl", _OPENCL_RUNTIME), ("vulkan", _VULKAN_RUNTIME)),
        ),
        Key(
            "type",
            CHOICE,
            ("opencl",),
            opencl_type,
            choices=("gpu", "cpu", "accelerator", ANY),
            default=("gpu", "accelerator"),
            default_text="GPU or accelerator",
        ),
        Key("cores", INT, ("cpu",), cpu=lambda c: c.cores),
        Key(
            "decode",
            SET,
            ("video",),
            _codecs("video_decode"),
            choices=CODECS,
            to_know=(("", _VIDEO_RUNTIME),),
        ),
        Key(
            "encode",
            SET,
            ("video",),
            _codecs("video_encode"),
            choices=CODECS,
            to_know=(("", _VIDEO_RUNTIME),),
        ),
    )
}

#: Feature words (OpenCL extensions) only a runtime tells: what to install to know them.
FEATURES_TO_KNOW = {"opencl": _OPENCL_RUNTIME}


def classes_of(d: Device) -> tuple[str, ...]:
    """Every class ``d`` qualifies for, in class order: what its facts say today."""
    return tuple(c.name for c in CLASSES if c.qualifies is not None and c.qualifies(d))


def current_classes(d: Device) -> tuple[str, ...]:
    """The classes of ``d`` by this version's rules: the one classing every reader uses.

    A device that detectors reported (``sources`` set) is classed from its
    facts, so an inventory recorded by an older version (a BMC's ``ast`` chip
    then counted as a ``gpu``; an RX 6800 saved without its PCI class) reads
    as today.  A device without sources (one a program builds, or a saved one
    whose facts were written by hand) has no detector's facts to class it by:
    it keeps the classes it states.
    """
    return classes_of(d) if d.sources else d.classes


def get(name: str) -> HwClass:
    """The class called ``name`` (KeyError if there is none)."""
    return BY_NAME[name]


def defaulted_keys(cls: str) -> tuple[Key, ...]:
    """The keys of ``cls`` that hold a default when a spec does not name them."""
    return _DEFAULTED.get(cls, ())


_DEFAULTED = {c: tuple(k for k in KEYS.values() if k.default and k.applies(c)) for c in NAMES}
