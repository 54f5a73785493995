"""What ``autopkgtest-hw detect`` prints for people, and its exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from autopkgtest_hw.spec.inventory import Cpu, DetectorReport, Inventory
from autopkgtest_hw.spec.render import describe_device, inventory_table

from .devices import H100_PCIE as H100
from .devices import POCL_DETECTED as POCL
from .devices import SERVER_CPU as CPU

ROOT = Path(__file__).resolve().parent.parent.parent

REPORTS = (
    DetectorReport("cpu", "ok", "64 logical CPUs"),
    DetectorReport("udev", "ok", "1 GPU", 1),
    DetectorReport("nvml", "ok", "1 GPU", 1),
    DetectorReport("opencl", "unavailable", "no OpenCL platform (no ICD installed or none loads)"),
)


def test_table_like_nvidia_smi_and_clinfo() -> None:
    text = inventory_table(Inventory(cpu=CPU, devices=(H100, POCL), detectors=REPORTS))
    lines = text.splitlines()
    assert lines[0] == "CPU: AMD EPYC 7B13 (amd64, 64 logical CPUs, 512GiB RAM, 1 flag)"
    assert "GPU 0: NVIDIA H100 PCIe (UUID: GPU-abc)" in lines
    assert (
        "    nvidia 10de:2330 at 0000:3b:00.0, 80GiB, sm_90 (cc 9.0), driver nvidia 550.54.15,"
        " CUDA 12.4, MIG on"
    ) in lines
    assert "    nodes /dev/nvidia0 /dev/nvidiactl; IOMMU group 17; NUMA node 0" in lines
    assert "    classes: gpu cuda opencl vulkan video (seen by udev, nvml)" in lines
    assert "OpenCL 1: pthread-haswell-AMD EPYC" in lines
    assert "    OpenCL 3.0 cpu on Portable Computing Language (fp64)" in lines
    assert "Classes: cpu gpu cuda opencl vulkan video" in lines
    assert "  opencl  unavailable  no OpenCL platform (no ICD installed or none loads)" in lines
    assert "  cpu     ok           64 logical CPUs" in lines


def test_table_without_devices() -> None:
    text = inventory_table(Inventory(cpu=Cpu(), detectors=REPORTS[:1]))
    assert "CPU: unknown model (unknown architecture)" in text
    assert "No GPU or other compute device found." in text
    assert "Classes: cpu" in text


def test_device_line_for_logs() -> None:
    line = describe_device(H100, "line", position=0)
    assert line.startswith("0: NVIDIA H100 PCIe (nvidia; 0000:3b:00.0; [10de:2330]; 80GiB; sm_90")
    assert line.endswith("classes: gpu,cuda,opencl,vulkan,video")  # today's rules, not stored
    assert "\n" not in line


def test_one_device_formatter_at_each_level_of_detail() -> None:
    assert describe_device(H100, "short", position=3) == "#3 NVIDIA H100 PCIe (0000:3b:00.0)"
    record = describe_device(H100)
    assert record.startswith("nvidia 'NVIDIA H100 PCIe' at 0000:3b:00.0 [10de:2330] arch sm_90")
    assert describe_device(H100, "asked", facts=["cc 9.0"]) == "NVIDIA H100 PCIe, cc 9.0"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *args], capture_output=True, text=True, timeout=60
    )


def test_detect_reads_a_saved_inventory(tmp_path: Path) -> None:
    saved = tmp_path / "inv.json"
    saved.write_text(Inventory(cpu=CPU, devices=(H100,), detectors=REPORTS).to_json())
    text = cli("detect", "--inventory", str(saved))
    assert text.returncode == 0
    assert "GPU 0: NVIDIA H100 PCIe (UUID: GPU-abc)" in text.stdout
    as_json = cli("detect", "--json", "--inventory", str(saved))
    assert Inventory.from_json(as_json.stdout).devices == (H100,)


def test_detect_with_an_unreadable_inventory_is_exit_2_without_traceback(tmp_path: Path) -> None:
    missing = cli("detect", "--inventory", str(tmp_path / "absent.json"))
    assert missing.returncode == 2
    assert "cannot read inventory" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    broken = cli("detect", "--inventory", str(bad))
    assert broken.returncode == 2
    assert "not JSON" in broken.stderr
    assert "Traceback" not in missing.stderr + broken.stderr


def test_detect_on_this_machine_lists_every_detector() -> None:
    result = cli("detect")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CPU: ")
    for name in ("cpu", "udev", "nvml", "opencl"):
        assert any(line.startswith(f"  {name} ") for line in result.stdout.splitlines()), name
