"""Porterbox sessions people live in: signals, detach/attach, copy, time, policy, limits.

Driven through a real pseudo-terminal (pexpect) against real null and
unshare testbeds, with a real unprivileged user (useradd) for the policy.
Every test checks that the lock is free and the session's processes are
gone afterwards.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autopkgtest_hw.porterbox import wire
from autopkgtest_hw.virt.proxy import auxverb_of

from .fixtures import GONE_WITHIN, Server, env, lock_is_free, one_fake_gpu
from .test_porterbox import (
    ADT_HW,
    alive_with,
    cmdline,
    pexpect,
    run_in,
    session_info,
    spawn_shell,
    status,
    wait_exit,
    wait_until,
)

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root (mknod, testbeds, useradd, mount namespaces)"
    ),
    pytest.mark.usefixtures("own_home"),  # not the tester's ~/.bashrc
]


@pytest.fixture
def gpu(tmp_path: Path) -> tuple[str, str, str]:
    """(inventory file, device node, lock file) for one fake GPU."""
    return one_fake_gpu(tmp_path, 4)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ended() -> Iterator[list[str]]:
    """Sessions to end after the test, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(
            [ADT_HW, "attach", name, "--end"], env=env(), capture_output=True, check=False
        )


def attach(name: str) -> Any:
    child = pexpect.spawn(
        ADT_HW,
        ["attach", name],
        encoding="utf-8",
        codec_errors="replace",
        timeout=GONE_WITHIN,
        env={**env(), "TERM": "dumb"},
    )
    child.expect(f"attached to session {name}")
    return child


def conf(tmp_path: Path, text: str) -> dict[str, str]:
    """A site policy for root's sessions in this test (root-owned, as the session demands)."""
    path = tmp_path / "porterbox.conf"
    path.write_text(text)
    return {"AUTOPKGTEST_HW_PORTERBOX_CONF": str(path)}


def test_ctrl_c_and_ctrl_backslash_stop_the_foreground_job_and_the_session_goes_on(
    tmp_path: Path, gpu: tuple[str, str, str], ended: list[str]
) -> None:
    inv, _, lock = gpu
    name = unique("sig")
    ended.append(name)
    child = spawn_shell(tmp_path, inv, "--name", name, "--", "null")
    run_in(child, "true", "READY")
    for key, code in (("c", 130), ("\\", 131)):  # SIGINT, SIGQUIT
        started = time.monotonic()
        child.sendline("sleep 100")
        time.sleep(1)
        child.sendcontrol(key)
        assert f"STATUS-{code}" in run_in(child, "echo STATUS-$?", "AFTER")  # the shell lives
        assert time.monotonic() - started < 50
    child.sendline("exit 4")
    assert wait_exit(child) == 4
    assert lock_is_free(lock)


