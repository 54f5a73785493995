"""Porterbox sessions through a real pseudo-terminal, `status` in each state, and fairness.

The "GPU" is a real character device (195:3) in a directory of its own,
listed in a pinned inventory (as in test_virtserver_testbeds).  Sessions are
driven by pexpect (Debian's python3-pexpect); every test checks that the
lock is free and the session's processes are gone afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autopkgtest_hw.locks import holders
from autopkgtest_hw.locks.allocate import lock_name
from autopkgtest_hw.porterbox.session import sessions

from .fixtures import (
    GONE_WITHIN,
    HAVE_AUTOPKGTEST,
    IS_ROOT,
    VENV_BIN,
    Server,
    env,
    fake_nvidia,
    lock_is_free,
    make_char_device,
    process_gone,
    save_inventory,
)

pexpect = pytest.importorskip("pexpect")

pytestmark = [
    pytest.mark.skipif(
        not (HAVE_AUTOPKGTEST and IS_ROOT), reason="needs autopkgtest and root (mknod, testbeds)"
    ),
    pytest.mark.usefixtures("own_home"),  # not the tester's ~/.bashrc
]

ADT_HW = str(VENV_BIN / "autopkgtest-hw")
HWGPU = str(VENV_BIN / "autopkgtest-virt-hwgpu")
ME = holders.user_name(os.getuid())


@pytest.fixture
def gpu(tmp_path: Path) -> tuple[str, str, str]:
    """(inventory file, device node, lock file) for one fake GPU."""
    node = make_char_device(tmp_path / "gpu3", "nvidia3", 3)
    dev = fake_nvidia(node, index=3)
    inv = save_inventory(tmp_path / "inv.json", dev)
    return inv, node, str(tmp_path / "locks" / lock_name(dev))


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


def spawn_shell(tmp_path: Path, inv: str, *args: str) -> Any:
    argv = ["shell", "--inventory", inv, "--lock-dir", str(tmp_path / "locks"), *args]
    child = pexpect.spawn(
        ADT_HW,
        argv,
        encoding="utf-8",
        codec_errors="replace",
        timeout=GONE_WITHIN,
        env={**env(), "TERM": "dumb"},
    )
    child.expect(" open until ")
    return child


def session_info(name: str) -> dict[str, Any]:
    """What the session NAME of this user says about itself."""
    [info] = [s for s in sessions() if s["name"] == name and s["uid"] == os.getuid()]
    return info


def run_in(child: Any, command: str, marker: str) -> str:
    """Run ``command`` in the session's shell; its output up to ``marker``."""
    child.sendline(f"{command}; echo {marker}-$((40+2))")
    child.expect(f"{marker}-42")
    return str(child.before)


