"""The proxy's life: banner, quit, EOF, signals, a dying inner server, lock contention.

Driven through the protocol directly (as autopkgtest drives it) so each ending
can be provoked at a chosen moment; then checked the way a user would: exit
status, no process left, the testbed's scratch directory gone, the lock free.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fixtures import (
    GONE_WITHIN,
    HWGPU,
    Server,
    autopkgtest,
    lock_is_free,
    make_package,
    needs_root_and_autopkgtest,
    one_fake_gpu,
    opened,
    process_gone,
)

pytestmark = needs_root_and_autopkgtest("mknod, null testbed")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def gpu(tmp_path: Path) -> tuple[str, str]:
    """An inventory file with one fake NVIDIA GPU (a real 195:0 node), and its lock file."""
    inv, _node, lock = one_fake_gpu(tmp_path, 0)
    return inv, lock


def start(servers: list[Server], tmp_path: Path, *args: str) -> Server:
    s = Server(list(args), tmp_path / f"stderr{len(servers)}")
    servers.append(s)
    return s


def test_quit_ends_everything_with_status_0(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    inv, lock = gpu
    s = start(servers, tmp_path, "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null")
    scratch = opened(s)
    assert os.path.isdir(scratch)
    caps = s.cmd("capabilities").split()
    assert caps[0] == "ok"
    assert "hw%3Acuda" in caps
    assert not lock_is_free(lock)
    holder = Path(lock).read_text()
    assert holder.startswith(f"hw1 pid={s.proc.pid} kind=ci ") and "--inventory" in holder
    inner = s.inner_pid()
    assert s.cmd("close") == "ok"
    assert not os.path.exists(scratch)
    assert s.proc.stdin is not None
    s.proc.stdin.write(b"quit\n")
    s.proc.stdin.close()
    assert s.proc.wait(timeout=GONE_WITHIN) == 0
    assert process_gone(inner)
    assert lock_is_free(lock)


def test_eof_without_quit_shuts_the_testbed_down_status_12(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    inv, lock = gpu
    s = start(servers, tmp_path, "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null")
    scratch = opened(s)
    inner = s.inner_pid()
    assert s.proc.stdin is not None
    s.proc.stdin.close()
    assert s.proc.wait(timeout=GONE_WITHIN) == 12
    assert process_gone(inner)
    assert not os.path.exists(scratch)  # the inner server cleaned its testbed up
    assert lock_is_free(lock)
    assert "end of file on stdin" in s.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_the_proxy_shuts_the_testbed_down_and_dies_by_it(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str], sig: signal.Signals
) -> None:
    inv, lock = gpu
    s = start(servers, tmp_path, "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null")
    scratch = opened(s)
    inner = s.inner_pid()
    s.proc.send_signal(sig)
    assert s.proc.wait(timeout=GONE_WITHIN) == -sig
    assert process_gone(inner)
    assert not os.path.exists(scratch)
    assert lock_is_free(lock)
    assert f"got {sig.name}; shutting the testbed down" in s.stderr


def test_sigkill_of_the_proxy_takes_the_inner_server_along(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    inv, lock = gpu
    s = start(servers, tmp_path, "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null")
    scratch = opened(s)
    inner = s.inner_pid()
    s.proc.kill()
    s.proc.wait()
    assert process_gone(inner)  # PR_SET_PDEATHSIG: SIGTERM, VirtSubproc cleans up
    assert not os.path.exists(scratch)
    assert lock_is_free(lock)


def test_inner_server_killed_mid_run_is_a_testbed_failure(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    inv, lock = gpu
    s = start(servers, tmp_path, "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null")
    opened(s)
    inner = s.inner_pid()
    os.kill(inner, signal.SIGKILL)
    assert s.cmd("capabilities") == ""  # no reply: autopkgtest sees EOF, a testbed failure
    assert s.proc.wait(timeout=GONE_WITHIN) == 16
    assert (
        "autopkgtest-virt-null died while running `capabilities': it was killed by SIGKILL"
        in s.stderr
    )
    assert lock_is_free(lock)


def test_second_proxy_waits_then_gives_up_naming_the_holder(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    inv, _ = gpu
    locks = str(tmp_path / "locks")
    first = start(servers, tmp_path, "--inventory", inv, "--lock-dir", locks, "null")
    opened(first)
    second = start(
        servers, tmp_path, "--inventory", inv, "--lock-dir", locks, "--lock-timeout", "1", "null"
    )
    assert second.line() == ""  # never got as far as the banner
    assert second.proc.wait(timeout=GONE_WITHIN) == 1
    err = second.stderr
    assert (
        "waiting for NVIDIA H100 PCIe (GPU-00000000-0000-0000-0000-000000000000)"
        f" is locked by pid {first.proc.pid}" in err
    )
    assert "gave up after 1 s (--lock-timeout)" in err
    assert str(HWGPU) in err  # the holder's command line
    assert first.cmd("capabilities").startswith("ok ")  # the holder is unaffected
    # Shared locks do not mix with an exclusive one either ...
    third = start(servers, tmp_path, "--inventory", inv, "--lock-dir", locks, "--shared", "null")
    assert third.proc.wait(timeout=GONE_WITHIN) == 1
    # ... but once the holder is gone, the device is free again.
    assert first.proc.stdin is not None
    first.proc.stdin.write(b"quit\n")
    first.proc.stdin.close()
    assert first.proc.wait(timeout=GONE_WITHIN) == 0
    again = start(servers, tmp_path, "--inventory", inv, "--lock-dir", locks, "null")
    opened(again)


def test_shared_locks_let_two_testbeds_use_one_device(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    inv, _ = gpu
    args = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "--shared", "null"]
    a = start(servers, tmp_path, *args)
    b = start(servers, tmp_path, *args)
    opened(a)
    opened(b)


def test_autopkgtest_with_the_device_taken_exits_16(tmp_path: Path, gpu: tuple[str, str]) -> None:
    inv, lock = gpu
    os.makedirs(os.path.dirname(lock))
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write(f"{os.getpid()} another-run\n")
        holder.flush()
        src = make_package(tmp_path, {"smoke": "true"})
        virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null"]
        run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 16, run.stderr[-2000:]
    assert f"is locked by pid {os.getpid()} (another-run)" in run.stderr


def test_inner_server_killed_during_a_real_autopkgtest_run(
    tmp_path: Path, gpu: tuple[str, str]
) -> None:
    """A test that kills the inner server: autopkgtest reports a testbed failure (16)."""
    inv, lock = gpu
    locks = str(tmp_path / "locks")
    script = (
        f'hw=$(pgrep -f -- "autopkgtest-virt-hwgpu .*--lock-dir {locks}")\n'
        'inner=$(pgrep -P "$hw" | head -n1)\n'
        'kill -9 "$inner"\n'
    )
    src = make_package(tmp_path, {"kills-inner": script, "after": "true"})
    run = autopkgtest(
        src, tmp_path / "out", ["hwgpu", "--inventory", inv, "--lock-dir", locks, "null"]
    )
    assert run.returncode == 16, run.stderr[-3000:]
    assert "testbed failure" in run.stderr
    assert lock_is_free(lock)
    leftovers = subprocess.run(
        ["pgrep", "-f", f"--lock-dir {locks}"], capture_output=True, text=True
    )
    assert leftovers.stdout == ""


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def test_null_inner_server_starts_while_the_proxy_waits_and_goes_when_it_gives_up(
    servers: list[Server], tmp_path: Path, gpu: tuple[str, str]
) -> None:
    """null needs no passthrough arguments: it starts at once, detection and locking overlap it."""
    inv, _ = gpu
    locks = str(tmp_path / "locks")
    first = start(servers, tmp_path, "--inventory", inv, "--lock-dir", locks, "null")
    opened(first)
    second = start(
        servers, tmp_path, "--inventory", inv, "--lock-dir", locks, "--lock-timeout", "5", "null"
    )
    deadline = time.monotonic() + GONE_WITHIN
    inner: list[int] = []
    while not inner and time.monotonic() < deadline and second.proc.poll() is None:
        inner = [
            c
            for c in _children(second.proc.pid)
            if b"autopkgtest-virt-null" in Path(f"/proc/{c}/cmdline").read_bytes()
        ]
        time.sleep(0.05)
    assert inner, "the inner server was not running while the proxy waited for the lock"
    assert second.proc.wait(timeout=GONE_WITHIN) == 1  # gave up on the lock
    assert "gave up after 5 s (--lock-timeout)" in second.stderr
    assert process_gone(inner[0])  # and took the early inner server along
