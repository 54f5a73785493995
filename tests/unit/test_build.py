"""autopkgtest-hw build without running sbuild: the package's specs and sbuild's command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autopkgtest_hw.source.build import BuildError, read_package, sbuild_argv, verdicts
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

ROOT = Path(__file__).resolve().parent.parent.parent
POCL = Device(classes=("opencl",), vendor="amd", model="pthread", opencl_type="cpu")


def test_the_source_tree_and_its_dsc_give_the_same_specs(tmp_path: Path) -> None:
    tree = read_package(str(ROOT / "examples" / "hwbuild"))
    assert (tree.source, tree.hwspecs) == ("hwbuild", ("opencl:type=any",))
    if shutil.which("dpkg-source") is None:
        pytest.skip("dpkg-source is not installed")
    shutil.copytree(ROOT / "examples" / "hwbuild", tmp_path / "hwbuild")
    subprocess.run(["dpkg-source", "-b", "hwbuild"], cwd=tmp_path, capture_output=True, check=True)
    dsc = read_package(str(tmp_path / "hwbuild_1.0.dsc"))
    assert (dsc.source, dsc.hwspecs) == ("hwbuild", ("opencl:type=any",))


def test_verdicts_and_a_bad_spec(tmp_path: Path) -> None:
    pkg = read_package(str(ROOT / "examples" / "hwbuild"))
    [yes] = verdicts(pkg, Inventory(cpu=Cpu(arch="amd64"), devices=(POCL,)))
    # Any amd64 CPU is an OpenCL CPU device (the build installs PoCL); an unknown one is not.
    [cpu] = verdicts(pkg, Inventory(cpu=Cpu(arch="amd64"), devices=()))
    assert cpu.satisfied
    [no] = verdicts(pkg, Inventory(cpu=Cpu(), devices=()))
    assert yes.satisfied and not no.satisfied
    assert no.message.startswith("XS-Requires-Hwspec: opencl:type=any not satisfied: ")
    (tmp_path / "debian").mkdir()
    (tmp_path / "debian" / "control").write_text(
        "Source: bad\nXS-Requires-Hwspec: cuda:cc>>8\n\nPackage: bad\nArchitecture: all\n"
    )
    with pytest.raises(BuildError, match=r"bad: XS-Requires-Hwspec: invalid hardware spec"):
        verdicts(read_package(str(tmp_path)), Inventory())


def test_not_a_package() -> None:
    with pytest.raises(BuildError, match=r"neither a \.dsc file nor a source tree"):
        read_package("/nonexistent")


def test_sbuild_gets_hwgpu_with_escaped_options_and_autopkgtest_hw_run() -> None:
    pkg = read_package(str(ROOT / "examples" / "hwbuild"))
    plan = sbuild_argv(
        pkg,
        sbuild="/usr/bin/sbuild",
        hwgpu="/usr/bin/autopkgtest-virt-hwgpu",
        autopkgtest_hw="/usr/bin/autopkgtest-hw",
        inventory_file="/tmp/x/devices.json",
        lock_dir="/tmp/x/locks",
        inner=["qemu", "--ram-size", "100%"],
        dist="bookworm",
        extra=["--no-run-lintian"],
        autopkgtest_args=["-U"],
    )
    argv = plan.argv
    assert argv[:3] == [
        "/usr/bin/sbuild",
        "--chroot-mode=autopkgtest",
        "--autopkgtest-virt-server=/usr/bin/autopkgtest-virt-hwgpu",
    ]
    assert "--autopkgtest-virt-server-opt=--shared" in argv
    assert "--autopkgtest-virt-server-opt=100%%" in argv  # sbuild expands %
    assert argv.index("--autopkgtest-virt-server-opt=build") > argv.index(
        "--autopkgtest-virt-server-opt=--hold-kind"
    )
    roots = [a.split("=", 1)[1] for a in argv if a.startswith("--autopkgtest-root-arg=")]
    assert roots == ["/usr/bin/autopkgtest-hw", "run", "--hw-autopkgtest"]
    opts = [a.split("=", 1)[1] for a in argv if a.startswith("--autopkgtest-opt=")]
    assert opts[:3] == ["-U", "--", "/usr/bin/autopkgtest-virt-hwgpu"]
    assert argv[-2:] == ["--no-run-lintian", str(ROOT / "examples" / "hwbuild")]