def test_detach_kill_the_client_and_attach_again(
    tmp_path: Path, gpu: tuple[str, str, str], ended: list[str]
) -> None:
    inv, _, lock = gpu
    name = unique("det")
    ended.append(name)
    where = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    opened = subprocess.run(
        [ADT_HW, "shell", *where, "--name", name, "--detach", "--", "null"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=GONE_WITHIN,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    assert f"autopkgtest-hw attach {name}" in opened.stderr
    assert session_info(name)["attached"] is False and not lock_is_free(lock)
    first = attach(name)
    run_in(first, "export MARK=kept-$((6*7))", "SET")
    first.kill(signal.SIGKILL)  # the client dies, as with a dropped ssh connection
    first.close()
    second = attach(name)
    assert "kept-42" in run_in(second, "echo $MARK", "GOT")
    second.sendcontrol("]")  # detach by key
    second.expect("detached from session")
    assert wait_exit(second) == 0
    third = attach(name)
    third.sendline("exit")
    assert wait_exit(third) == 0
    assert lock_is_free(lock)
    assert not [s for s in wire.listed() if s[1] == name]


def test_files_are_copied_in_and_out_and_a_workdir_is_bound_in_an_unshare_testbed(
    tmp_path: Path, gpu: tuple[str, str, str], ended: list[str], bookworm_tarball: Path
) -> None:
    inv, _, lock = gpu
    name = unique("cp")
    ended.append(name)
    work = tmp_path / "work"
    work.mkdir()
    (work / "src.c").write_text("int main;\n")
    child = spawn_shell(
        tmp_path,
        inv,
        "--name",
        name,
        "--workdir",
        str(work),
        "--",
        "unshare",
        "--tarball",
        str(bookworm_tarball),
    )
    # The work directory is bound: the shell starts there, what it writes is on the host.
    assert "src.c" in run_in(child, "pwd; ls; echo made > made.txt", "W")
    assert (work / "made.txt").read_text() == "made\n"
    (tmp_path / "in.txt").write_text("from the host\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "a").write_text("A\n")

    def copy(src: str, dst: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ADT_HW, "copy", src, dst], env=env(), capture_output=True, text=True, check=False
        )

    assert copy(str(tmp_path / "in.txt"), f"{name}:/root/in.txt").returncode == 0
    assert copy(str(tmp_path / "tree"), f"{name}:/srv/tree").returncode == 0
    seen = run_in(child, "cat /root/in.txt /srv/tree/sub/a; echo made > /srv/tree/out", "C")
    assert "from the host" in seen and "A" in seen
    assert copy(f"{name}:/srv/tree", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back" / "out").read_text() == "made\n"
    assert (tmp_path / "back" / "sub" / "a").read_text() == "A\n"
    assert copy(f"{name}:/etc/os-release", str(tmp_path)).returncode == 0
    assert "ID=debian" in (tmp_path / "os-release").read_text()
    missing = copy(f"{name}:/nonexistent", str(tmp_path / "x"))
    assert missing.returncode == 1 and "cannot copy" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "x").exists()
    child.sendline("exit")
    assert wait_exit(child) == 0
    assert lock_is_free(lock)


def test_warnings_the_prompt_and_extend_within_the_maximum(
    tmp_path: Path,
    gpu: tuple[str, str, str],
    ended: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inv, _, lock = gpu
    name = unique("time")
    ended.append(name)
    for key, value in conf(tmp_path, "max-for = 2m\nwarn-before = 25s\n").items():
        monkeypatch.setenv(key, value)
    child = spawn_shell(tmp_path, inv, "--name", name, "--for", "30s", "--", "null")
    child.expect(rf"\(hw:{name} null nvidia:NVIDIA-H100-PCIe 1m left\)")  # the prompt
    child.expect(f"session {name} ends in 2[0-9]s .*autopkgtest-hw extend {name}", timeout=20)

    def extend(more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ADT_HW, "extend", name, "--for", more],
            env=env(),
            capture_output=True,
            text=True,
            check=False,
        )

    refused = extend("5m")
    assert refused.returncode == 3
    assert "this host allows at most 2m" in refused.stderr
    granted = extend("1m")
    assert granted.returncode == 0, granted.stderr
    child.expect(f"session {name} extended")
    until = session_info(name)["until"]
    assert 80 <= until - time.time() <= 95
    run_in(child, "true", "P")
    child.expect(r"2m left\)")  # the prompt follows
    child.sendline("exit")
    assert wait_exit(child) == 0
    assert lock_is_free(lock)


def test_status_lists_every_session_and_ctrl_c_while_waiting_says_so(
    tmp_path: Path, gpu: tuple[str, str, str], ended: list[str]
) -> None:
    inv, _, lock = gpu
    name = unique("st")
    ended.extend([name, f"{name}-w"])
    child = spawn_shell(tmp_path, inv, "--name", name, "--", "null")
    [listed] = [s for s in status(tmp_path, inv, full=True)["sessions"] if s["name"] == name]
    assert listed["user"] == pwd.getpwuid(os.getuid()).pw_name and listed["attached"]
    assert f"session {name} of " in status(tmp_path, inv, text=True)
    # A second session waits for the device; Ctrl-C there says what happened.
    where = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "--lock-timeout", "600"]
    waiting = pexpect.spawn(
        ADT_HW,
        ["shell", *where, "--name", f"{name}-w", "--", "null"],
        encoding="utf-8",
        timeout=GONE_WITHIN,
        env=env(),
    )
    waiting.expect("waiting for ")
    waiting.sendcontrol("c")
    waiting.expect(r"interrupted \(Ctrl-C\) while waiting for the devices: no session was opened")
    rest = waiting.read()
    assert "SIGTERM" not in rest
    assert wait_exit(waiting) == 130
    assert status(tmp_path, inv)["waiters"] == []
    child.sendline("exit")
    assert wait_exit(child) == 0
    assert lock_is_free(lock)


def test_nothing_outlives_a_session_killed_from_outside(
    tmp_path: Path, gpu: tuple[str, str, str], ended: list[str]
) -> None:
    """A fork-hopping daemon that ignores hang-ups, `kill -9 $PPID`, then SIGKILL of the session."""
    inv, _, lock = gpu
    name = unique("kill")
    ended.append(name)
    marker = unique("hopper")
    child = spawn_shell(tmp_path, inv, "--name", name, "--", "null")
    hopper = (
        '(nohup setsid perl -e \'$SIG{HUP}="IGNORE"; while (1) { exit if fork;'
        f" select(undef, undef, undef, 0.02) }}' {marker} >/dev/null 2>&1 &)"
    )
    run_in(child, hopper, "HOP")
    wait_until("the hopper runs", lambda: bool(alive_with(marker)))
    run_in(child, "kill -9 $PPID", "STILL")  # the shell lives: nothing to kill there
    daemon = session_info(name)["pid"]
    os.kill(daemon, signal.SIGKILL)
    wait_until("the hopper is gone", lambda: not alive_with(marker))
    wait_until("the lock is free", lambda: lock_is_free(lock))
    assert wait_exit(child) != 0
    assert not [s for s in wire.listed() if s[1] == name]


def test_from_a_script_the_callers_process_group_lives(
    tmp_path: Path, gpu: tuple[str, str, str]
) -> None:
    inv, _, lock = gpu
    script = (
        "sleep 300 & echo 'exit 5' | "
        f"{ADT_HW} shell --inventory {inv} --lock-dir {tmp_path / 'locks'} -- null;"
        " echo rc=$?; kill $!"
    )
    proc = subprocess.run(
        ["sh", "-c", script],
        env=env(),
        capture_output=True,
        text=True,
        timeout=2 * GONE_WITHIN,
        start_new_session=True,  # its own process group, as a script run from cron
        check=False,
    )
    assert proc.returncode == 0 and "rc=5" in proc.stdout, proc.stderr
    assert lock_is_free(lock)


def _useradd(tmp_path: Path) -> str:
    user = f"pb{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", user], check=True)
    return user


