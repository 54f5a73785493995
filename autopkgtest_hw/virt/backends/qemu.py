"""qemu: VFIO passthrough of every function in each allocated GPU's IOMMU group.

Before the VM starts, each function must be bound to vfio-pci and
``/dev/vfio/<group>`` must be readable and writable; otherwise we stop and say
exactly which commands bind it.  ``--qemu-options`` is split on whitespace by
autopkgtest-virt-qemu, so each ``-device vfio-pci,host=ADDR`` is two words;
ours are merged into the caller's ``--qemu-options`` if there is one.

Inside the VM the GPU has another PCI address and a guest driver, so the
check after ``open`` looks for the PCI vendor:device ids in the guest's
``/sys/bus/pci/devices`` instead of the host's device nodes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from autopkgtest_hw.detect.merge import classify
from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends.base import Availability, Backend, Passthrough, PassthroughError
from autopkgtest_hw.virt.probe import ProbeResult

VFIO_DRIVER = "vfio-pci"
BRIDGE_CLASS_PREFIX = "0x0604"  # PCI-to-PCI bridges stay with the host (pcieport)


@dataclasses.dataclass(frozen=True)
class Function:
    address: str
    driver: str | None
    pci_class: str | None


class QemuBackend(Backend, backend_name="qemu"):
    def _dev(self, address: str) -> str:
        return os.path.join(self.paths.sysfs_root, "bus", "pci", "devices", address)

    def _group(self, d: Device) -> str:
        assert d.pci_address is not None
        link = os.path.join(self._dev(d.pci_address), "iommu_group")
        try:
            return os.path.basename(os.readlink(link))
        except OSError:
            if not os.path.exists(self._dev(d.pci_address)):
                raise PassthroughError(
                    f"{d.label} ({d.pci_address}) is not on this host's PCI bus"
                    f" ({self._dev(d.pci_address)} does not exist)"
                ) from None
            raise PassthroughError(
                f"{d.label} ({d.pci_address}) has no IOMMU group: enable the IOMMU"
                " (intel_iommu=on or amd_iommu=on on the kernel command line, VT-d/AMD-Vi in"
                " the firmware) to pass it into a VM"
            ) from None

    def _functions(self, group: str) -> list[Function]:
        base = os.path.join(self.paths.sysfs_root, "kernel", "iommu_groups", group, "devices")
        out = []
        for address in sorted(os.listdir(base)):
            dev = self._dev(address)
            try:
                driver: str | None = os.path.basename(os.readlink(os.path.join(dev, "driver")))
            except OSError:
                driver = None
            try:
                with open(os.path.join(dev, "class"), encoding="ascii") as f:
                    pci_class: str | None = f.read().strip()
            except OSError:
                pci_class = None
            out.append(Function(address, driver, pci_class))
        return out

    def plan(self, devices: Sequence[Device]) -> Passthrough:
        """``-device vfio-pci,host=ADDR`` for every function of each GPU's IOMMU group.

        Raises PassthroughError, naming the commands that fix it, unless each
        function is bound to vfio-pci and its group's node is usable.
        """
        addresses: list[str] = []
        problems: list[str] = []
        groups: list[str] = []
        for d in devices:
            if not d.pci_address:
                continue  # an OpenCL CPU device: the VM has a CPU of its own
            group = self._group(d)
            if group in groups:
                continue
            groups.append(group)
            for fn in self._functions(group):
                if (fn.pci_class or "").startswith(BRIDGE_CLASS_PREFIX):
                    continue
                if fn.driver != VFIO_DRIVER:
                    problems.append(_bind_commands(fn, group))
                addresses.append(fn.address)
            node = os.path.join(self.paths.vfio_dir, group)
            if not os.path.exists(node):
                problems.append(
                    f"{node} does not exist: load the driver (modprobe vfio-pci) and bind"
                    f" IOMMU group {group} to vfio-pci"
                )
            elif not os.access(node, os.R_OK | os.W_OK):
                problems.append(
                    f"{node} is not readable and writable by this user: run as root, or give"
                    f' the user access (e.g. a udev rule: SUBSYSTEM=="vfio", GROUP="kvm")'
                )
        if problems:
            raise PassthroughError(
                "the GPU cannot be passed into a VM yet:\n" + "\n".join(problems)
            )
        words = [w for address in addresses for w in ("-device", f"vfio-pci,host={address}")]
        description = f"VFIO: --qemu-options '{' '.join(words)}'" if words else "nothing to pass"
        # The guest's nodes are the guest driver's business: verify() looks at its PCI bus.
        return Passthrough(tuple(words), description, (), _merge_qemu_words)

    def available(self) -> Availability:
        groups = os.path.join(self.paths.sysfs_root, "kernel", "iommu_groups")
        try:
            if os.listdir(groups):
                return Availability(True, f"the IOMMU is on ({groups} lists groups)")
        except OSError:
            pass
        return Availability(
            False,
            f"no IOMMU groups in {groups}: enable the IOMMU (intel_iommu=on or amd_iommu=on)"
            " to pass GPUs into VMs",
        )

    def verify(
        self, devices: Sequence[Device], probe: ProbeResult
    ) -> tuple[list[Device], list[str]]:
        """Each passed GPU must show up on the guest's PCI bus (by vendor:device id)."""
        free = list(probe.pci)
        present: list[Device] = []
        problems: list[str] = []
        for d in devices:
            if not d.pci_address:
                present.append(d)
                continue
            match = next((f for f in free if f.pci_id == d.pci_id), None)
            if match is None:
                problems.append(
                    f"{d.label} ({d.pci_address}, {d.pci_id}): no PCI function {d.pci_id} in the VM"
                )
                continue
            free.remove(match)
            sources = d.sources
            if match.driver == "nvidia" and "nvml" not in sources:
                sources = (*sources, "nvml")  # the guest's NVIDIA driver drives it
            guest = dataclasses.replace(
                d,
                pci_address=match.address,
                driver=match.driver,
                device_nodes=(),
                iommu_group=None,
                numa_node=None,
                sources=sources,
            )
            present.append(classify(guest))
        return present, problems


def _bind_commands(fn: Function, group: str) -> str:
    sysdev = f"/sys/bus/pci/devices/{fn.address}"
    lines = [
        f"{fn.address} (IOMMU group {group}) is bound to {fn.driver or 'no driver'},"
        " not vfio-pci; as root run:"
    ]
    lines.append("  modprobe vfio-pci")
    lines.append(f"  echo vfio-pci > {sysdev}/driver_override")
    if fn.driver:
        lines.append(f"  echo {fn.address} > {sysdev}/driver/unbind")
    lines.append(f"  echo {fn.address} > /sys/bus/pci/drivers/vfio-pci/bind")
    return "\n".join(lines)


def _merge_qemu_words(args: Sequence[str], words: Sequence[str]) -> list[str]:
    return merge_qemu_options(args, " ".join(words))


def merge_qemu_options(args: Sequence[str], ours: str) -> list[str]:
    """Add ``ours`` to the caller's ``--qemu-options`` (or add the option)."""
    out = list(args)
    for i, a in enumerate(out):
        if a == "--":
            break
        if a == "--qemu-options" and i + 1 < len(out):
            out[i + 1] = f"{out[i + 1]} {ours}".strip()
            return out
        if a.startswith("--qemu-options="):
            value = a.split("=", 1)[1]
            out[i] = f"--qemu-options={value} {ours}".strip()
            return out
    return [f"--qemu-options={ours}", *out]
