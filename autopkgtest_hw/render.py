"""Human-readable forms of an inventory (think ``nvidia-smi -L`` and ``clinfo -l``)."""

from __future__ import annotations

from .inventory import Device, Inventory
from .matcher import format_size


def device_line(index: int, d: Device) -> str:
    facts = []
    if d.vendor:
        facts.append(d.vendor)
    if d.pci_address:
        facts.append(d.pci_address)
    if d.pci_id:
        facts.append(f"[{d.pci_id}]")
    if d.arch:
        facts.append(d.arch)
    if d.compute_capability:
        facts.append(f"cc {d.compute_capability}")
    if d.memory:
        facts.append(format_size(d.memory))
    if d.driver:
        facts.append(f"driver {d.driver}" + (f" {d.driver_version}" if d.driver_version else ""))
    if d.cuda_version:
        facts.append(f"CUDA {d.cuda_version}")
    if d.opencl_version:
        facts.append(f"OpenCL {d.opencl_version} {d.opencl_type or ''}".rstrip())
    if d.uuid:
        facts.append(f"UUID {d.uuid}")
    classes = ",".join(d.classes) or "-"
    return f"{index}: {d.label} ({'; '.join(facts)}) classes: {classes}"


def inventory_table(inv: Inventory) -> str:
    cpu = inv.cpu
    lines = [
        "CPU: {} ({}, {} cores, {} RAM)".format(
            cpu.model or "unknown",
            cpu.arch or "unknown arch",
            cpu.cores if cpu.cores is not None else "?",
            format_size(cpu.memory) if cpu.memory else "unknown",
        )
    ]
    if inv.devices:
        lines.append("Devices:")
        lines += ["  " + device_line(i, d) for i, d in enumerate(inv.devices)]
    else:
        lines.append("Devices: none")
    lines.append("Classes: " + " ".join(inv.classes()))
    if inv.detectors:
        lines.append("Detectors:")
        for r in inv.detectors:
            detail = f": {r.detail}" if r.detail else ""
            lines.append(f"  {r.name:8} {r.status}{detail}")
    return "\n".join(lines) + "\n"
