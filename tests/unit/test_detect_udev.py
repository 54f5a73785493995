"""The real pyudev detector on recorded hosts, run under umockdev-run.

Each test starts ``python -m autopkgtest_hw`` (this venv's interpreter) inside
``umockdev-run --device tests/data/HOST.umockdev``, which replaces /sys and
overlays /dev, and reads what a user reads: ``detect --json`` and ``match``.
NVML and OpenCL are switched off with AUTOPKGTEST_HW_DETECTORS so the
results do not depend on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

DATA = Path(__file__).resolve().parent.parent / "data"
GiB = 1 << 30

pytestmark = pytest.mark.skipif(
    shutil.which("umockdev-run") is None, reason="umockdev-run is not installed (package umockdev)"
)


def run_cli(
    fixture: str | Path | None,
    *args: str,
    env: Mapping[str, str] | None = None,
    detectors: str | None = "udev,cpu",
) -> subprocess.CompletedProcess[str]:
    """``autopkgtest-hw ARGS`` in a subprocess, under umockdev-run when ``fixture`` is given."""
    full_env = dict(os.environ)
    full_env.pop("AUTOPKGTEST_HW_DETECTORS", None)
    if detectors is not None:
        full_env["AUTOPKGTEST_HW_DETECTORS"] = detectors
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "autopkgtest_hw", *args]
    if fixture is not None:
        path = fixture if isinstance(fixture, Path) else DATA / f"{fixture}.umockdev"
        cmd = ["umockdev-run", "--device", str(path), "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)


def detect(fixture: str | Path | None, **kwargs: object) -> Inventory:
    """What the detectors find now (the host inventory cache is not what these tests test)."""
    result = run_cli(fixture, "detect", "--json", "--no-cache", **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return Inventory.from_json(result.stdout)


def verdict(inv: Inventory, spec: str) -> bool:
    return match(parse(spec), inv).satisfied


def report(inv: Inventory, name: str) -> tuple[str, str]:
    (r,) = [r for r in inv.detectors if r.name == name]
    return r.status, r.detail


def by_address(inv: Inventory) -> dict[str | None, Device]:
    return {d.pci_address: d for d in inv.devices}


def test_nvidia_h100_host() -> None:
    inv = detect("nvidia-h100")
    (gpu,) = inv.devices  # the bridge and the network card are not GPUs
    assert gpu.vendor == "nvidia"
    assert gpu.pci_id == "10de:2330"
    assert gpu.pci_address == "0000:3b:00.0"
    assert gpu.pci_class == "0x030200"
    assert gpu.model == "GH100 [H100 PCIe]"
    assert gpu.driver == "nvidia"
    assert gpu.iommu_group == "17"
    assert gpu.numa_node == 0
    assert gpu.device_nodes == ("/dev/nvidia0", "/dev/nvidiactl")
    # Without NVML nobody vouches for CUDA: it is a GPU with a Vulkan driver.
    assert gpu.classes == ("gpu", "opencl", "vulkan", "video")
    assert report(inv, "udev") == ("ok", "1 GPU")
    assert verdict(inv, "gpu:vendor=nvidia")
    assert verdict(inv, "gpu:pci=10de:2330")
    assert not verdict(inv, "rocm:gfx90a")
    assert not verdict(inv, "gpu:vendor=amd")


def test_amd_rocm_host() -> None:
    inv = detect("amd-mi210")
    (gpu,) = inv.devices
    assert gpu.vendor == "amd"
    assert gpu.pci_id == "1002:740f"
    assert gpu.pci_address == "0000:c1:00.0"
    assert gpu.arch == "gfx90a"
    assert gpu.memory == 68702699520
    assert gpu.iommu_group == "42"
    assert gpu.numa_node == 1
    assert gpu.device_nodes == ("/dev/dri/card1", "/dev/dri/renderD128", "/dev/kfd")
    assert gpu.classes == ("gpu", "rocm", "opencl", "vulkan", "video")
    assert verdict(inv, "rocm:gfx90a")
    assert verdict(inv, "rocm:arch=gfx90a/gfx942:mem>=60G")
    assert not verdict(inv, "rocm:arch=gfx1030/gfx1100")
    assert not verdict(inv, "cuda")
    assert not verdict(inv, "sycl")


def test_amd_host_through_the_real_match_command() -> None:
    ok = run_cli("amd-mi210", "match", "rocm:gfx90a")
    assert ok.returncode == 0, ok.stderr
    assert "satisfied" in ok.stdout and "not satisfied" not in ok.stdout
    other = run_cli("amd-mi210", "match", "rocm:gfx942")
    assert other.returncode == 1
    assert "gfx90a" in other.stdout  # the reason names what the machine has


def test_intel_arc_host() -> None:
    inv = detect("intel-arc")
    (gpu,) = inv.devices
    assert gpu.vendor == "intel"
    assert gpu.pci_id == "8086:56a0"
    assert gpu.driver == "i915"
    assert gpu.device_nodes == ("/dev/dri/card0", "/dev/dri/renderD128")
    assert gpu.numa_node is None  # sysfs says -1: no NUMA affinity
    assert gpu.iommu_group == "12"
    assert gpu.classes == ("gpu", "opencl", "sycl", "vulkan", "video")
    assert verdict(inv, "gpu:vendor=intel")
    assert verdict(inv, "sycl")
    assert not verdict(inv, "rocm")
    assert not verdict(inv, "cuda")


def test_multi_gpu_host_each_gpu_has_only_its_own_nodes() -> None:
    inv = detect("multi-gpu")
    gpus = by_address(inv)
    assert list(gpus) == ["0000:3b:00.0", "0000:3c:00.0", "0000:c1:00.0"]
    first, second, amd = gpus.values()
    assert first.device_nodes == (
        "/dev/dri/card0",
        "/dev/dri/renderD128",
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
    )
    assert second.device_nodes == (
        "/dev/dri/card1",
        "/dev/dri/renderD129",
        "/dev/nvidia1",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
    )
    # The KFD node names render minor 130: the MI210, not the first GPU's renderD128.
    assert amd.device_nodes == ("/dev/dri/card2", "/dev/dri/renderD130", "/dev/kfd")
    assert amd.arch == "gfx90a"
    assert first.arch is None and second.arch is None
    assert [d.iommu_group for d in inv.devices] == ["17", "18", "42"]
    assert inv.classes() == ("cpu", "gpu", "rocm", "opencl", "vulkan", "video")
    assert verdict(inv, "gpu:count>=3")
    assert verdict(inv, "gpu:vendor=nvidia:count=2")
    assert verdict(inv, "rocm:gfx90a")
    assert not verdict(inv, "rocm:count>=2")


def test_host_without_gpu() -> None:
    inv = detect("no-gpu")
    assert inv.devices == ()
    assert inv.classes() == ("cpu",)
    assert report(inv, "udev") == ("ok", "0 GPUs")
    assert verdict(inv, "cpu")
    result = run_cli("no-gpu", "match", "gpu")
    assert result.returncode == 1
    assert "no GPU device" in result.stdout


def test_kfd_node_found_by_pci_location_without_render_minor(tmp_path: Path) -> None:
    text = (DATA / "amd-mi210.umockdev").read_text()
    fixture = tmp_path / "no-minor.umockdev"
    fixture.write_text(text.replace("drm_render_minor 128\\n", ""))
    (gpu,) = detect(fixture).devices
    assert gpu.arch == "gfx90a"  # location_id 49408 = bus 0xc1, device 0, function 0
    assert "rocm" in gpu.classes


def test_gfx_target_without_dev_kfd_is_not_rocm(tmp_path: Path) -> None:
    text = (DATA / "amd-mi210.umockdev").read_text()
    fixture = tmp_path / "no-kfd-node.umockdev"
    fixture.write_text(text.replace("N: kfd\n", ""))
    inv = detect(fixture)
    (gpu,) = inv.devices
    assert gpu.arch == "gfx90a"
    assert "/dev/kfd" not in gpu.device_nodes
    assert gpu.classes == ("gpu", "opencl", "vulkan", "video")
    assert not verdict(inv, "rocm:gfx90a")


def test_corrupt_kfd_topology_is_a_detector_error_not_a_crash() -> None:
    result = run_cli("corrupt-kfd", "detect")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    inv = detect("corrupt-kfd")
    status, detail = report(inv, "udev")
    assert status == "error"
    assert "topology/nodes/1/properties" in detail and "gfx_target_version" in detail
    assert "\n" not in detail
    assert report(inv, "cpu")[0] == "ok"
    assert verdict(inv, "cpu")
    # The text table tells the same story.
    assert "udev    error" in result.stdout
    matched = run_cli("corrupt-kfd", "match", "cpu")
    assert matched.returncode == 0


def test_corrupt_kfd_traceback_only_with_debug() -> None:
    result = run_cli("corrupt-kfd", "detect", "--debug")
    assert result.returncode == 0
    assert "detector udev failed" in result.stderr
    assert "Traceback" in result.stderr  # for the developer who asked for it


def test_detectors_env_variable_says_why_others_did_not_run() -> None:
    inv = detect("nvidia-h100", detectors="udev")
    assert report(inv, "udev")[0] == "ok"
    for name in ("cpu", "nvml", "opencl"):
        status, detail = report(inv, name)
        assert status == "unavailable"
        assert "AUTOPKGTEST_HW_DETECTORS=udev" in detail


def test_unknown_detector_name_warns_and_is_ignored() -> None:
    result = run_cli("no-gpu", "detect", "--json", detectors="cpu,udve")
    assert result.returncode == 0
    assert "unknown detector 'udve'" in result.stderr
    assert "known: cpu, udev, nvml, opencl" in result.stderr
    inv = Inventory.from_json(result.stdout)
    assert report(inv, "cpu")[0] == "ok"
    assert report(inv, "udev")[0] == "unavailable"


def test_the_kernel_module_version_fills_the_driver_version(tmp_path: Path) -> None:
    from autopkgtest_hw.detect.udev import module_version

    pattern = str(tmp_path / "{}" / "version")
    (tmp_path / "nvidia").mkdir()
    (tmp_path / "nvidia" / "version").write_text("550.54.15\n")
    (tmp_path / "amdgpu").mkdir()
    (tmp_path / "amdgpu" / "version").write_text("6.10.5\n")  # AMD's amdgpu-dkms
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "version").write_text("1.0\x1b[2J\n")
    assert module_version("nvidia", pattern) == "550.54.15"
    assert module_version("amdgpu", pattern) == "6.10.5"
    assert module_version("i915", pattern) is None  # in-tree drivers tell none
    assert module_version("evil", pattern) is None  # only a version reaches a verdict
    assert module_version("../etc", pattern) is None
