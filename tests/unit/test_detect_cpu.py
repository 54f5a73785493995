"""The CPU detector: /proc/cpuinfo of several architectures, RAM, CPUs, dpkg architecture."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.detect import cpu
from autopkgtest_hw.spec.inventory import Inventory

X86 = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse2 avx2 avx512f amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: something else entirely
flags\t\t: fpu
"""

ARM64 = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40

processor\t: 1
Features\t: fp
"""

POWER = """\
processor\t: 0
cpu\t\t: POWER9 (architected), altivec supported
clock\t\t: 2200.000000MHz
revision\t: 2.2 (pvr 004e 1202)

timebase\t: 512000000
platform\t: pSeries
"""


def test_x86_cpuinfo() -> None:
    info = cpu.parse_cpuinfo(X86)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["vendor"] == "intel"
    assert info["flags"].split() == ["fpu", "vme", "sse2", "avx2", "avx512f", "amx_tile"]


def test_arm64_cpuinfo() -> None:
    info = cpu.parse_cpuinfo(ARM64)
    assert info["vendor"] == "arm"
    assert "sve" in info["flags"].split()
    assert "model" not in info  # arm64 kernels do not name the core


def test_power_cpuinfo() -> None:
    info = cpu.parse_cpuinfo(POWER)
    assert info["model"].startswith("POWER9")


def test_memtotal(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683656 kB\nMemFree:         1000 kB\n")
    assert cpu.read_memtotal(str(meminfo)) == 24683656 * 1024
    assert cpu.read_memtotal(str(tmp_path / "absent")) is None


def test_this_machine() -> None:
    found, report = cpu.detect()
    assert report.status == "ok"
    assert found.cores == len(os.sched_getaffinity(0))
    assert found.memory is not None and found.memory > 0
    if shutil.which("dpkg"):
        dpkg = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
        assert found.arch == dpkg.stdout.strip()
    if platform.machine() == "x86_64":
        assert "sse2" in found.flags


def run_detect(*prefix: str, env: dict[str, str] | None = None) -> Inventory:
    full_env = {**os.environ, "AUTOPKGTEST_HW_DETECTORS": "cpu", **(env or {})}
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "autopkgtest_hw", "detect", "--json"],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return Inventory.from_json(result.stdout)


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset is not installed")
def test_cores_are_the_cpus_this_process_may_use() -> None:
    # A testbed limited to one CPU must not claim the host's.
    inv = run_detect("taskset", "-c", "0")
    assert inv.cpu.cores == 1


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_architecture_without_dpkg_on_path() -> None:
    expected = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    inv = run_detect(env={"PATH": "/nonexistent"})
    assert inv.cpu.arch == expected.stdout.strip()


def test_machine_names_map_to_dpkg_architectures() -> None:
    assert cpu.MACHINE_TO_DPKG["x86_64"] == "amd64"
    assert cpu.MACHINE_TO_DPKG["aarch64"] == "arm64"
    assert cpu.MACHINE_TO_DPKG["ppc64le"] == "ppc64el"