def status(tmp_path: Path, inv: str, *, text: bool = False, full: bool = False) -> Any:
    argv = [ADT_HW, "status", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    proc = subprocess.run(
        argv if text else [*argv, "--json"], capture_output=True, text=True, check=True
    )
    if text:
        return proc.stdout
    data = json.loads(proc.stdout)
    return data if full else data["devices"][0]


def wait_until(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GONE_WITHIN
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def wait_exit(child: Any) -> int:
    """The session's exit status, once it is gone (pexpect's wait would not time out)."""
    deadline = time.monotonic() + 2 * GONE_WITHIN
    while time.monotonic() < deadline:
        pid, st = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            child.ptyproc.terminated = True  # reaped here: pexpect must not wait again
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.1)
    child.kill(signal.SIGKILL)
    raise AssertionError("the session did not end")


def test_session_in_unshare_sees_the_node_and_blocks_ci_naming_the_holder(
    tmp_path: Path, gpu: tuple[str, str, str], bookworm_tarball: Path
) -> None:
    inv, node, lock = gpu
    locks = str(tmp_path / "locks")
    assert status(tmp_path, inv)["state"] == "free"
    child = spawn_shell(
        tmp_path, inv, "--for", "30m", "--", "unshare", "--tarball", str(bookworm_tarball)
    )
    try:
        seen = run_in(child, f"stat -c '%F %t:%T' {node}", "SEEN")
        assert "character special file c3:3" in seen
        assert "ID=debian" in run_in(child, "grep ^ID= /etc/os-release", "OS")
        # Held by the session: status says whose it is and until when.
        held = status(tmp_path, inv)
        [h] = held["holders"]
        assert held["state"] == "held" and h["kind"] == "porterbox" and h["user"] == ME
        assert h["verified"] and h["until"] - h["since"] == 1800
        assert f"held by porterbox session of {ME}" in status(tmp_path, inv, text=True)
        # A CI run that cannot wait long gives up, naming the holder and the time.
        ci = subprocess.run(
            [HWGPU, "--inventory", inv, "--lock-dir", locks, "--lock-timeout", "1", "null"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env(),
            check=False,
        )
        assert ci.returncode == 1
        assert f"is locked by porterbox session of {ME} (pid " in ci.stderr
        assert f" until {holders.clock(h['until'])}" in ci.stderr
        # A CI run that waits is listed as waiting, and gets the device when the shell exits.
        waiter = Server(
            ["--inventory", inv, "--lock-dir", locks, "--lock-timeout", "600", "null"],
            tmp_path / "waiter.err",
        )
        try:
            wait_until("the CI run queues", lambda: bool(status(tmp_path, inv)["waiters"]))
            assert "    waiting #1: pid " in status(tmp_path, inv, text=True)
            child.sendline("exit 3")
            assert wait_exit(child) == 3
            assert waiter.line() == "ok"  # its banner: it holds the device now
            now = status(tmp_path, inv)
            assert now["holders"][0]["pid"] == waiter.proc.pid
            assert now["holders"][0]["kind"] == "ci" and now["waiters"] == []
            assert waiter.proc.stdin is not None
            waiter.proc.stdin.write(b"quit\n")
            waiter.proc.stdin.close()
            assert waiter.proc.wait(timeout=GONE_WITHIN) == 0
        finally:
            waiter.close()
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)
    assert lock_is_free(lock)
    assert status(tmp_path, inv)["state"] == "free"


def alive_with(marker: str) -> list[int]:
    """Live processes whose command line has ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[-1].split()[0]
                if marker in cmdline(int(name)) and state != "Z":
                    found.append(int(name))
            except (OSError, IndexError):
                continue
    return found


def start_background_job(child: Any) -> str:
    """A job that ignores hang-ups and would outlive the shell if nothing killed it.

    Its pid in the shell is of the session's PID namespace: it is found by its
    command line (a unique sleep time).
    """
    marker = f"4242.{time.monotonic_ns() % 100000:05d}"
    run_in(child, f"(nohup sleep {marker} >/dev/null 2>&1 &)", "BG")
    wait_until("the job runs", lambda: bool(alive_with(marker)))
    return marker


def job_gone(marker: str) -> bool:
    deadline = time.monotonic() + GONE_WITHIN
    while alive_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_sigterm_ends_the_session_and_frees_everything(
    tmp_path: Path, gpu: tuple[str, str, str]
) -> None:
    inv, _, lock = gpu
    child = spawn_shell(tmp_path, inv, "--name", "term-1", "--for", "30m", "--", "null")
    job = start_background_job(child)
    daemon = session_info("term-1")["pid"]
    [virt] = [p for p in children(daemon) if "autopkgtest_hw.virt.server" in cmdline(p)]
    assert not lock_is_free(lock)
    child.kill(signal.SIGTERM)
    assert wait_exit(child) == 128 + signal.SIGTERM
    assert job_gone(job) and process_gone(virt) and process_gone(daemon)
    assert lock_is_free(lock)


def test_a_hangup_detaches_and_the_session_goes_on_until_ended(
    tmp_path: Path, gpu: tuple[str, str, str]
) -> None:
    inv, _, lock = gpu
    child = spawn_shell(tmp_path, inv, "--name", "hup-1", "--for", "30m", "--", "null")
    job = start_background_job(child)
    child.ptyproc.fileobj.close()  # the terminal goes away (ssh connection lost): SIGHUP
    assert wait_exit(child) == 128 + signal.SIGHUP
    info = session_info("hup-1")
    assert info["state"] == "running" and alive_with(job)
    assert not lock_is_free(lock)
    ended = subprocess.run([ADT_HW, "attach", "hup-1", "--end"], env=env(), check=False)
    assert ended.returncode == 0
    assert job_gone(job) and process_gone(info["pid"])
    assert lock_is_free(lock)


def test_sigterm_while_queued_for_busy_devices_leaves_nothing(
    tmp_path: Path, gpu: tuple[str, str, str], servers: list[Server]
) -> None:
    inv, _, lock = gpu
    holder = Server(
        ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null"], tmp_path / "h"
    )
    servers.append(holder)
    assert holder.line() == "ok"
    argv = ["shell", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    child = pexpect.spawn(
        ADT_HW,
        [*argv, "--lock-timeout", "600", "--", "null"],
        encoding="utf-8",
        timeout=GONE_WITHIN,
        env=env(),
    )
    child.expect(f"waiting for NVIDIA H100 PCIe .* is locked by pid {holder.proc.pid} ")
    [waiter] = status(tmp_path, inv)["waiters"]
    assert waiter["kind"] == "porterbox" and waiter["user"] == ME
    [daemon] = [s["pid"] for s in sessions() if s["lock_dir"] == str(tmp_path / "locks")]
    [virt] = children(daemon)
    child.kill(signal.SIGTERM)
    assert wait_exit(child) == 128 + signal.SIGTERM
    assert process_gone(virt) and process_gone(daemon)
    assert status(tmp_path, inv)["waiters"] == []
    assert [h["pid"] for h in status(tmp_path, inv)["holders"]] == [holder.proc.pid]
    assert not lock_is_free(lock)  # the holder's, untouched


def test_time_out_ends_the_session(tmp_path: Path, gpu: tuple[str, str, str]) -> None:
    inv, _, lock = gpu
    child = spawn_shell(tmp_path, inv, "--for", "4s", "--", "null")
    job = start_background_job(child)
    child.expect(r"time is up \(4s\): ending the session")
    child.expect("the devices are free")
    child.expect(pexpect.EOF)
    assert wait_exit(child) == 124
    assert job_gone(job)
    assert lock_is_free(lock)


def test_for_is_capped_by_the_site_maximum(
    tmp_path: Path, gpu: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inv, _, _ = gpu
    conf = tmp_path / "porterbox.conf"
    conf.write_text("# site policy\nmax-for = 10m\n")
    monkeypatch.setenv("AUTOPKGTEST_HW_PORTERBOX_CONF", str(conf))
    child = spawn_shell(tmp_path, inv, "--for", "8h", "--", "null")
    try:
        [h] = status(tmp_path, inv)["holders"]
        assert h["until"] - h["since"] == 600
        child.sendline("exit")
        assert wait_exit(child) == 0
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)


def test_waiters_are_served_in_the_order_they_asked(
    tmp_path: Path, gpu: tuple[str, str, str], servers: list[Server]
) -> None:
    inv, _, lock = gpu
    args = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "--lock-timeout", "600"]

    def start(name: str) -> Server:
        s = Server([*args, "null"], tmp_path / f"{name}.err")
        servers.append(s)
        return s

    holder = start("holder")
    assert holder.line() == "ok"
    waiters = []
    for n in range(1, 4):
        waiters.append(start(f"w{n}"))
        wait_until(f"{n} waiters queue", lambda n=n: len(status(tmp_path, inv)["waiters"]) == n)
    assert [w["pid"] for w in status(tmp_path, inv)["waiters"]] == [w.proc.pid for w in waiters]
    text = status(tmp_path, inv, text=True)
    assert text.index(f"waiting #1: pid {waiters[0].proc.pid}") < text.index(
        f"waiting #3: pid {waiters[2].proc.pid}"
    )
    previous = holder
    for i, w in enumerate(waiters):
        assert previous.proc.stdin is not None
        previous.proc.stdin.write(b"quit\n")
        previous.proc.stdin.close()
        assert previous.proc.wait(timeout=GONE_WITHIN) == 0
        assert w.line() == "ok"  # this one, not a later one, got the device
        now = status(tmp_path, inv)
        assert [h["pid"] for h in now["holders"]] == [w.proc.pid]
        assert [x["pid"] for x in now["waiters"]] == [x.proc.pid for x in waiters[i + 1 :]]
        previous = w
    with contextlib.suppress(OSError):
        assert previous.proc.stdin is not None
        previous.proc.stdin.close()
    assert previous.proc.wait(timeout=GONE_WITHIN) == 12  # EOF: it shuts the testbed down
    assert lock_is_free(lock)
