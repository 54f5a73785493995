"""The keeper: lock descriptors handed to testbed commands, and what is left removed."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from autopkgtest_hw.locks import keeper as keeper_mod
from autopkgtest_hw.locks.allocate import AllocationError, acquire, lock_name
from autopkgtest_hw.locks.keeper import Keeper, KeeperError
from autopkgtest_hw.spec.inventory import Device, Inventory
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
    k = Keeper(alloc.fds, [])
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
    k = Keeper(alloc.fds, [])
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


def test_cleanup_runs_the_backends_steps_and_says_what_went(tmp_path: Path) -> None:
    work = tmp_path / "autopkgtest-hw-unshare.x"
    (work / "rootfs" / "etc").mkdir(parents=True)
    steps = [
        {"argv": ["false"], "what": "a step that fails is not reported"},
        {"argv": ["rm", "-rf", str(work)], "what": f"testbed {work}", "if_exists": str(work)},
        {"argv": ["touch", str(tmp_path / "ran")], "what": "skipped", "if_exists": str(work)},
    ]
    assert keeper_mod.cleanup(steps) == [f"testbed {work}"]
    assert not work.exists()
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("argv", [[], ["--run"], ["--keep", "x"]])
def test_bad_usage_is_exit_2(argv: list[str]) -> None:
    assert keeper_mod.main(argv) == 2


def test_a_socket_path_too_long_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmpdir = tmp_path / ("t" * 90)
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    alloc = acquire([GPU], None, str(tmp_path / "locks"))
    try:
        with pytest.raises(KeeperError, match="more than the 107 a Unix socket") as caught:
            Keeper(alloc.fds, [])
        assert "set TMPDIR to a shorter directory" in str(caught.value)
    finally:
        alloc.release()
    assert list(tmpdir.iterdir()) == []


def test_a_keeper_that_dies_at_start_says_why_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its Python cannot import the package (a launcher run from elsewhere, say): a reason."""
    installed = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", "import autopkgtest_hw"], capture_output=True, check=False
    )
    if installed.returncode == 0:
        pytest.skip("the system Python has autopkgtest_hw installed: the keeper would start")
    tmpdir = Path(tempfile.mkdtemp(prefix="ahw-", dir="/tmp"))  # a socket path that fits
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(keeper_mod, "_PACKAGE_ROOT", str(tmp_path / "nowhere"))
    monkeypatch.setattr(keeper_mod.sys, "executable", "/usr/bin/python3")
    alloc = acquire([GPU], None, str(tmp_path / "locks"))
    try:
        with pytest.raises(KeeperError, match="No module named 'autopkgtest_hw'"):
            Keeper(alloc.fds, [])
    finally:
        alloc.release()
    assert list(tmpdir.iterdir()) == []
    tmpdir.rmdir()


def test_the_keeper_starts_from_a_launcher_run_in_another_directory(tmp_path: Path) -> None:
    """The checkout's launcher, the system Python, cwd elsewhere: testbed commands run (not 255)."""
    inventory = tmp_path / "inv.json"
    inventory.write_text(Inventory(devices=(GPU,)).to_json())
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from autopkgtest_hw.locks.allocate import acquire;"
        "from autopkgtest_hw.locks.keeper import Keeper;"
        "from autopkgtest_hw.spec.inventory import Inventory;"
        "import subprocess;"
        "inv = Inventory.load(sys.argv[2]);"
        "alloc = acquire(list(inv.devices), None, sys.argv[3]);"
        "k = Keeper(alloc.fds, []);"
        "rc = subprocess.run([*k.prefix(), 'true']).returncode;"
        "k.finish(); alloc.release(); sys.exit(rc)"
    )
    checkout = str(Path(keeper_mod.__file__).resolve().parents[2])
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", code, checkout, str(inventory), str(tmp_path / "l")],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_process_of_the_same_user_outside_the_client_gets_no_locks(tmp_path: Path) -> None:
    alloc = acquire([GPU], None, str(tmp_path / "locks"))
    k = Keeper(alloc.fds, [])
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
