"""Human-readable forms of an inventory (think ``nvidia-smi -L`` plus ``clinfo -l``).

``inventory_table`` is what ``autopkgtest-hw detect`` prints: the CPU, one
block per device (a header line like ``nvidia-smi -L``, then its facts), the
classes the machine satisfies, and what each detector did.
``describe_device`` is the one-line form of a device everywhere else (logs,
error messages, verdicts), at the level of detail its reader needs.  Every
form is escaped (``text.escape``): what a device or a file calls itself never
reaches a terminal or a log raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from autopkgtest_hw.base.text import escape
from autopkgtest_hw.spec.classes import current_classes
from autopkgtest_hw.spec.hardware import DISPLAY_ONLY_DRIVERS
from autopkgtest_hw.spec.inventory import Cpu, DetectorReport, Device, Inventory
from autopkgtest_hw.spec.sizes import format_size

_INDENT = "    "
#: OpenCL extensions worth naming in the summary (the spec's feature words).
_NOTABLE_EXTENSIONS = ("cl_khr_fp64", "cl_khr_fp16")


#: How much of a device one line shows; see :func:`describe_device`.
Detail = Literal["short", "line", "log", "asked"]


def describe_device(
    d: Device, detail: Detail = "log", *, position: int = 0, facts: Sequence[str] = ()
) -> str:
    """One line for a device; ``position`` is its place in the inventory.

    - ``short``: ``#0 NVIDIA H100 PCIe (0000:3b:00.0)``, to choose a device by
      (NVML index if it has one, else its position);
    - ``line``: ``0: NVIDIA H100 PCIe (nvidia; 0000:3b:00.0; ...) classes: gpu,cuda``;
    - ``log``: vendor, model, PCI id, arch, driver and UUID: what a result log
      must record;
    - ``asked``: the name, then ``facts`` (what a spec asked about, from the matcher).
    """
    if detail == "short":
        index = d.index if d.index is not None else position
        where = d.pci_address or d.opencl_platform or "no PCI address"
        return escape(f"#{index} {d.label} ({where})")
    if detail == "line":
        return escape(_device_line(position, d))
    if detail == "asked":
        return escape(named(d.label, facts))
    return escape(_device_record(d))


def named(name: str, facts: Sequence[str]) -> str:
    """``name, fact, fact``: a device or a CPU with the facts a reader asked for."""
    return ", ".join([name, *facts])


def _device_line(index: int, d: Device) -> str:
    facts = [f for f in (d.vendor, d.pci_address) if f]
    if d.pci_id:
        facts.append(f"[{d.pci_id}]")
    facts += _compute_facts(d)
    if d.uuid:
        facts.append(f"UUID {d.uuid}")
    classes = ",".join(current_classes(d)) or "-"
    return f"{index}: {d.label} ({'; '.join(facts)}) classes: {classes}"


def _device_record(d: Device) -> str:
    parts = [d.vendor or "unknown vendor", repr(d.model) if d.model else "unknown model"]
    if d.pci_address:
        parts.append(f"at {d.pci_address}")
    if d.pci_id:
        parts.append(f"[{d.pci_id}]")
    if d.arch:
        parts.append(f"arch {d.arch}")
    if d.driver:
        parts.append(f"driver {d.driver}" + (f" {d.driver_version}" if d.driver_version else ""))
    if d.uuid:
        parts.append(f"UUID {d.uuid}")
    if d.opencl_type and not d.pci_address:
        parts.append(f"OpenCL {d.opencl_type} device of {d.opencl_platform or 'unknown'}")
    return " ".join(parts)


def inventory_table(inv: Inventory) -> str:
    lines = [cpu_line(inv.cpu), ""]
    if inv.devices:
        for i, d in enumerate(inv.devices):
            lines += device_block(i, d)
    else:
        lines.append("No GPU or other compute device found.")
    lines += ["", "Classes: " + " ".join(inv.classes())]
    if inv.detectors:
        lines += ["", "Detectors:"]
        lines += [detector_line(r, inv.detectors) for r in inv.detectors]
    return "\n".join(escape(line) for line in lines) + "\n"


def cpu_line(cpu: Cpu) -> str:
    facts = [cpu.arch or "unknown architecture"]
    if cpu.cores is not None:
        facts.append(f"{cpu.cores} logical CPU{'s' if cpu.cores != 1 else ''}")
    if cpu.memory:
        facts.append(f"{format_size(cpu.memory)} RAM")
    if cpu.flags:
        facts.append(f"{len(cpu.flags)} flag{'s' if len(cpu.flags) != 1 else ''}")
    return escape(f"CPU: {cpu.model or 'unknown model'} ({', '.join(facts)})")


def device_block(index: int, d: Device) -> list[str]:
    """A header line and indented facts for one device."""
    header = f"{_kind(d)} {index}: {d.label}"
    if d.uuid:
        header += f" (UUID: {d.uuid})"
    lines = [header]
    where = []
    if d.vendor:
        where.append(d.vendor)
    if d.pci_id:
        where.append(d.pci_id)
    if d.pci_address:
        where.append(f"at {d.pci_address}")
    facts = [" ".join(where)] if where else []
    facts += _compute_facts(d)
    if d.mig_mode is not None:
        facts.append(f"MIG {'on' if d.mig_mode else 'off'}")
    if facts:
        lines.append(_INDENT + ", ".join(facts))
    if d.opencl_type or d.opencl_platform:
        ocl = f"OpenCL {d.opencl_version or '?'} {d.opencl_type or 'device'}"
        if d.opencl_platform:
            ocl += f" on {d.opencl_platform}"
        notable = [
            e.removeprefix("cl_khr_") for e in _NOTABLE_EXTENSIONS if e in d.opencl_extensions
        ]
        if notable:
            ocl += f" ({', '.join(notable)})"
        lines.append(_INDENT + ocl)
    runtimes = []
    if d.vulkan_version:
        runtimes.append(f"Vulkan {d.vulkan_version}")
    for what, codecs in (("decode", d.video_decode), ("encode", d.video_encode)):
        if what in d.video_known:
            runtimes.append(f"video {what} {' '.join(codecs) or 'none'}")
    if runtimes:
        lines.append(_INDENT + "; ".join(runtimes))
    placement = []
    if d.device_nodes:
        placement.append("nodes " + " ".join(d.device_nodes))
    if d.iommu_group is not None:
        placement.append(f"IOMMU group {d.iommu_group}")
    if d.numa_node is not None:
        placement.append(f"NUMA node {d.numa_node}")
    if placement:
        lines.append(_INDENT + "; ".join(placement))
    classes = " ".join(current_classes(d)) or "none"
    sources = f" (seen by {', '.join(d.sources)})" if d.sources else ""
    lines.append(f"{_INDENT}classes: {classes}{sources}")
    return [escape(line) for line in lines]


def detector_line(r: DetectorReport, all_reports: tuple[DetectorReport, ...] = ()) -> str:
    name_width = max((len(x.name) for x in all_reports), default=len(r.name))
    line = f"  {r.name:<{name_width}}  {r.status:<11}  {r.detail}"
    return escape(line.rstrip())


def _kind(d: Device) -> str:
    classes = current_classes(d)
    if d.driver in DISPLAY_ONLY_DRIVERS and not classes:
        return "Display"  # a BMC's chip or a virtual VGA: recorded, in no class
    if d.pci_address or "gpu" in classes:
        return "GPU"
    if d.opencl_type:
        return "OpenCL"
    return "Device"


def _compute_facts(d: Device) -> list[str]:
    facts = []
    if d.memory:
        facts.append(format_size(d.memory))
    if d.arch:
        facts.append(d.arch + (f" (cc {d.compute_capability})" if d.compute_capability else ""))
    elif d.compute_capability:
        facts.append(f"cc {d.compute_capability}")
    if d.driver or d.driver_version:
        facts.append(" ".join(x for x in ("driver", d.driver, d.driver_version) if x))
    if d.cuda_version:
        facts.append(f"CUDA {d.cuda_version}")
    return facts
