"""Hostile strings and broken runs against the real autopkgtest (issue 9, points 2-4)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autopkgtest_hw.locks.keeper import INNER_GRACE
from autopkgtest_hw.virt import probe
from autopkgtest_hw.virt.backends.null import NullBackend
from autopkgtest_hw.virt.backends.podman import PodmanBackend
from autopkgtest_hw.virt.backends.unshare import UnshareBackend

from . import test_virtserver_testbeds as testbeds
from .fixtures import (
    GONE_WITHIN,
    HWGPU,
    TESLA_T4,
    Server,
    autopkgtest,
    command_test,
    env,
    fake_nvidia,
    have_hwgpu,
    lock_is_free,
    make_char_device,
    make_package,
    make_tests_tree,
    needs_root_and_autopkgtest,
    one_fake_gpu,
    opened,
    process_gone,
    run_hw,
    save_inventory,
    write_inventory,
)

containers = testbeds.containers
podman_image = testbeds.podman_image  # the session fixture, shared

needs_hwgpu = pytest.mark.skipif(not have_hwgpu(), reason="autopkgtest-virt-hwgpu is missing")
needs_root = needs_root_and_autopkgtest("mknod, testbeds")


@needs_hwgpu
def test_a_device_name_cannot_forge_a_summary_line(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    """A model name with a newline (a crafted inventory, a device's own name) stays one line."""
    evil = dict(TESLA_T4, model="Tesla T4\nfake-test           PASS\x1b]0;owned\x07")
    inventory = write_inventory(tmp_path / "inv.json", [evil])
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("h100", "needs-hw:cuda:cc>=9.0")])
    r = run_hw(
        [str(pkg), "--", "hwgpu", "--inventory", str(inventory), "null"],
        autopkgtest_program,
        tmp_path / "summary",
    )
    assert r.rc == 8, r.stderr
    assert [ln.split()[0] for ln in r.summary] == ["h100"]
    assert "Tesla T4\\nfake-test" in r.result("h100")
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr


