"""autopkgtest-hw build without running sbuild: the package's specs and sbuild's command line."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autopkgtest_hw.locks import allocate
from autopkgtest_hw.source import build_devices
from autopkgtest_hw.source.build import (
    BuildError,
    Package,
    parsed_specs,
    read_package,
    sbuild_argv,
    verdicts,
)
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


# -- which devices a build locks ---------------------------------------------------


def _gpu(i: int, cc: str = "9.0", opencl: bool = False) -> Device:
    return Device(
        classes=("gpu", "cuda", "opencl") if opencl else ("gpu", "cuda"),
        vendor="nvidia",
        model=f"GPU {i}",
        pci_address=f"0000:0{i}:00.0",
        compute_capability=cc,
        device_nodes=(f"/dev/nvidia{i}",),
        index=i,
        opencl_type="gpu" if opencl else None,
    )


FOUR_GPUS = Inventory(
    cpu=Cpu(arch="amd64"), devices=(*(_gpu(i, opencl=True) for i in range(4)), POCL)
)


def _locked(tmp_path: Path, hwspecs: tuple[str, ...], **kw: object) -> list[str | None]:
    """The devices a build of a package with ``hwspecs`` locks on FOUR_GPUS (real flocks)."""
    pkg = Package(str(tmp_path), "pkg", hwspecs)
    wanted = build_devices.request(parsed_specs(pkg), FOUR_GPUS, **kw)  # type: ignore[arg-type]
    alloc = allocate.acquire(wanted.candidates, wanted.count, str(tmp_path / "locks"))
    try:
        held = []
        for d in FOUR_GPUS.devices:
            if not allocate.needs_lock(d):
                continue
            with open(tmp_path / "locks" / allocate.lock_name(d), "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held.append(d.model)
        return held
    finally:
        alloc.release()


def test_a_build_locks_the_fewest_devices_its_specs_need(tmp_path: Path) -> None:
    # cuda:cc>=1.0 once took all four GPUs; one fits, so one is locked.
    assert _locked(tmp_path, ("cuda:cc>=1.0",)) == ["GPU 0"]
    assert _locked(tmp_path, ("cuda:count>=2:cc>=8.0",)) == ["GPU 0", "GPU 1"]
    # Every spec must hold with what is locked: one GPU that fits both.
    assert _locked(tmp_path, ("cuda:cc>=9.0", "opencl:type=gpu")) == ["GPU 0"]
    # PoCL (the CPU) satisfies it and needs no lock: no GPU is taken from others.
    assert _locked(tmp_path, ("opencl:type=any",)) == []


def test_gpu_and_count_follow_the_virt_servers_rules(tmp_path: Path) -> None:
    # --gpu SPEC: every device it fits, as autopkgtest-virt-hwgpu --gpu does ...
    assert _locked(tmp_path, ("opencl:type=any",), selectors=["cuda"]) == [
        "GPU 0",
        "GPU 1",
        "GPU 2",
        "GPU 3",
    ]
    # ... and --count N takes N of them.
    assert _locked(tmp_path, ("cuda",), selectors=["cuda"], count=3) == ["GPU 0", "GPU 1", "GPU 2"]
    assert _locked(tmp_path, ("cuda",), count=2) == ["GPU 0", "GPU 1"]
    assert _locked(tmp_path, ("cuda",), selectors=["2"]) == ["GPU 2"]


def test_a_busy_device_is_skipped_for_a_free_one_that_fits(tmp_path: Path) -> None:
    other = allocate.acquire([FOUR_GPUS.devices[0]], None, str(tmp_path / "locks"))
    try:
        pkg = Package(str(tmp_path), "pkg", ("cuda:cc>=8.0",))
        wanted = build_devices.request(parsed_specs(pkg), FOUR_GPUS)
        alloc = allocate.acquire(wanted.candidates, wanted.count, str(tmp_path / "locks"))
        assert [d.model for d in alloc.devices if allocate.needs_lock(d)] == ["GPU 1"]
        alloc.release()
    finally:
        other.release()


# -- hostile source names ------------------------------------------------------------


FORGED = "hwbuild\n autopkgtest-hw: hwbuild: XS-Requires-Hwspec: cuda satisfied"


def _dsc(tmp_path: Path, source: str) -> Path:
    dsc = tmp_path / "evil_1.0.dsc"
    dsc.write_text(f"Format: 3.0 (native)\nSource: {source}\nVersion: 1.0\nRequires-Hwspec: cuda\n")
    return dsc


@pytest.mark.parametrize("source", [FORGED, "hw\x1b[2Jbuild"])
def test_a_folded_or_hostile_source_forges_no_line(tmp_path: Path, source: str) -> None:
    inv = tmp_path / "inv.json"
    inv.write_text(Inventory(cpu=Cpu(arch="amd64"), devices=(POCL,)).to_json())
    argv = ["build", "--inventory", str(inv), str(_dsc(tmp_path, source)), "--", "null"]
    run = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr  # one line
    assert "is not a source package name" in run.stderr
    assert "\x1b" not in run.stderr


@pytest.mark.parametrize("source", [FORGED, "hwbuild\n .", "Hwbuild", "x", "../etc", "a b"])
def test_a_source_that_is_no_package_name_is_refused(tmp_path: Path, source: str) -> None:
    with pytest.raises(BuildError, match="is not a source package name") as caught:
        read_package(str(_dsc(tmp_path, source)))
    assert "\n" not in str(caught.value)
    for good in ("hwbuild", "libc++", "g.o-1"):
        assert read_package(str(_dsc(tmp_path, good))).source == good


# -- the build's keeper: real processes, a stand-in for sbuild -----------------------

BUILD_PARENT = """
import fcntl, os, sys
from autopkgtest_hw.source.build_keeper import Keeper
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
# sbuild's stand-in leaves a daemon in a session of its own (as a virt server's keeper does)
daemon = "setsid sh -c 'echo $$ > " + sys.argv[3] + "; sleep 3' & exec sleep 60"
keeper = Keeper(["sh", "-c", daemon], None, [fd], sys.argv[2])
os.close(fd)
print(keeper.sbuild_pid, flush=True)
sys.exit(keeper.wait())
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _free(path: Path) -> bool:
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_sigkill_of_the_build_leaves_its_devices_locked_until_its_last_process_ends(
    tmp_path: Path,
) -> None:
    lock, tmp, daemon_pid = tmp_path / "gpu.lock", tmp_path / "build-tmp", tmp_path / "daemon"
    tmp.mkdir()
    (tmp / "devices.json").write_text("{}")
    parent = subprocess.Popen(
        [sys.executable, "-c", BUILD_PARENT, str(lock), str(tmp), str(daemon_pid)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert parent.stdout is not None and parent.stderr is not None
    sbuild = int(parent.stdout.readline())
    deadline = time.monotonic() + 30
    while not daemon_pid.exists() or not daemon_pid.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    daemon = int(daemon_pid.read_text())
    parent.kill()  # SIGKILL: no handler of ours runs
    parent.wait()
    seen = []
    while _alive(daemon) or _alive(sbuild):
        seen.append(_free(lock))
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert seen and not any(seen), "the lock was free while a process of the build lived"
    while tmp.exists():  # the keeper removes it once the last process is gone
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    assert _free(lock)
    _, err = parent.communicate(timeout=30)  # EOF: the keeper, the last writer, is gone
    assert "autopkgtest-hw: the build command is gone: stopping sbuild" in err


SIGTERMED_PARENT = """
import fcntl, os, sys
from autopkgtest_hw.base import log
from autopkgtest_hw.source.build import run_sbuild
from autopkgtest_hw.source.build_progress import Progress
log.setup("autopkgtest-hw")
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
daemon = "setsid sh -c 'echo $$ > " + sys.argv[3] + "; sleep 2' & exec sleep 60"
progress = Progress("pkg", sys.argv[2], log.info, phases=False)
sys.exit(run_sbuild(["sh", "-c", daemon], None, [fd], sys.argv[2], progress))
"""


def test_sigterm_stops_sbuild_and_returns_once_the_build_is_gone(tmp_path: Path) -> None:
    lock, tmp, daemon_pid = tmp_path / "gpu.lock", tmp_path / "build-tmp", tmp_path / "daemon"
    tmp.mkdir()
    parent = subprocess.Popen(
        [sys.executable, "-c", SIGTERMED_PARENT, str(lock), str(tmp), str(daemon_pid)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not daemon_pid.exists() or not daemon_pid.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    daemon = int(daemon_pid.read_text())
    parent.terminate()
    _, err = parent.communicate(timeout=30)
    assert parent.returncode == 128 + 15, err
    # It returned only after the daemon the build left was gone: the lock is free now.
    assert not _alive(daemon) and _free(lock) and not tmp.exists()
    assert "autopkgtest-hw: error: got SIGTERM: stopping sbuild" in err
    assert "autopkgtest-hw: pkg: sbuild exited 143 after " in err


LINGERING = """
import os, sys
from autopkgtest_hw.source import build_keeper
build_keeper.GRACE = 1.0  # instead of minutes
daemon = "setsid sh -c 'echo $$ > " + sys.argv[2] + "; exec sleep 600' & exit 0"
sys.exit(build_keeper.Keeper(["sh", "-c", daemon], None, [], sys.argv[1]).wait())
"""


def test_a_process_that_outlives_sbuild_past_the_grace_is_ended(tmp_path: Path) -> None:
    tmp, daemon_pid = tmp_path / "build-tmp", tmp_path / "daemon"
    tmp.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", LINGERING, str(tmp), str(daemon_pid)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert not _alive(int(daemon_pid.read_text())) and not tmp.exists()
    assert "processes of the build outlived sbuild by 1 s: sending SIGTERM" in run.stderr
