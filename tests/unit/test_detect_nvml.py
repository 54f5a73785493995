"""The real pynvml path against a stub libnvidia-ml.so.1 (tests/nvml_stub), in subprocesses.

pynvml loads ``libnvidia-ml.so.1`` with ctypes, so each case runs
``python -m autopkgtest_hw`` with LD_LIBRARY_PATH pointing at the stub that
the ``nvml_stub`` fixture compiled.  Combined with the umockdev NVIDIA hosts,
NVML's facts and udev's must land on one device per GPU.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autopkgtest_hw.spec.inventory import Inventory
from tests.nvml_stub import nvml_stub  # noqa: F401  (the fixture)
from tests.unit.test_detect_udev import detect, report, run_cli, verdict

MiB = 1 << 20
needs_umockdev = pytest.mark.skipif(
    shutil.which("umockdev-run") is None, reason="umockdev-run is not installed (package umockdev)"
)


def stub_env(stub: Path, **knobs: str) -> dict[str, str]:
    env = {"LD_LIBRARY_PATH": f"{stub}:{os.environ.get('LD_LIBRARY_PATH', '')}".rstrip(":")}
    env.update({f"FAKE_NVML_{k.upper()}": v for k, v in knobs.items()})
    return env


def test_one_h100(nvml_stub: Path) -> None:  # noqa: F811
    inv = detect(None, env=stub_env(nvml_stub), detectors="nvml")
    assert report(inv, "nvml") == ("ok", "1 GPU")
    (gpu,) = inv.devices
    assert gpu.model == "NVIDIA H100 PCIe"
    assert gpu.vendor == "nvidia"
    assert gpu.uuid == "GPU-6e2ae7a1-8c1e-4d6b-9f3a-000000000000"
    assert gpu.pci_address == "0000:3b:00.0"  # NVML says 00000000:3B:00.0
    assert gpu.memory == 81559 * MiB
    assert gpu.compute_capability == "9.0"
    assert gpu.arch == "sm_90"
    assert gpu.driver == "nvidia"
    assert gpu.driver_version == "550.54.15"
    assert gpu.cuda_version == "12.4"
    assert gpu.mig_mode is False
    assert gpu.index == 0
    assert gpu.numa_node is None  # the stub has no nvmlDeviceGetNumaNodeId, like old drivers
    assert gpu.device_nodes[0] == "/dev/nvidia0"
    assert gpu.classes == ("gpu", "cuda", "opencl", "vulkan", "video")
    assert verdict(inv, "cuda:cc>=8.0:mem>=64G")
    assert verdict(inv, "cuda:sm_90")
    assert verdict(inv, "cuda:cuda>=12.0:driver>=535")
    assert not verdict(inv, "cuda:cc>=10.0")


def test_nvenc_codecs_come_from_nvml(nvml_stub: Path) -> None:  # noqa: F811
    (h100,) = detect(None, env=stub_env(nvml_stub), detectors="nvml").devices
    assert (h100.video_encode, h100.video_known) == ((), ("encode",))  # no NVENC on an H100
    inv = detect(None, env=stub_env(nvml_stub), detectors="nvml")
    assert not verdict(inv, "video:encode=h264")
    inv = detect(None, env=stub_env(nvml_stub, nvenc="3"), detectors="nvml")
    (gpu,) = inv.devices
    assert gpu.video_encode == ("h264", "hevc")
    assert verdict(inv, "video:encode=hevc")
    assert not verdict(inv, "video:encode=av1")


def test_match_command_with_the_stub(nvml_stub: Path) -> None:  # noqa: F811
    ok = run_cli(None, "match", "cuda:cc>=8.0", env=stub_env(nvml_stub), detectors="nvml")
    assert ok.returncode == 0, ok.stderr
    no = run_cli(None, "match", "cuda:count>=2", env=stub_env(nvml_stub), detectors="nvml")
    assert no.returncode == 1
    assert "NVIDIA H100 PCIe" in no.stdout


def test_two_h100_one_with_mig(nvml_stub: Path) -> None:  # noqa: F811
    env = stub_env(nvml_stub, count="2", mig_gpu="0")
    inv = detect(None, env=env, detectors="nvml")
    assert [d.pci_address for d in inv.devices] == ["0000:3b:00.0", "0000:3c:00.0"]
    assert [d.mig_mode for d in inv.devices] == [True, False]
    assert [d.index for d in inv.devices] == [0, 1]
    assert [d.device_nodes[0] for d in inv.devices] == ["/dev/nvidia0", "/dev/nvidia1"]
    assert len({d.uuid for d in inv.devices}) == 2
    assert verdict(inv, "cuda:count>=2")
    assert not verdict(inv, "cuda:count>=3")


def test_driver_not_loaded(nvml_stub: Path) -> None:  # noqa: F811
    inv = detect(None, env=stub_env(nvml_stub, init_rc="9"), detectors="cpu,nvml")
    assert report(inv, "nvml") == ("unavailable", "Driver Not Loaded")
    assert inv.devices == ()
    assert report(inv, "cpu")[0] == "ok"
    result = run_cli(None, "match", "cuda", env=stub_env(nvml_stub, init_rc="9"), detectors="nvml")
    assert result.returncode == 1
    assert "no CUDA device" in result.stdout


def test_no_permission(nvml_stub: Path) -> None:  # noqa: F811
    inv = detect(None, env=stub_env(nvml_stub, init_rc="4"), detectors="nvml")
    assert report(inv, "nvml") == ("unavailable", "Insufficient Permissions")


def test_unexpected_nvml_failure_is_an_error_report(nvml_stub: Path) -> None:  # noqa: F811
    inv = detect(None, env=stub_env(nvml_stub, init_rc="999"), detectors="nvml")
    status, detail = report(inv, "nvml")
    assert status == "error"
    assert detail.startswith("NVMLError")
    assert "\n" not in detail


def test_a_lost_gpu_is_named_and_the_others_still_count(nvml_stub: Path) -> None:  # noqa: F811
    inv = detect(None, env=stub_env(nvml_stub, count="2", lost_gpu="0"), detectors="nvml")
    assert report(inv, "nvml") == ("ok", "1 GPU; GPU 0: GPU is lost")
    assert [d.index for d in inv.devices] == [1]


def test_library_missing(tmp_path: Path) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has the NVIDIA driver; its library would be found")
    env = {"LD_LIBRARY_PATH": str(tmp_path)}  # an empty directory: no libnvidia-ml.so.1
    inv = detect(None, env=env, detectors="nvml")
    assert report(inv, "nvml") == ("unavailable", "NVML Shared Library Not Found")
    assert inv.devices == ()


def test_pynvml_not_installed(tmp_path: Path) -> None:
    # A module named pynvml that cannot be imported stands for an absent nvidia-ml-py.
    (tmp_path / "pynvml.py").write_text("raise ImportError('no NVML bindings here')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    inv = detect(None, env=env, detectors="nvml")
    status, detail = report(inv, "nvml")
    assert status == "unavailable"
    assert "nvidia-ml-py" in detail


@needs_umockdev
def test_nvml_and_udev_merge_into_one_device(nvml_stub: Path) -> None:  # noqa: F811
    inv = detect("nvidia-h100", env=stub_env(nvml_stub), detectors="udev,nvml")
    (gpu,) = inv.devices
    assert gpu.sources == ("udev", "nvml")
    assert gpu.model == "NVIDIA H100 PCIe"  # NVML's marketing name wins over the PCI database
    assert gpu.pci_id == "10de:2330"  # from udev
    assert gpu.iommu_group == "17"  # from udev
    assert gpu.uuid is not None and gpu.cuda_version == "12.4"  # from NVML
    assert gpu.device_nodes == ("/dev/nvidia0", "/dev/nvidiactl")
    assert gpu.classes == ("gpu", "cuda", "opencl", "vulkan", "video")
    assert verdict(inv, "cuda:cc>=9.0")
    assert not verdict(inv, "rocm:gfx90a")


@needs_umockdev
def test_multi_gpu_host_with_nvml(nvml_stub: Path) -> None:  # noqa: F811
    env = stub_env(nvml_stub, count="2", mig_gpu="1")
    inv = detect("multi-gpu", env=env, detectors="udev,nvml")
    assert [d.pci_address for d in inv.devices] == ["0000:3b:00.0", "0000:3c:00.0", "0000:c1:00.0"]
    assert [d.sources for d in inv.devices] == [("udev", "nvml"), ("udev", "nvml"), ("udev",)]
    assert [d.mig_mode for d in inv.devices] == [False, True, None]
    assert inv.classes() == ("cpu", "gpu", "cuda", "rocm", "opencl", "vulkan", "video")
    assert verdict(inv, "cuda:count=2")
    assert verdict(inv, "cuda|rocm")
    assert verdict(inv, "rocm:gfx90a")
    assert verdict(inv, "gpu:count=3")


@needs_umockdev
def test_nvml_gpu_missing_from_udev_stays_a_separate_device(nvml_stub: Path) -> None:  # noqa: F811
    # NVML reports a GPU on bus 0x5e that the recorded host does not have:
    # two devices, never a wrong merge.
    inv = detect("nvidia-h100", env=stub_env(nvml_stub, bus="5e"), detectors="udev,nvml")
    assert [(d.pci_address, d.sources) for d in inv.devices] == [
        ("0000:3b:00.0", ("udev",)),
        ("0000:5e:00.0", ("nvml",)),
    ]


def test_detect_text_output_names_the_gpu(nvml_stub: Path) -> None:  # noqa: F811
    result = run_cli(None, "detect", env=stub_env(nvml_stub, mig_gpu="0"), detectors="nvml")
    assert result.returncode == 0
    assert (
        "GPU 0: NVIDIA H100 PCIe (UUID: GPU-6e2ae7a1-8c1e-4d6b-9f3a-000000000000)" in result.stdout
    )
    assert "sm_90 (cc 9.0)" in result.stdout
    assert "CUDA 12.4" in result.stdout
    assert "MIG on" in result.stdout
    assert "classes: gpu cuda opencl vulkan video (seen by nvml)" in result.stdout


def test_json_round_trip_of_a_detected_inventory(nvml_stub: Path) -> None:  # noqa: F811
    result = run_cli(None, "detect", "--json", env=stub_env(nvml_stub, count="2"), detectors=None)
    assert result.returncode == 0
    inv = Inventory.from_json(result.stdout)
    assert Inventory.from_json(inv.to_json()) == inv
    assert Inventory.from_capabilities(inv.to_capabilities()) is not None
    again = Inventory.from_capabilities(inv.to_capabilities())
    assert again is not None and again.devices == inv.devices and again.cpu == inv.cpu
