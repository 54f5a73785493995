"""The host inventory cache: each fingerprint component invalidates it, a hit equals a fresh run.

The fingerprint reads a fixture tree (its ``root`` pointed into tmp_path)
shaped like /proc, /sys and /dev; the command-line cases run the real
``autopkgtest-hw detect`` in subprocesses, on this host and on recorded
umockdev hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from autopkgtest_hw.detect import cache
from autopkgtest_hw.spec.inventory import Cpu, DetectorReport, Device, Inventory

DATA = Path(__file__).resolve().parent.parent / "data"


LIB = "usr/lib/x86_64-linux-gnu"


def tree(root: Path) -> str:
    """A small machine below ``root``: one NVIDIA GPU bound to nvidia, PoCL's ICD, a CPU."""
    (root / "proc/sys/kernel/random").mkdir(parents=True)
    (root / "proc/sys/kernel/random/boot_id").write_text("1111\n")
    gpu = root / "sys/bus/pci/devices/0000:3b:00.0"
    gpu.mkdir(parents=True)
    (gpu / "uevent").write_text("DRIVER=nvidia\nPCI_CLASS=30200\nPCI_ID=10DE:2330\n")
    (root / "sys/bus/pci/drivers/nvidia").mkdir(parents=True)
    (gpu / "driver").symlink_to(root / "sys/bus/pci/drivers/nvidia")
    (root / "sys/module/nvidia").mkdir(parents=True)
    (root / "sys/module/nvidia/version").write_text("550.54.15\n")
    (root / "proc/driver/nvidia").mkdir(parents=True)
    (root / "proc/driver/nvidia/version").write_text("NVRM version: 550.54.15\n")
    (root / "dev/dri").mkdir(parents=True)
    (root / "dev/nvidia0").write_text("")
    (root / "sys/class/kfd/kfd/topology").mkdir(parents=True)
    (root / "etc/OpenCL/vendors").mkdir(parents=True)
    (root / LIB).mkdir(parents=True)
    (root / LIB / "libpocl.so.2").write_text("v1")
    (root / "etc/OpenCL/vendors/pocl.icd").write_text("libpocl.so.2\n")
    (root / "usr/share/vulkan/icd.d").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2000.0\n"
    )
    return str(root)


def _bind_other_driver(root: Path) -> None:
    link = root / "sys/bus/pci/devices/0000:3b:00.0/driver"
    link.unlink()
    (root / "sys/bus/pci/drivers/vfio-pci").mkdir()
    link.symlink_to(root / "sys/bus/pci/drivers/vfio-pci")


def _add_pci_device(root: Path) -> None:
    dev = root / "sys/bus/pci/devices/0000:af:00.0"
    dev.mkdir()
    (dev / "uevent").write_text("PCI_CLASS=30000\nPCI_ID=1002:740F\n")


def _replace(path: Path, text: str) -> None:
    """Replace a file the way dpkg does: a new file renamed over the old."""
    new = path.with_name(path.name + ".dpkg-new")
    new.write_text(text)
    new.rename(path)


def _mig_instance(root: Path) -> None:
    gi = root / "proc/driver/nvidia/capabilities/gpu0/mig/gi1"
    gi.mkdir(parents=True)
    (gi / "access").write_text("DeviceFileMinor: 3\n")


def _kfd_node(root: Path) -> None:
    node = root / "sys/class/kfd/kfd/topology/nodes/1"
    node.mkdir(parents=True)
    (node / "properties").write_text("gfx_target_version 90010\n")


def _accel_node(root: Path) -> None:
    (root / "dev/accel").mkdir()
    (root / "dev/accel/accel0").write_text("")


def _va_driver(root: Path) -> None:
    (root / LIB / "dri").mkdir()
    (root / LIB / "dri/radeonsi_drv_video.so").write_text("mesa")


