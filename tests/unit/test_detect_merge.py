"""Merging several detectors' views into one device per GPU, and the classes each gets."""

from __future__ import annotations

import pytest

from autopkgtest_hw.detect import detect_inventory
from autopkgtest_hw.detect.merge import classify, merge
from autopkgtest_hw.spec.inventory import Device, Inventory

from .devices import NVML_H100_SEEN as NVML_H100
from .devices import OPENCL_H100_SEEN as OPENCL_H100
from .devices import POCL_SEEN as POCL
from .devices import UDEV_H100_SEEN as UDEV_H100


def classified(*groups: list[Device]) -> list[Device]:
    return [classify(d) for d in merge(list(groups))]


def test_three_views_of_one_gpu_become_one_device() -> None:
    (gpu, pocl) = classified([UDEV_H100], [NVML_H100], [OPENCL_H100, POCL])
    assert gpu.sources == ("udev", "nvml", "opencl")
    assert gpu.model == "NVIDIA H100 PCIe"
    assert gpu.memory == 80 << 30  # NVML's figure, not OpenCL's
    assert gpu.pci_id == "10de:2330" and gpu.iommu_group == "17"
    assert gpu.uuid == "GPU-1" and gpu.opencl_version == "3.0"
    assert gpu.device_nodes == ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm")
    assert gpu.classes == ("gpu", "cuda", "opencl", "vulkan", "video")
    assert pocl.classes == ("opencl",)
    assert pocl.pci_address is None


def test_order_does_not_change_the_result() -> None:
    a = classified([UDEV_H100], [NVML_H100], [OPENCL_H100])
    b = classified([OPENCL_H100], [NVML_H100], [UDEV_H100])
    assert a == b


def test_opencl_gpu_without_address_joins_the_only_gpu_of_its_vendor() -> None:
    intel = Device(
        vendor="intel",
        pci_address="0000:03:00.0",
        pci_class="0x030000",
        driver="i915",
        sources=("udev",),
    )
    ocl = Device(
        vendor="intel",
        model="Intel(R) Arc(TM) A770 Graphics",
        opencl_type="gpu",
        opencl_version="3.0",
        sources=("opencl",),
    )
    (gpu,) = classified([intel], [ocl])
    assert gpu.sources == ("udev", "opencl")
    assert gpu.classes == ("gpu", "opencl", "sycl", "vulkan", "video")


def test_ambiguous_opencl_gpus_stay_separate() -> None:
    gpus = [
        Device(
            vendor="intel",
            pci_address=f"0000:0{i}:00.0",
            pci_class="0x030000",
            driver="i915",
            sources=("udev",),
        )
        for i in (3, 4)
    ]
    ocl = Device(vendor="intel", model="Arc", opencl_type="gpu", sources=("opencl",))
    merged = classified(gpus, [ocl])
    assert len(merged) == 3
    assert merged[-1].classes == ("opencl",)


@pytest.mark.parametrize(
    ("device", "classes"),
    [
        # A GPU held for passthrough is not usable on this host.
        (Device(vendor="nvidia", pci_class="0x030200", driver="vfio-pci", sources=("udev",)), ()),
        (Device(vendor="nvidia", pci_class="0x030200", sources=("udev",)), ()),
        (
            Device(vendor="nvidia", pci_class="0x030000", driver="nouveau", sources=("udev",)),
            ("gpu", "vulkan", "video"),
        ),
        (
            Device(vendor="intel", pci_class="0x030000", driver="xe", sources=("udev",)),
            ("gpu", "opencl", "sycl", "vulkan", "video"),
        ),
        (Device(vendor="1a03", pci_class="0x030000", driver="ast", sources=("udev",)), ()),
        # Display-only devices: a BMC's Matrox, a hypervisor's virtual VGA, a virtio GPU.
        (Device(vendor="102b", pci_class="0x030000", driver="mgag200", sources=("udev",)), ()),
        (Device(vendor="1234", pci_class="0x030000", driver="bochs-drm", sources=("udev",)), ()),
        (Device(vendor="1af4", pci_class="0x030000", driver="virtio-pci", sources=("udev",)), ()),
        (Device(vendor="1b36", pci_class="0x030000", driver="qxl", sources=("udev",)), ()),
        # Instinct MI300X is a processing accelerator (class 0x12) driven by amdgpu.
        (
            Device(
                vendor="amd",
                pci_class="0x120000",
                driver="amdgpu",
                arch="gfx942",
                device_nodes=("/dev/dri/renderD128", "/dev/kfd"),
                sources=("udev",),
            ),
            ("gpu", "rocm", "opencl", "vulkan", "video"),
        ),
        # A gfx target but no /dev/kfd (not passed into this container): no ROCm.
        (
            Device(
                vendor="amd",
                pci_class="0x038000",
                driver="amdgpu",
                arch="gfx90a",
                device_nodes=("/dev/dri/renderD128",),
                sources=("udev",),
            ),
            ("gpu", "opencl", "vulkan", "video"),
        ),
        (
            Device(vendor="nvidia", driver="nvidia", sources=("nvml",)),
            ("gpu", "cuda", "opencl", "vulkan", "video"),
        ),
    ],
)
def test_classes(device: Device, classes: tuple[str, ...]) -> None:
    assert classify(device).classes == classes


def test_unknown_detector_name_is_ignored_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = detect_inventory(["cpu", "gpuz"])
    assert "unknown detector 'gpuz'" in capsys.readouterr().err
    statuses = {r.name: r.status for r in inv.detectors}
    assert statuses == {
        "cpu": "ok",
        "udev": "unavailable",
        "nvml": "unavailable",
        "opencl": "unavailable",
        "vulkan": "unavailable",
        "vaapi": "unavailable",
    }
    assert [r.detail for r in inv.detectors if r.name == "udev"] == ["not requested"]


def test_detected_inventory_survives_json_and_capabilities() -> None:
    inv = detect_inventory()
    assert [r.name for r in inv.detectors] == ["cpu", "udev", "nvml", "opencl", "vulkan", "vaapi"]
    assert all(r.status in ("ok", "unavailable", "error") for r in inv.detectors)
    assert Inventory.from_json(inv.to_json()) == inv
    back = Inventory.from_capabilities(inv.to_capabilities())
    assert back is not None
    assert back.devices == inv.devices and back.cpu == inv.cpu
