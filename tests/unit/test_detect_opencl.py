"""The real pyopencl path with PoCL, and the real CLI on this machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.detect import detect_inventory, opencl
from autopkgtest_hw.spec.inventory import Device, Inventory

cl = pytest.importorskip("pyopencl", reason="pyopencl is not installed")
CLI = Path(sys.executable).with_name("autopkgtest-hw")


def pocl_devices() -> list[Device]:
    devices, report = opencl.detect()
    assert report.status == "ok", report.detail
    found = [d for d in devices if d.opencl_platform == "Portable Computing Language"]
    if not found:
        pytest.skip("PoCL (pocl-opencl-icd) is not installed")
    return found


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_pocl_cpu_device() -> None:
    (dev,) = pocl_devices()
    assert dev.opencl_type == "cpu"
    assert "cl_khr_fp64" in dev.opencl_extensions
    assert dev.opencl_version is not None and re.fullmatch(r"\d+\.\d+", dev.opencl_version)
    assert dev.memory is not None and dev.memory > 0
    assert dev.pci_address is None  # a CPU device has no PCI address
    assert dev.model
    assert dev.sources == ("opencl",)


def test_pocl_device_in_the_inventory_is_opencl_only() -> None:
    pocl_devices()
    inv = detect_inventory(["opencl"])
    pocl = [d for d in inv.devices if d.opencl_platform == "Portable Computing Language"]
    assert [d.classes for d in pocl] == [("opencl",)]
    assert "opencl" in inv.classes()


def test_match_opencl_cpu_through_the_real_cli() -> None:
    pocl_devices()
    result = cli("match", "opencl:type=cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "opencl:type=cpu satisfied" in result.stdout
    assert cli("match", "opencl:type=any:fp64").returncode == 0


def test_match_cuda_fails_with_a_reason() -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA driver: see tests/hardware")
    result = cli("match", "cuda")
    assert result.returncode == 1
    assert "no CUDA device" in result.stdout
    assert "Traceback" not in result.stderr


def test_match_typo_is_a_spec_error_with_a_suggestion() -> None:
    result = cli("match", "cdua")
    assert result.returncode == 2
    assert "cuda" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_icd_makes_opencl_unavailable_and_detection_goes_on(tmp_path: Path) -> None:
    env = {"OCL_ICD_VENDORS": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = cli("detect", "--json", env=env)
    assert result.returncode == 0, result.stderr
    inv = Inventory.from_json(result.stdout)
    reports = {r.name: r for r in inv.detectors}
    assert reports["opencl"].status == "unavailable"
    assert "no OpenCL platform" in reports["opencl"].detail
    assert reports["cpu"].status == "ok"
    assert not any("opencl" in d.sources for d in inv.devices)
    text = cli("detect", env=env)
    assert re.search(r"opencl\s+unavailable\s+no OpenCL platform", text.stdout)


@pytest.mark.parametrize(
    ("bits", "kind"),
    [
        ("GPU", "gpu"),
        ("ACCELERATOR", "accelerator"),
        ("CUSTOM", "accelerator"),
        ("CPU", "cpu"),
        # Oclgrind says CPU|GPU|ACCELERATOR|DEFAULT: a simulator on the CPU, never a GPU.
        ("CPU|GPU|ACCELERATOR|DEFAULT", "cpu"),
        ("GPU|DEFAULT", "gpu"),
    ],
)
def test_device_type_words(bits: str, kind: str) -> None:
    value = 0
    for name in bits.split("|"):
        value |= getattr(cl.device_type, name)
    assert opencl.device_type(cl, value) == kind


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("OpenCL 3.0 PoCL HSTR: pthread-x86_64-pc-linux-gnu-haswell", "3.0"),
        ("OpenCL 3.0 CUDA", "3.0"),
        ("OpenCL 2.0 AMD-APP (3614.0)", "2.0"),
        ("OpenCL 1.2 Oclgrind 21.10", "1.2"),
        ("something else", None),
    ],
)
def test_opencl_version(text: str, version: str | None) -> None:
    assert opencl.opencl_version(text) == version