#: (what changes on the machine, the component that must notice it)
CHANGES: list[tuple[str, Callable[[Path], object], str]] = [
    ("reboot", lambda r: (r / "proc/sys/kernel/random/boot_id").write_text("2222\n"), "boot"),
    ("driver rebound", _bind_other_driver, "pci"),
    ("device hot-plugged", _add_pci_device, "pci"),
    ("module upgraded", lambda r: (r / "sys/module/nvidia/version").write_text("555.1\n"), "pci"),
    (
        "NVIDIA driver version",
        lambda r: (r / "proc/driver/nvidia/version").write_text("NVRM version: 555.1\n"),
        "detector nvml",
    ),
    ("MIG instance created", _mig_instance, "detector nvml"),
    ("device node appears", lambda r: (r / "dev/dri/renderD128").write_text(""), "detector udev"),
    ("accelerator node appears", _accel_node, "detector udev"),
    ("KFD topology", _kfd_node, "detector udev"),
    (
        "ICD installed",
        lambda r: (r / "etc/OpenCL/vendors/nvidia.icd").write_text("libnvidia-opencl.so.1\n"),
        "detector opencl",
    ),
    ("ICD removed", lambda r: (r / "etc/OpenCL/vendors/pocl.icd").unlink(), "detector opencl"),
    ("ICD library upgraded", lambda r: _replace(r / LIB / "libpocl.so.2", "v2"), "detector opencl"),
    (
        "Vulkan driver installed",
        lambda r: (r / "usr/share/vulkan/icd.d/radeon_icd.x86_64.json").write_text(
            '{"ICD": {"library_path": "libvulkan_radeon.so"}}'
        ),
        "detector vulkan",
    ),
    ("VA-API driver installed", _va_driver, "detector vaapi"),
    (
        "CPU replaced",
        lambda r: (r / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Intel Xeon\n"),
        "cpu",
    ),
]


@pytest.mark.parametrize(("what", "change", "component"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_component_invalidates(
    tmp_path: Path, what: str, change: Callable[[Path], object], component: str
) -> None:
    src = tree(tmp_path)
    before = cache.fingerprint(root=src)
    assert cache.fingerprint(root=src) == before  # nothing changed: the same answer
    change(tmp_path)
    after = cache.fingerprint(root=src)
    changed = {k for k in before if before[k] != after[k]}
    assert component in changed, what


def test_clock_speed_does_not_invalidate(tmp_path: Path) -> None:
    src = tree(tmp_path)
    before = cache.fingerprint(root=src)
    (tmp_path / "proc/cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 3400.0\n"
    )
    assert cache.fingerprint(root=src) == before


@pytest.mark.parametrize(
    ("variable", "component"),
    [
        ("OCL_ICD_VENDORS", "detector opencl"),
        ("POCL_DEVICES", "detector opencl"),
        ("VK_ICD_FILENAMES", "detector vulkan"),
        ("LIBVA_DRIVER_NAME", "detector vaapi"),
        ("LD_LIBRARY_PATH", "process"),
    ],
)
def test_environment_the_libraries_read_invalidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, component: str
) -> None:
    src = tree(tmp_path)
    monkeypatch.delenv(variable, raising=False)
    before = cache.fingerprint(root=src)
    monkeypatch.setenv(variable, str(tmp_path / "elsewhere"))
    assert cache.fingerprint(root=src)[component] != before[component]


@pytest.mark.parametrize(("tool", "component"), [("vulkaninfo", "vulkan"), ("vainfo", "vaapi")])
def test_a_tool_installed_on_path_invalidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str, component: str
) -> None:
    src = tree(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    before = cache.fingerprint(root=src)
    (bin_dir / tool).write_text("#!/bin/sh\n")
    (bin_dir / tool).chmod(0o755)
    after = cache.fingerprint(root=src)
    assert {k for k in before if before[k] != after[k]} == {f"detector {component}"}


def test_detector_selection_invalidates(tmp_path: Path) -> None:
    src = tree(tmp_path)
    assert cache.fingerprint(["cpu", "udev"], root=src) != cache.fingerprint(
        ["cpu", "nvml", "opencl", "udev"], root=src
    )


INVENTORY = Inventory(
    devices=(Device(vendor="nvidia", model="H100", pci_address="0000:3b:00.0", sources=("udev",)),),
    detectors=(DetectorReport("udev", "ok", "1 GPU", 1),),
)


def _cache_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    return d


def test_store_then_load_round_trips(tmp_path: Path) -> None:
    d = _cache_dir(tmp_path)
    prints = cache.fingerprint(root=tree(tmp_path))
    assert cache.store(prints, INVENTORY, str(d))
    assert cache.load(prints, str(d)) == INVENTORY
    assert [p.name for p in d.iterdir()] == [cache.FILE_NAME]  # no temporary file left
    stale = {**prints, "boot": "0" * 16}
    assert cache.load(stale, str(d)) is None


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"format": 99}', b'{"format": 1, "fingerprint": {}}', b"\xff" * 10],
)
def test_unreadable_or_foreign_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    d = _cache_dir(tmp_path)
    prints = cache.fingerprint(root=tree(tmp_path))
    (d / cache.FILE_NAME).write_bytes(content)
    assert cache.load(prints, str(d)) is None
    assert cache.store(prints, INVENTORY, str(d))  # and rebuilt
    assert cache.load(prints, str(d)) == INVENTORY


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    d = _cache_dir(tmp_path)
    prints = cache.fingerprint(root=tree(tmp_path))
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text(json.dumps({"format": 1, "fingerprint": prints, "inventory": {}}))
    (d / cache.FILE_NAME).symlink_to(elsewhere)
    assert cache.load(prints, str(d)) is None
    assert cache.store(prints, INVENTORY, str(d))
    assert (
        json.loads(elsewhere.read_text())["inventory"] == {}
    )  # the link was replaced, not written through
    assert not (d / cache.FILE_NAME).is_symlink()


