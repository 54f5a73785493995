"""On a real GPU host: detection finds the GPU and the specs hold.

Runs only where /dev/nvidia0 (with a loadable libnvidia-ml.so.1) or /dev/kfd
exists; skipped with the reason everywhere else.  ``tests/hardware/run.sh``
runs it on a fresh machine.  Output of ``autopkgtest-hw detect`` is printed
(use ``pytest -s`` to see it) so every run records the hardware it saw.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys

import pytest

from autopkgtest_hw.detect import detect_inventory
from autopkgtest_hw.spec.inventory import Inventory


def _nvidia_reason() -> str | None:
    if not os.path.exists("/dev/nvidia0"):
        return "no /dev/nvidia0"
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        return f"/dev/nvidia0 exists but libnvidia-ml.so.1 does not load: {exc}"
    return None


def _amd_reason() -> str | None:
    if not os.path.exists("/dev/kfd"):
        return "no /dev/kfd"
    if not os.path.isdir("/sys/class/kfd/kfd/topology/nodes"):
        return "/dev/kfd exists but there is no KFD topology in /sys"
    return None


NVIDIA_WHY_NOT = _nvidia_reason()
AMD_WHY_NOT = _amd_reason()
needs_nvidia = pytest.mark.skipif(NVIDIA_WHY_NOT is not None, reason=f"{NVIDIA_WHY_NOT}")
needs_amd = pytest.mark.skipif(AMD_WHY_NOT is not None, reason=f"{AMD_WHY_NOT}")
pytestmark = pytest.mark.skipif(
    NVIDIA_WHY_NOT is not None and AMD_WHY_NOT is not None,
    reason=f"no usable GPU here: {NVIDIA_WHY_NOT}; {AMD_WHY_NOT}",
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOPKGTEST_HW_DETECTORS"}
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_detect_output_for_the_log() -> None:
    result = cli("detect")
    print("\n$ autopkgtest-hw detect\n" + result.stdout + result.stderr)
    assert result.returncode == 0
    assert "Traceback" not in result.stderr


@needs_nvidia
def test_nvidia_gpu_seen_by_nvml_and_udev_as_one_device() -> None:
    inv = detect_inventory()
    reports = {r.name: r for r in inv.detectors}
    assert reports["nvml"].status == "ok", reports["nvml"].detail
    assert reports["udev"].status == "ok", reports["udev"].detail
    cuda = inv.of_class("cuda")
    assert cuda, "NVML reported no GPU"
    for gpu in cuda:
        assert gpu.sources[:2] == ("udev", "nvml"), f"{gpu.label} was not merged: {gpu.sources}"
        assert gpu.pci_address and gpu.pci_id and gpu.pci_id.startswith("10de:")
        assert gpu.compute_capability and gpu.arch == "sm_" + gpu.compute_capability.replace(
            ".", ""
        )
        assert gpu.memory and gpu.memory > 1 << 30
        assert any(n.startswith("/dev/nvidia") and n[11:].isdigit() for n in gpu.device_nodes)
        assert "gpu" in gpu.classes
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        gpus = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
        assert len(gpus) == len(cuda), listed.stdout


@needs_nvidia
def test_match_cuda() -> None:
    result = cli("match", "cuda")
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    cc = detect_inventory(["nvml"]).of_class("cuda")[0].compute_capability
    exact = cli("match", f"cuda:cc={cc}")
    assert exact.returncode == 0, exact.stdout
    assert cli("match", "cuda:cc>=99.0").returncode == 1


@needs_amd
def test_amd_gpu_has_its_gfx_target_and_kfd() -> None:
    inv = detect_inventory(["udev"])
    rocm = inv.of_class("rocm")
    assert rocm, f"no ROCm device; devices: {[d.to_dict() for d in inv.devices]}"
    for gpu in rocm:
        assert gpu.arch and gpu.arch.startswith("gfx")
        assert "/dev/kfd" in gpu.device_nodes
        assert any(n.startswith("/dev/dri/renderD") for n in gpu.device_nodes)
    result = cli("match", f"rocm:arch={rocm[0].arch}")
    assert result.returncode == 0, result.stdout


def test_json_output_reads_back() -> None:
    result = cli("detect", "--json")
    assert result.returncode == 0
    print("\n$ autopkgtest-hw detect --json\n" + result.stdout)
    inv = Inventory.from_json(result.stdout)
    assert Inventory.from_json(inv.to_json()) == inv
    assert json.loads(result.stdout)["version"] == 1
