"""The keeper: lock descriptors handed to testbed commands, and what is left removed."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from autopkgtest_hw.locks import keeper as keeper_mod
from autopkgtest_hw.locks.allocate import AllocationError, acquire, lock_name
from autopkgtest_hw.locks.keeper import Keeper
from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.hooks import HardwareHooks

GPU = Device(classes=("gpu",), uuid="GPU-keeper", device_nodes=("/dev/null",))


def _holds(pid: int, path: str) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd) == path for fd in fds.iterdir())
    except OSError:
        return False


def test_a_testbed_command_holds_the_lock_and_none_runs_without_it(tmp_path: Path) -> None:
    lock = str(tmp_path / "locks" / lock_name(GPU))
    alloc = acquire([GPU], None, str(tmp_path / "locks"))
    k = Keeper(alloc.fds, {})
    try:
        sleeper = subprocess.Popen([*k.prefix(), "sleep", "60"])
        deadline = time.monotonic() + 60
        while not _holds(sleeper.pid, lock) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _holds(sleeper.pid, lock)  # it became `sleep` holding the lock descriptor
    finally:
        k.finish()
        alloc.release()
    try:
        # The virt server's descriptors and the keeper are gone: the command still holds it.
        with pytest.raises(AllocationError):
            acquire([GPU], None, str(tmp_path / "locks"))
    finally:
        sleeper.kill()
        sleeper.wait()
    acquire([GPU], None, str(tmp_path / "locks")).release()
    late = subprocess.run([*k.prefix(), "true"], capture_output=True, text=True, check=False)
    assert late.returncode == 255 and "the device locks are gone" in late.stderr


def test_the_prefix_survives_autopkgtests_reading_of_the_reply(tmp_path: Path) -> None:
    alloc = acquire([GPU], None, str(tmp_path / "locks"))
    k = Keeper(alloc.fds, {})
    try:
        hooks = HardwareHooks.__new__(HardwareHooks)
        hooks.command_prefix = k.prefix()
        reply = hooks._prefixed("ok unshare,--map-auto,sh%252Cx")
        # adt_testbed: unquote the reply word, split at commas, unquote each piece
        word = unquote(reply.split()[1])
        exec_cmd = [unquote(w) for w in word.split(",")]
        assert exec_cmd == [*k.prefix(), "unshare", "--map-auto", "sh,x"]
    finally:
        k.finish()
        alloc.release()


def test_cleanup_removes_a_leftover_unpack_directory(tmp_path: Path) -> None:
    work = tmp_path / "autopkgtest-hw-unshare.x"
    (work / "rootfs" / "etc").mkdir(parents=True)
    removed = keeper_mod.cleanup({"unshare_dir": str(work / "rootfs"), "dirs": [str(work)]})
    assert removed == [f"unpacked testbed {work / 'rootfs'}"]
    assert not work.exists()


@pytest.mark.parametrize("argv", [[], ["--run"], ["--keep", "x"]])
def test_bad_usage_is_exit_2(argv: list[str]) -> None:
    assert keeper_mod.main(argv) == 2


def test_a_process_of_the_same_user_outside_the_client_gets_no_locks(tmp_path: Path) -> None:
    alloc = acquire([GPU], None, str(tmp_path / "locks"))
    k = Keeper(alloc.fds, {})
    out, rc = tmp_path / "out", tmp_path / "rc"
    try:
        inside = subprocess.run([*k.prefix(), "true"], capture_output=True, check=False)
        assert inside.returncode == 0  # one of ours (a child of the keeper's client's tree)
        # setsid -f: a process reparented away from the client's tree, of the same user.
        script = f"{' '.join(k.prefix())} true >{out} 2>&1; echo $? >{rc}.tmp; mv {rc}.tmp {rc}"
        subprocess.run(["setsid", "-f", "sh", "-c", script], check=True)
        deadline = time.monotonic() + 60
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rc.read_text().strip() == "255"
        assert "handed only to the processes of the testbed's client" in out.read_text()
    finally:
        k.finish()
        alloc.release()