# -- point 2: the lock outlives everything that can touch the device ------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for c in _children(todo.pop()):
            found.append(c)
            todo.append(c)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_for(predicate: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _find(root: int, needle: str) -> int | None:
    for p in _descendants(root):
        if needle in _cmdline(p):
            return p
    return None


def _run_and_kill_the_proxy(
    tmp_path: Path, virt_tail: list[str], sig: signal.Signals
) -> tuple[str, Callable[[], bool], subprocess.Popen[bytes], int]:
    """Start autopkgtest on a test that sleeps; kill the proxy; return (lock, lock_free, ...)."""
    inv, _node, lock = one_fake_gpu(tmp_path, 7)
    src = make_package(tmp_path, {"holds-gpu": f"exec sleep {SLEEP}\n"})
    virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), *virt_tail]
    adt = subprocess.Popen(
        [
            "autopkgtest",
            "--no-built-binaries",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--",
            *virt,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    sleeper = _wait_for(lambda: _find(adt.pid, f"sleep {SLEEP}"), "the test to start")
    assert isinstance(sleeper, int)
    proxy = _find(adt.pid, "autopkgtest-virt-hwgpu")
    assert proxy is not None
    os.kill(proxy, sig)
    _wait_for(lambda: process_gone(proxy), "the proxy to die")
    return lock, (lambda: lock_is_free(lock)), adt, sleeper


SLEEP = 3171


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("testbed", ["null", "unshare"])
def test_the_lock_is_held_until_the_test_process_is_gone(
    tmp_path: Path, bookworm_tarball: Path, sig: signal.Signals, testbed: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod and unshare testbeds need root here")
    tail = ["null"] if testbed == "null" else ["unshare", "--tarball", str(bookworm_tarball)]
    _lock, free, adt, sleeper = _run_and_kill_the_proxy(tmp_path, tail, sig)
    try:
        time.sleep(1.0)  # the old code let go within 0.1-0.4 s
        assert not free(), "the lock was released while the test still ran"
        # a second run does not get the device meanwhile
        second = subprocess.run(
            [
                str(HWGPU),
                "--inventory",
                str(tmp_path / "inv.json"),
                "--lock-dir",
                str(tmp_path / "locks"),
                "null",
            ],
            input=b"",
            capture_output=True,
            env=env(),
            timeout=120,
            check=False,
        )
        assert second.returncode == 1 and b"is locked by" in second.stderr, second.stderr
        os.kill(sleeper, signal.SIGKILL)
        _wait_for(free, "the lock to be free once the test process is gone")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)
        adt.kill()
        adt.wait()


# -- point 3: nothing is left behind when the inner server is killed -------------


def _kill_the_inner_server(s: Server) -> int:
    inner = s.inner_pid()
    os.kill(inner, signal.SIGKILL)
    assert process_gone(inner)
    reply = s.cmd("capabilities")  # the proxy finds out at its next command
    assert reply == "", reply
    assert s.proc.wait(timeout=GONE_WITHIN + INNER_GRACE) == 16
    return inner


@needs_root
def test_a_killed_podman_server_leaves_no_container(tmp_path: Path, podman_image: str) -> None:
    inv, _, lock = one_fake_gpu(tmp_path, 5)
    before = containers()
    args = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "podman", podman_image]
    s = Server(args, tmp_path / "stderr")
    try:
        opened(s)
        assert len(containers() - before) == 1
        _kill_the_inner_server(s)
    finally:
        s.close()
    assert containers() == before  # the keeper removed the labelled container
    assert lock_is_free(lock)


@needs_root
def test_a_killed_unshare_server_leaves_no_unpacked_testbed(
    tmp_path: Path, bookworm_tarball: Path
) -> None:
    inv, _, lock = one_fake_gpu(tmp_path, 6)
    args = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    args += ["unshare", "--tarball", str(bookworm_tarball)]
    s = Server(args, tmp_path / "stderr")
    try:
        opened(s)
        argv = _cmdline(s.inner_pid()).split()
        rootfs = Path(argv[argv.index("--unpack-dir") + 1])
        assert (rootfs / "etc" / "debian_version").exists()
        _kill_the_inner_server(s)
    finally:
        s.close()
    assert not rootfs.exists() and not rootfs.parent.exists()
    assert lock_is_free(lock)


# -- point 8: a testbed sees no GPU that was not allocated ------------------------


@needs_root
def test_unshare_528_shows_only_the_allocated_node_of_a_shared_directory(
    tmp_path: Path, bookworm_tarball: Path
) -> None:
    """card1 in the same directory is unknown to the inventory: it must not come in."""
    dri = tmp_path / "dri"
    node = make_char_device(dri, "card0", 0, major=226)
    make_char_device(dri, "card1", 1, major=226)
    inv = save_inventory(tmp_path / "inv.json", fake_nvidia(node))
    src = make_package(
        tmp_path, {"sees": f"test -c {node}\nif test -e {dri}/card1; then exit 1; fi\n"}
    )
    virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    virt += ["unshare", "--tarball", str(bookworm_tarball)]
    run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary == {"sees": "PASS"}
    assert "a private directory of just its allocated nodes" in run.stderr


def test_the_probe_fails_a_namespace_that_sees_an_unallocated_gpu() -> None:
    """Every backend that hides nodes checks it inside: the probe lists what it sees."""
    out = (
        "@@nproc\n2\n@@arch\namd64\n@@meminfo\n@@cpuinfo\n@@nodes\nchar /dev/dri/card0\n"
        "@@gpunodes\n/dev/dri/card0\n/dev/dri/card1\n/dev/dri/card0\n@@pci\n@@end\n"
    )
    result = probe.parse(out)
    assert result.foreign_gpu_nodes(["/dev/dri/card0"]) == ["/dev/dri/card1"]
    assert UnshareBackend.hides_other_nodes and PodmanBackend.hides_other_nodes
    assert not NullBackend.hides_other_nodes  # the host itself: the locks keep others off


@needs_root
def test_a_container_that_sees_an_unallocated_gpu_fails_to_open(
    tmp_path: Path, podman_image: str
) -> None:
    """A second GPU node slipped in by the caller's own podman options is caught inside."""
    inv, node, lock = one_fake_gpu(tmp_path, 8)
    stray = make_char_device(Path(node).parent, "nvidia9", 9)
    before = containers()
    args = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    args += ["podman", podman_image, f"--device={stray}"]
    s = Server(args, tmp_path / "stderr")
    try:
        assert s.line() == "ok"
        reply = s.cmd("open")
        assert reply.split()[0] == "hw-passthrough-failed", reply
        assert f"the testbed sees GPU nodes that were not allocated: {stray}" in s.stderr
        s.cmd("quit")
        s.proc.wait(timeout=GONE_WITHIN)
    finally:
        s.close()
    assert containers() == before
    assert lock_is_free(lock)
