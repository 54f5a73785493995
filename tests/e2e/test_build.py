"""autopkgtest-hw build: a real sbuild (autopkgtest chroot mode) through hwgpu around unshare.

The example package examples/hwbuild runs an OpenCL kernel in its build-time
test (dh_auto_test -> make check) on PoCL inside the build testbed.  The
inventory pins a fake GPU (a real 195:3 node, with OpenCL) beside the PoCL
device; PoCL alone satisfies the package's spec, so the build is asked for
the GPU with --gpu: it holds the GPU's lock for the whole build (the test
watches `status` during the build) and releases it after the build's last
process is gone, even when `autopkgtest-hw build` itself was SIGKILLed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
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


def build_argv(
    inv: str, locks: Path, dsc: Path, tarball: Path, *, gpu: str | None = "3", adt: bool = True
) -> list[str]:
    return [
        ADT_HW,
        "build",
        "--inventory",
        inv,
        "--lock-dir",
        str(locks),
        *(["--gpu", gpu] if gpu else []),
        "--dist",
        "bookworm",
        # -U: the cached tarball's apt lists may be old
        *(["--run-autopkgtest", "--autopkgtest-arg=-U"] if adt else []),
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
    # Output to a file: sbuild prints nothing, so the phases are said, with times and the log.
    for phase in ("dependencies (testbed took ", "build (dependencies took ", "autopkgtest ("):
        assert f"autopkgtest-hw: hwbuild: {phase}" in output, output
    assert "autopkgtest-hw: hwbuild: sbuild exited 0 after " in output
    assert f"autopkgtest-hw: hwbuild: sbuild log: {out}/hwbuild_1.0_amd64-" in output
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


def building(out: Path) -> bool:
    """Whether sbuild's log says dpkg-buildpackage runs (in the build testbed)."""
    for log in out.glob("hwbuild_*.build"):
        if not log.is_symlink() and "\ndpkg-buildpackage\n-----" in log.read_text(errors="replace"):
            return True
    return False


def test_sigkill_of_build_keeps_the_device_locked_until_the_builds_last_process_is_gone(
    tmp_path: Path, bookworm_tarball: Path
) -> None:
    node = make_char_device(tmp_path / "gpu3", "nvidia3", 3)
    gpu = replace(fake_nvidia(node, index=3), classes=("gpu", "cuda", "opencl"), opencl_type="gpu")
    inv = save_inventory(tmp_path / "inv.json", gpu, POCL)
    locks = tmp_path / "locks"
    lock = str(locks / lock_name(gpu))
    out = tmp_path / "out"
    out.mkdir()
    dsc = source_package(tmp_path)
    # A TMPDIR of its own (short: sockets live there): what the build leaves is seen there.
    tmp = tempfile.mkdtemp(prefix="hwb-")
    log_path = tmp_path / "build.log"
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                build_argv(inv, locks, dsc, bookworm_tarball, adt=False),
                cwd=out,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env(), "TMPDIR": tmp},
            )
        deadline = time.monotonic() + BUILD_TIMEOUT
        while not building(out):
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert not lock_is_free(lock)
        proc.send_signal(signal.SIGKILL)  # mid-build: dpkg-buildpackage runs in the testbed
        proc.wait()
        # The build's processes (sbuild stopping, the testbeds closing) hold the device ...
        held_while_alive = []
        while live := leftovers(str(tmp_path)) + leftovers(tmp):
            held_while_alive.append((not lock_is_free(lock), live))
            assert time.monotonic() < deadline, live
            time.sleep(0.2)
        assert held_while_alive, "no process of the build outlived the SIGKILL"
        assert all(held for held, _ in held_while_alive), [
            live for held, live in held_while_alive if not held
        ]
        # ... and once the last one is gone, it is free and nothing is left behind.
        assert lock_is_free(lock)
        assert build_state(inv, locks)["state"] == "free"
        assert os.listdir(tmp) == []
        text = log_path.read_text()
        assert "autopkgtest-hw: the build command is gone: stopping sbuild" in text, text[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