def test_a_user_outside_the_allowed_group_is_refused(
    tmp_path: Path, gpu: tuple[str, str, str]
) -> None:
    inv, _, _ = gpu
    user = _useradd(tmp_path)
    try:
        site = tmp_path / "site"
        (site / "upper" / "autopkgtest-hw").mkdir(parents=True)
        (site / "work").mkdir()
        (site / "upper" / "autopkgtest-hw" / "porterbox.conf").write_text(
            "allow = @porterbox-staff root\n"
        )
        lax = tmp_path / "lax.conf"
        lax.write_text("max-for = 2400h\n")
        os.chmod(tmp_path, 0o755)
        os.chmod(inv, 0o644)
        # The site's /etc/autopkgtest-hw/porterbox.conf, in a mount namespace of this test only.
        inner = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={site / 'upper'},"
            f"workdir={site / 'work'} /etc && exec setpriv --reuid={user} --regid={user}"
            f" --init-groups env AUTOPKGTEST_HW_PORTERBOX_CONF={lax} HOME=/tmp {ADT_HW}"
            f" shell --inventory {inv} --lock-dir {tmp_path / 'ulocks'} -- null"
        )
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
            env=env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=GONE_WITHIN,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        assert f"user {user} may not open porterbox sessions on this host" in proc.stderr
        assert "@porterbox-staff" in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "ulocks").exists()
    finally:
        subprocess.run(["userdel", user], check=False)


def test_status_says_when_the_holder_is_gone_and_what_it_left_holds_the_lock(
    tmp_path: Path, gpu: tuple[str, str, str]
) -> None:
    inv, _, lock = gpu
    server = Server(
        ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null"], tmp_path / "e"
    )
    try:
        assert server.line() == "ok" and server.cmd("open").startswith("ok")
        auxverb = auxverb_of(server.cmd("print-execute-command").split()[1])
        # A test's leftover: it holds the lock descriptors after the virt server is gone.
        leftover = subprocess.Popen([*auxverb, "sleep", "300"])
        # The virt server holds the lock too: the leftover holds it once it runs sleep
        # (the keeper's client execs it with the descriptors), not before.
        wait_until(
            "the leftover holds the lock",
            lambda: cmdline(leftover.pid).startswith("sleep\0"),
        )
        server.proc.kill()
        server.proc.wait()
        assert not lock_is_free(lock)
        # (status reads /proc/locks, which other runs on a busy host fill: asked until seen)
        gone = f"[the holder, pid {server.proc.pid}, is gone"
        wait_until(
            "status says the holder is gone", lambda: gone in status(tmp_path, inv, text=True)
        )
        leftover.kill()
        leftover.wait()
        wait_until("the lock is free", lambda: lock_is_free(lock))
    finally:
        server.close()
