"""require: exit 77 with the reason, 2 for a bad spec, else exec the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hwdemo"
COMMAND = [sys.executable, "-m", "autopkgtest_hw", "require"]

T4 = Device(
    classes=("gpu", "cuda"),
    vendor="nvidia",
    model="Tesla T4",
    pci_address="0000:3b:00.0",
    memory=15 << 30,
    arch="sm_75",
    compute_capability="7.5",
)
POCL = Device(classes=("opencl",), model="pthread-EPYC", opencl_type="cpu", opencl_version="3.0")


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "inv.json"
    path.write_text(Inventory(cpu=Cpu(cores=2), devices=(T4, POCL)).to_json(), encoding="utf-8")
    return str(path)


def require(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, check=False)


def test_unsatisfied_spec_exits_77_with_the_reason(inventory: str) -> None:
    proc = require("--inventory", inventory, "cuda:cc>=8.0", "--", "sh", "-c", "echo ran")
    assert proc.returncode == 77
    assert proc.stdout == ""  # the command never ran
    assert proc.stderr == (
        "autopkgtest-hw: skipping: cuda:cc>=8.0 not satisfied: "
        "testbed has 1 CUDA device (Tesla T4, cc 7.5)\n"
    )


def test_all_specs_hold_so_the_command_replaces_the_process(inventory: str) -> None:
    script = ["sh", "-c", 'echo "pid $$ args $*"; exit 3', "sh", "--", "--inventory"]
    with subprocess.Popen(
        [*COMMAND, "--inventory", inventory, "cuda:cc>=7.0", "opencl:type=cpu", "--", *script],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        out, _ = proc.communicate()
    assert proc.returncode == 3  # the command's own status
    # exec, not a child: the shell has require's process id; "--" after the first stays an arg
    assert out == f"pid {proc.pid} args -- --inventory\n"


def test_every_spec_must_hold(inventory: str) -> None:
    proc = require("--inventory", inventory, "cuda", "rocm", "--", "true")
    assert proc.returncode == 77
    assert "rocm not satisfied: testbed has no ROCm device" in proc.stderr
    assert "cuda" not in proc.stderr  # only the failing spec is reported


def test_without_a_command_just_the_exit_status(inventory: str) -> None:
    assert require("--inventory", inventory, "cuda").returncode == 0
    assert require("--inventory", inventory, "cuda:count>=2").returncode == 77
    # --inventory after the specs works too
    assert require("cuda:mem>=24G", "--inventory", inventory).returncode == 77


def test_invalid_spec_exits_2_with_the_fix(inventory: str) -> None:
    proc = require("--inventory", inventory, "cdua", "--", "true")
    assert proc.returncode == 2
    assert "invalid hardware spec 'cdua': unknown class 'cdua'" in proc.stderr
    assert "did you mean 'cuda'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_command_without_separator_is_explained(inventory: str) -> None:
    proc = require("--inventory", inventory, "cuda", "sh", "-c", "true")
    assert proc.returncode == 2
    assert "put the command after --" in proc.stderr


def test_missing_command_and_unreadable_inventory(inventory: str, tmp_path: Path) -> None:
    proc = require("--inventory", inventory, "cpu", "--", "no-such-command-here")
    assert proc.returncode == 127
    assert "no-such-command-here: command not found" in proc.stderr
    proc = require("--inventory", str(tmp_path / "missing.json"), "cpu")
    assert proc.returncode == 2
    assert "cannot read inventory" in proc.stderr
    assert require().returncode == 2


@pytest.mark.skipif(not Path("/etc/OpenCL/vendors/pocl.icd").exists(), reason="needs PoCL")
def test_real_detection_finds_pocl() -> None:
    proc = require("opencl:type=cpu", "--", "sh", "-c", "echo found")
    assert (proc.returncode, proc.stdout) == (0, "found\n"), proc.stderr


@pytest.mark.skipif(
    not shutil.which("autopkgtest") or os.geteuid() != 0,
    reason="needs autopkgtest and root (the null testbed installs test dependencies)",
)
def test_inside_a_real_skippable_test(tmp_path: Path, inventory: str) -> None:
    """autopkgtest reports require's 77 as a skip of a skippable test, and runs the rest."""
    src = tmp_path / "pkg"
    shutil.copytree(EXAMPLE, src)
    req = " ".join([*COMMAND, "--inventory", inventory])
    (src / "debian" / "tests" / "control").write_text(
        f"Test-Command: {req} rocm:gfx90a -- true\n"
        "Features: test-name=needs-rocm\nRestrictions: skippable\nDepends: dpkg\n\n"
        f"Test-Command: {req} 'cuda:cc>=7.0' -- sh -c 'echo cuda test ran'\n"
        "Features: test-name=needs-cuda\nRestrictions: skippable\nDepends: dpkg\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        ["autopkgtest", str(src), "--output-dir", str(out), "--", "null"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    summary = (out / "summary").read_text().splitlines()
    assert "needs-rocm           SKIP exit status 77 and marked as skippable" in summary
    assert "needs-cuda           PASS" in summary
    assert proc.returncode == 2
    assert (out / "needs-cuda-stdout").read_text() == "cuda test ran\n"
