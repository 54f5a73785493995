"""qemu: VFIO passthrough of IOMMU groups, checked on the guest's PCI bus."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends import HostPaths, PassthroughError
from autopkgtest_hw.virt.backends.qemu import QemuBackend, merge_qemu_options
from autopkgtest_hw.virt.probe import PciFunction, ProbeResult

from .backend_helpers import DATA, make, nvidia

# -- qemu -----------------------------------------------------------------------


def vfio_dir(tmp_path: Path, mode: int = 0o666) -> str:
    d = tmp_path / "vfio"
    d.mkdir()
    (d / "42").touch()
    os.chmod(d / "42", mode)
    return str(d)


def qemu(tmp_path: Path, tree: str, d: Device, vfio: str | None = None) -> QemuBackend:
    paths = HostPaths(sysfs_root=str(DATA / tree), vfio_dir=vfio or vfio_dir(tmp_path))
    b = make(QemuBackend, "qemu", d, paths=paths)
    assert isinstance(b, QemuBackend)
    return b


def test_qemu_passes_every_function_of_the_iommu_group_but_the_bridge(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d)
    args = b.plan([d]).inner_args(["--ram-size", "4096", "sid.img"])
    assert args == [
        "--qemu-options=-device vfio-pci,host=0000:65:00.0 -device vfio-pci,host=0000:65:00.1",
        "--ram-size", "4096", "sid.img",
    ]  # fmt: skip


def test_qemu_merges_into_the_callers_qemu_options(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d)
    args = b.plan([d]).inner_args(["--qemu-options", "-machine q35", "sid.img"])
    assert args[1] == (
        "-machine q35 -device vfio-pci,host=0000:65:00.0 -device vfio-pci,host=0000:65:00.1"
    )
    assert merge_qemu_options(["--qemu-options=-cpu host", "x.img"], "-device a")[0] == (
        "--qemu-options=-cpu host -device a"
    )


def test_qemu_unbound_group_stops_with_the_commands_that_bind_it(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-unbound", d)
    with pytest.raises(PassthroughError) as err:
        b.plan([d]).inner_args(["sid.img"])
    text = str(err.value)
    assert "0000:65:00.0 (IOMMU group 42) is bound to nvidia, not vfio-pci" in text
    assert "echo vfio-pci > /sys/bus/pci/devices/0000:65:00.0/driver_override" in text
    assert "echo 0000:65:00.0 > /sys/bus/pci/devices/0000:65:00.0/driver/unbind" in text
    assert "echo 0000:65:00.1 > /sys/bus/pci/drivers/vfio-pci/bind" in text
    assert "modprobe vfio-pci" in text
    assert "0000:00:01.0" not in text  # the bridge stays with the host


def test_qemu_without_iommu_group_says_how_to_enable_it(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-no-iommu", d)
    with pytest.raises(PassthroughError, match="has no IOMMU group: enable the IOMMU"):
        b.plan([d]).inner_args([])


def test_qemu_vfio_group_node_missing_or_inaccessible(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d, vfio=str(tmp_path / "nope"))
    with pytest.raises(PassthroughError, match=r"nope/42 does not exist"):
        b.plan([d]).inner_args([])


def test_qemu_verifies_the_gpu_on_the_guest_pci_bus_by_id(tmp_path: Path) -> None:
    d = nvidia(("/dev/nvidia0",))
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d)
    assert list(b.plan([d]).nodes) == []
    guest = ProbeResult(
        cpu=b.inventory.cpu,
        pci=(PciFunction("0000:00:05.0", "10de:2331", "nvidia"),),
    )
    [seen], problems = b.verify([d], guest)
    assert problems == []
    assert seen.pci_address == "0000:00:05.0" and seen.device_nodes == ()
    assert "cuda" in seen.classes
    empty = ProbeResult(cpu=b.inventory.cpu)
    assert b.verify([d], empty)[1] == [
        "NVIDIA H100 PCIe (0000:65:00.0, 10de:2331): no PCI function 10de:2331 in the VM"
    ]


def test_generated_device_option_is_one_real_qemu_knows() -> None:
    """qemu-system-x86_64 lists vfio-pci, and its host= property takes our address form."""
    qemu_bin = shutil.which("qemu-system-x86_64")
    if qemu_bin is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    listing = subprocess.run(
        [qemu_bin, "-device", "help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert 'name "vfio-pci"' in listing
    props = subprocess.run(
        [qemu_bin, "-device", "vfio-pci,help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "host=<str>" in props or "host=" in props


def test_real_qemu_parses_the_generated_options_and_looks_for_the_host_device(
    tmp_path: Path,
) -> None:
    """qemu accepts our words and fails only because this host has no such GPU."""
    qemu_bin = shutil.which("qemu-system-x86_64")
    if qemu_bin is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    d = nvidia(())
    words = list(qemu(tmp_path, "vs-sysfs-vfio-bound", d).plan([d]).extra_args)
    proc = subprocess.run(
        [qemu_bin, "-machine", "q35", "-nodefaults", "-display", "none", "-S", *words],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "vfio /sys/bus/pci/devices/0000:65:00.0: no such host device" in proc.stderr
