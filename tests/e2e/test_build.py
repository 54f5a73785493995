"""autopkgtest-hw build: a real sbuild (autopkgtest chroot mode) through hwgpu around unshare.

The example package examples/hwbuild runs an OpenCL kernel in its build-time
test (dh_auto_test -> make check) on PoCL inside the build testbed.  The
inventory pins a fake GPU (a real 195:3 node, with OpenCL) beside the PoCL
device: the build allocates both, holds the GPU's lock for the whole build
(the test watches `status` during the build) and releases it after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autopkgtest_hw.locks.allocate import lock_name
from autopkgtest_hw.spec.inventory import Cpu, Device

from .fixtures import (
    HAVE_AUTOPKGTEST,
    IS_ROOT,
    ROOT,
    VENV_BIN,
    env,
    fake_nvidia,
    lock_is_free,
    make_char_device,
    save_inventory,
)

pytestmark = pytest.mark.skipif(
    not (HAVE_AUTOPKGTEST and IS_ROOT and shutil.which("sbuild")),
    reason="needs autopkgtest, sbuild and root (mknod, unshare testbeds)",
)

ADT_HW = str(VENV_BIN / "autopkgtest-hw")
POCL = Device(
    classes=("opencl",),
    vendor="amd",
    model="pthread",
    opencl_type="cpu",
    opencl_platform="Portable Computing Language",
    sources=("opencl",),
)
BUILD_TIMEOUT = 1200


def source_package(tmp_path: Path) -> Path:
    """examples/hwbuild as a .dsc (dpkg-source -b)."""
    work = tmp_path / "src"
    work.mkdir()
    shutil.copytree(ROOT / "examples" / "hwbuild", work / "hwbuild")
    subprocess.run(["dpkg-source", "-b", "hwbuild"], cwd=work, capture_output=True, check=True)
    return work / "hwbuild_1.0.dsc"


def build_argv(inv: str, locks: Path, dsc: Path, tarball: Path) -> list[str]:
    return [
        ADT_HW,
        "build",
        "--inventory",
        inv,
        "--lock-dir",
        str(locks),
        "--dist",
        "bookworm",
        "--run-autopkgtest",
        "--autopkgtest-arg=-U",  # the cached tarball's apt lists may be old
        "--sbuild-arg=--no-run-lintian",
        "--sbuild-arg=--no-run-piuparts",
        str(dsc),
        "--",
        "unshare",
        "--tarball",
        str(tarball),
    ]


def build_state(inv: str, locks: Path) -> dict[str, object]:
    out = subprocess.run(
        [ADT_HW, "status", "--json", "--inventory", inv, "--lock-dir", str(locks)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    state: dict[str, object] = json.loads(out)["devices"][0]
    return state


def leftovers(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(cmd.replace("\0", " "))
    return found


def test_sbuild_builds_with_the_gpu_locked_and_runs_needs_hw_autopkgtests(
    tmp_path: Path, bookworm_tarball: Path
) -> None:
    node = make_char_device(tmp_path / "gpu3", "nvidia3", 3)
    gpu = replace(
        fake_nvidia(node, index=3),
        classes=("gpu", "cuda", "opencl"),
        opencl_type="gpu",
        opencl_platform="NVIDIA CUDA",
    )
    inv = save_inventory(tmp_path / "inv.json", gpu, POCL)
    locks = tmp_path / "locks"
    out = tmp_path / "out"
    out.mkdir()
    dsc = source_package(tmp_path)
    log = open(tmp_path / "build.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        build_argv(inv, locks, dsc, bookworm_tarball),
        cwd=out,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env(),
    )
    seen_held: list[dict[str, object]] = []
    try:
        while proc.poll() is None:  # watch the lock while sbuild runs
            state = build_state(inv, locks)
            if state["state"] == "held":
                seen_held.append(state)
            time.sleep(0.5)
        proc.wait(timeout=BUILD_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.seek(0)
        output = log.read()
        log.close()
    assert proc.returncode == 0, output[-4000:]
    assert "XS-Requires-Hwspec: opencl:type=any satisfied" in output
    # The lock was held by the build, for hwbuild, while sbuild ran; it is free now.
    assert seen_held, "the device was never seen held during the build"
    [holder] = seen_held[0]["holders"]  # type: ignore[misc]
    assert holder["kind"] == "build" and holder["package"] == "hwbuild"
    assert holder["pid"] == proc.pid and holder["verified"]
    assert lock_is_free(str(locks / lock_name(gpu)))
    assert build_state(inv, locks)["state"] == "free"
    # The build-time test ran the kernel inside the build testbed, with the node bound in.
    [buildlog] = [p for p in out.glob("hwbuild_1.0_amd64*.build") if not p.is_symlink()]
    text = buildlog.read_text(errors="replace")
    assert "hwbuild-vadd: 1024 sums correct on OpenCL device" in text
    assert f"bind-mounting directories (this server binds no files): {tmp_path / 'gpu3'}" in text
    assert (out / "hwbuild_1.0_amd64.deb").is_file()
    # sbuild's autopkgtest ran through autopkgtest-hw run: needs-hw: understood, not skipped
    # as an unknown restriction.
    assert "vadd                 PASS" in text
    assert (
        "rocm-vadd            SKIP needs-hw:rocm not satisfied: testbed has no ROCm device" in text
    )
    assert "Autopkgtest: pass" in text
    assert leftovers(str(tmp_path)) == []


def test_build_is_refused_with_the_verdict_where_the_spec_does_not_hold(tmp_path: Path) -> None:
    # No OpenCL device at all: not even the CPU, whose architecture is unknown (an amd64
    # CPU would be one, since the build installs PoCL itself).
    inv = save_inventory(tmp_path / "inv.json", cpu=Cpu(cores=2))
    out = tmp_path / "out"
    out.mkdir()
    dsc = source_package(tmp_path)
    run = subprocess.run(
        build_argv(inv, tmp_path / "locks", dsc, tmp_path / "no.tar"),
        cwd=out,
        capture_output=True,
        text=True,
        env=env(),
        check=False,
    )
    assert run.returncode == 3
    assert "hwbuild: XS-Requires-Hwspec: opencl:type=any not satisfied: machine has no" in (
        run.stderr
    )
    assert "not building hwbuild here" in run.stderr
    assert list(out.iterdir()) == []  # sbuild never ran
