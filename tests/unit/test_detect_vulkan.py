"""The Vulkan detector: vulkaninfo's GPUs and their Vulkan version (vulkan:version)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autopkgtest_hw.detect import detect_inventory, vulkan
from autopkgtest_hw.detect.merge import classify, merge
from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

DATA = Path(__file__).resolve().parents[1] / "data" / "vulkaninfo"


def test_the_cpu_device_of_a_real_vulkaninfo_is_left_out() -> None:
    devices, cpus = vulkan.parse_summary((DATA / "llvmpipe-bookworm.txt").read_text())
    assert (devices, cpus) == ([], 1)


def test_gpus_give_their_vulkan_version_and_pci_id() -> None:
    devices, cpus = vulkan.parse_summary((DATA / "rx6800-radv.txt").read_text())
    assert cpus == 1
    (rx,) = devices
    assert (rx.vendor, rx.pci_id, rx.vulkan_version) == ("amd", "1002:73bf", "1.3")
    assert rx.model == "AMD Radeon RX 6800 (RADV NAVI21)"
    (nv,), _ = vulkan.parse_summary((DATA / "rtx3090-nvidia.txt").read_text())
    assert (nv.vendor, nv.pci_id, nv.vulkan_version) == ("nvidia", "10de:2204", "1.3")


def fake_pci(root: Path, address: str, vendor: str, device: str) -> None:
    (root / address).mkdir(parents=True)
    (root / address / "vendor").write_text(f"0x{vendor}\n")
    (root / address / "device").write_text(f"0x{device}\n")


def test_the_pci_address_comes_from_the_one_device_with_that_id(tmp_path: Path) -> None:
    fake_pci(tmp_path, "0000:03:00.0", "1002", "73bf")
    fake_pci(tmp_path, "0000:02:00.0", "1a03", "2000")
    (rx,), _ = vulkan.parse_summary((DATA / "rx6800-radv.txt").read_text())
    assert vulkan._with_address(rx, str(tmp_path)).pci_address == "0000:03:00.0"
    fake_pci(tmp_path, "0000:04:00.0", "1002", "73bf")  # two alike: no guess
    assert vulkan._with_address(rx, str(tmp_path)).pci_address is None


def test_the_merged_gpu_answers_vulkan_version_from_vulkan_not_opencl() -> None:
    udev = Device(
        vendor="amd",
        pci_address="0000:03:00.0",
        pci_id="1002:73bf",
        pci_class="0x030000",
        driver="amdgpu",
        sources=("udev",),
    )
    opencl = Device(pci_address="0000:03:00.0", opencl_version="2.0", sources=("opencl",))
    vk = Device(pci_address="0000:03:00.0", vulkan_version="1.3", sources=("vulkan",))
    (gpu,) = [classify(d) for d in merge([[udev], [opencl], [vk]])]
    machine = Inventory(devices=(gpu,))
    assert match(parse("vulkan:version>=1.3"), machine).satisfied
    assert not match(parse("vulkan:version>=2.0"), machine).satisfied
    assert match(parse("opencl:version>=2.0"), machine).satisfied


@pytest.mark.skipif(shutil.which("vulkaninfo") is None, reason="needs vulkan-tools")
def test_the_real_vulkaninfo_runs_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    inv = detect_inventory(["vulkan"])
    (report,) = [r for r in inv.detectors if r.name == "vulkan"]
    assert report.status in ("ok", "unavailable"), report
    if report.status == "ok":
        assert all(d.vulkan_version for d in inv.devices)


def test_no_vulkaninfo_is_unavailable_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    inv = detect_inventory(["vulkan"])
    (report,) = [r for r in inv.detectors if r.name == "vulkan"]
    assert (report.status, report.detail) == (
        "unavailable",
        "vulkaninfo is not installed (Debian: vulkan-tools)",
    )


def test_a_loader_without_drivers_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("vulkaninfo") is None:
        pytest.skip("needs vulkan-tools")
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent.json")
    monkeypatch.setenv("VK_DRIVER_FILES", "/nonexistent.json")
    inv = detect_inventory(["vulkan"])
    (report,) = [r for r in inv.detectors if r.name == "vulkan"]
    assert report.status == "unavailable"
    assert report.detail.startswith("no Vulkan driver loads (")


# -- older formats, recorded (issue 19, item 7) ------------------------------


def test_the_packed_api_version_of_older_vulkaninfo_is_read() -> None:
    (v3d,), cpus = vulkan.parse_summary((DATA / "v3d-rpi4-vulkan-tools-1.2.162.txt").read_text())
    assert cpus == 1
    assert v3d.model == "V3D 4.2" and v3d.vulkan_version == "1.0"
    assert v3d.vendor == "broadcom" or v3d.pci_id == "14e4:002a"


def test_a_recorded_nvidia_and_intel_laptop_reads_with_versions() -> None:
    text = (DATA / "gtx1660ti-uhd770-devices-section.txt").read_text()
    devices, cpus = vulkan.parse_summary(text)
    assert cpus == 1
    assert [(d.pci_id, d.vulkan_version) for d in devices] == [
        ("10de:2182", "1.3"),
        ("8086:a780", "1.3"),
    ]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.3.230", "1.3"),
        ("4206834 (1.3.242)", "1.3"),
        ("4194459", "1.0"),
        ("4202678", "1.2"),
        ("99999999999", None),
        ("(1.3)", None),
        ("", None),
    ],
)
def test_every_api_version_form_reads(text: str, version: str | None) -> None:
    assert vulkan.api_version(text) == version