def test_a_directory_others_may_write_is_bypassed(tmp_path: Path) -> None:
    d = _cache_dir(tmp_path)
    prints = cache.fingerprint(root=tree(tmp_path))
    assert cache.store(prints, INVENTORY, str(d))
    d.chmod(0o777)
    assert cache.load(prints, str(d)) is None
    assert not cache.store(prints, INVENTORY, str(d))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_a_directory_of_another_user_is_bypassed(tmp_path: Path) -> None:
    d = _cache_dir(tmp_path)
    prints = cache.fingerprint(root=tree(tmp_path))
    assert cache.store(prints, INVENTORY, str(d))
    os.chown(d, 65534, 65534)
    assert cache.load(prints, str(d)) is None
    assert not cache.store(prints, INVENTORY, str(d))


def test_a_symlinked_directory_is_bypassed(tmp_path: Path) -> None:
    real = _cache_dir(tmp_path)
    prints = cache.fingerprint(root=tree(tmp_path))
    assert cache.store(prints, INVENTORY, str(real))
    (tmp_path / "link").symlink_to(real)
    assert cache.load(prints, str(tmp_path / "link")) is None


# -- the command line ---------------------------------------------------------


def detect(
    *args: str, umockdev: str | None = None, debug: bool = False
) -> tuple[dict[str, object], str]:
    env = dict(os.environ)
    env["AUTOPKGTEST_HW_DETECTORS"] = "cpu,udev" if umockdev else "cpu,udev,opencl"
    cmd = [
        sys.executable,
        "-m",
        "autopkgtest_hw",
        *(["-d"] if debug else []),
        "detect",
        "--json",
        *args,
    ]
    if umockdev:
        cmd = ["umockdev-run", "--device", str(DATA / f"{umockdev}.umockdev"), "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    Inventory.from_dict(data)  # still an inventory that --inventory reads
    return data, proc.stderr


def _without_origin(data: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in data.items() if k != "origin"}


def test_second_detect_comes_from_the_cache_and_equals_a_fresh_one() -> None:
    first, _ = detect()
    second, err = detect(debug=True)
    fresh, _ = detect("--no-cache")
    assert (first["origin"], second["origin"], fresh["origin"]) == ("detected", "cache", "detected")
    assert _without_origin(second) == _without_origin(fresh) == _without_origin(first)
    assert "inventory cache: hit" in err


def test_text_output_says_where_the_inventory_came_from() -> None:
    env = {**os.environ, "AUTOPKGTEST_HW_DETECTORS": "cpu,udev"}
    cmd = [sys.executable, "-m", "autopkgtest_hw", "detect"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    assert first.splitlines()[-1] == "Inventory: detected now"
    assert second.splitlines()[-1].startswith("Inventory: from the host inventory cache")


def test_cache_file_lives_in_the_cache_dir_and_a_corrupt_one_is_rebuilt() -> None:
    detect()
    path = Path(os.environ[cache.DIR_ENV]) / cache.FILE_NAME
    assert path.is_file()
    path.write_text("garbage")
    again, err = detect(debug=True)
    assert again["origin"] == "detected"
    assert "unreadable" in err
    assert detect()[0]["origin"] == "cache"


@pytest.mark.skipif(shutil.which("umockdev-run") is None, reason="umockdev-run is not installed")
def test_another_host_is_not_answered_from_the_cache() -> None:
    h100, _ = detect(umockdev="nvidia-h100")
    mi210, err = detect(umockdev="amd-mi210", debug=True)
    assert mi210["origin"] == "detected"
    assert "stale" in err
    fresh, _ = detect("--no-cache", umockdev="amd-mi210")
    assert _without_origin(mi210) == _without_origin(fresh)
    assert _without_origin(mi210) != _without_origin(h100)


def test_cpu_is_always_read_afresh(tmp_path: Path) -> None:
    """The cache holds no CPU: its cores depend on the process (taskset), so they are read anew."""
    detect()
    data = json.loads((Path(os.environ[cache.DIR_ENV]) / cache.FILE_NAME).read_text())
    assert Inventory.from_dict(data["inventory"]).cpu == Cpu()
    assert all(r["name"] != "cpu" for r in data["inventory"]["detectors"])


def test_device_node_permissions_invalidate(tmp_path: Path) -> None:
    src = tree(tmp_path)
    before = cache.fingerprint(root=src)
    (tmp_path / "dev/nvidia0").chmod(0o600)
    assert cache.fingerprint(root=src)["detector udev"] != before["detector udev"]


def test_a_library_installed_anywhere_invalidates(tmp_path: Path) -> None:
    """ldconfig rewrites ld.so.cache when a library (an NVML, an ICD) is installed anywhere."""
    src = tree(tmp_path)
    ld_cache = tmp_path / "etc/ld.so.cache"
    ld_cache.write_text("old")
    before = cache.fingerprint(root=src)
    _replace(ld_cache, "new")
    assert cache.fingerprint(root=src)["process"] != before["process"]


def test_an_answer_with_a_failed_detector_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector that errs (a driver resetting, say) may pass next time: nothing is cached."""
    from autopkgtest_hw import detect
    from autopkgtest_hw.detect import base

    def failing() -> tuple[object, DetectorReport]:
        return [], DetectorReport("opencl", base.ERROR, "RuntimeError: clGetPlatformIDs failed")

    monkeypatch.setenv("AUTOPKGTEST_HW_DETECTORS", "cpu,opencl")
    monkeypatch.setitem(base._REGISTRY, "opencl", base.Detector("opencl", 30, failing))
    assert detect.detect_host()[1] == detect.DETECTED
    assert not (Path(os.environ[cache.DIR_ENV]) / cache.FILE_NAME).exists()
    assert detect.detect_host()[1] == detect.DETECTED


def _unique_pci_id() -> tuple[str, str] | None:
    """A (vendor, device) id that exactly one PCI function of this host has."""
    seen: dict[tuple[str, str], int] = {}
    for dev in Path("/sys/bus/pci/devices").glob("*"):
        try:
            key = ((dev / "vendor").read_text().strip(), (dev / "device").read_text().strip())
        except OSError:
            continue
        seen[key] = seen.get(key, 0) + 1
    return next((k for k, n in sorted(seen.items()) if n == 1), None)


def test_a_vulkan_gpu_that_is_gone_is_not_answered_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vulkaninfo removed (its driver stack with it): the next detect no longer lists the GPU."""
    ids = _unique_pci_id()
    if ids is None:
        pytest.skip("no PCI function with a unique id on this host")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "vulkaninfo"
    tool.write_text(
        "#!/bin/sh\ncat <<'END'\nDevices:\n========\nGPU0:\n"
        f"\tapiVersion         = 1.3.230\n\tvendorID           = {ids[0]}\n"
        f"\tdeviceID           = {ids[1]}\n"
        "\tdeviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU\n"
        "\tdeviceName         = Fake GPU\nEND\n"
    )
    tool.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "AUTOPKGTEST_HW_DETECTORS": "cpu,vulkan",
    }
    cmd = [sys.executable, "-m", "autopkgtest_hw", "detect", "--json"]

    def vulkan_versions() -> tuple[str, list[object]]:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        data = json.loads(out)
        return data["origin"], [d.get("vulkan_version") for d in data["devices"]]

    assert vulkan_versions() == ("detected", ["1.3"])
    assert vulkan_versions() == ("cache", ["1.3"])
    tool.unlink()
    assert vulkan_versions() == ("detected", [])
