"""Device selection (--gpu, --count) and flock locks (exclusive, shared, released on death)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.locks import holders as hw_holders
from autopkgtest_hw.locks.allocate import AllocationError, acquire, holders, lock_name, select
from autopkgtest_hw.locks.lockstate import device_states
from autopkgtest_hw.spec.inventory import Device, Inventory


def gpu(i: int, **kw: object) -> Device:
    base: dict[str, object] = dict(
        classes=("gpu", "cuda"),
        vendor="nvidia",
        model=f"GPU {i}",
        pci_address=f"0000:0{i}:00.0",
        pci_id="10de:2331",
        compute_capability="9.0" if i else "7.5",
        device_nodes=(f"/dev/nvidia{i}",),
        uuid=f"GPU-{i}{i}{i}{i}aaaa-0000-0000-0000-000000000000",
        index=i,
        sources=("nvml", "udev"),
    )
    base.update(kw)
    return Device(**base)  # type: ignore[arg-type]


POCL = Device(classes=("opencl",), vendor="amd", model="pthread", opencl_type="cpu")
INV = Inventory(devices=(gpu(0), gpu(1), gpu(2), POCL))


def names(devices: list[Device]) -> list[str | None]:
    return [d.model for d in devices]


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        ([], ["GPU 0", "GPU 1", "GPU 2", "pthread"]),
        (["1"], ["GPU 1"]),
        (["2", "0"], ["GPU 0", "GPU 2"]),
        (["GPU-1111aaaa-0000-0000-0000-000000000000"], ["GPU 1"]),
        (["1111aaaa-0000-0000-0000-000000000000"], ["GPU 1"]),
        (["0000:02:00.0"], ["GPU 2"]),
        (["02:00.0"], ["GPU 2"]),
        (["cuda:cc>=8.0"], ["GPU 1", "GPU 2"]),
        (["opencl:type=cpu"], ["pthread"]),
    ],
)
def test_selectors(selectors: list[str], expected: list[str]) -> None:
    assert names(select(INV, selectors)) == expected


def test_position_is_the_index_when_no_device_has_one() -> None:
    inv = Inventory(devices=(gpu(0, index=None), gpu(1, index=None)))
    assert names(select(inv, ["1"])) == ["GPU 1"]


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("7", "--gpu 7: no device matches (devices: #0 GPU 0 (0000:00:00.0)"),
        ("0000:09:00.0", "--gpu 0000:09:00.0: no device matches"),
        ("rocm", "--gpu rocm: no device matches"),
        ("cdua", "not an index, UUID or PCI address, and invalid hardware spec 'cdua'"),
    ],
)
def test_bad_selectors_name_what_exists(selector: str, message: str) -> None:
    with pytest.raises(AllocationError) as err:
        select(INV, [selector])
    assert message in str(err.value)


def test_exclusive_lock_is_held_and_named(tmp_path: Path) -> None:
    alloc = acquire([gpu(0), POCL], None, str(tmp_path))
    try:
        assert names(alloc.devices) == ["GPU 0", "pthread"]  # PoCL needs no lock
        path = tmp_path / lock_name(gpu(0))
        [holder] = holders(str(path))
        assert holder.startswith(f"pid {os.getpid()} (") and "pytest" in holder
        busy = r"not waiting \(--lock-timeout 0\): GPU 0 .* locked by pid"
        with pytest.raises(AllocationError, match=busy):
            acquire([gpu(0)], None, str(tmp_path))
    finally:
        alloc.release()
    again = acquire([gpu(0)], None, str(tmp_path))
    again.release()


def test_count_takes_the_free_devices(tmp_path: Path) -> None:
    first = acquire([gpu(0)], None, str(tmp_path))
    try:
        second = acquire([gpu(0), gpu(1), gpu(2)], 2, str(tmp_path))
        assert names(second.devices) == ["GPU 1", "GPU 2"]
        second.release()
        with pytest.raises(AllocationError, match="only 3 device"):
            acquire([gpu(0), gpu(1), gpu(2)], 4, str(tmp_path))
    finally:
        first.release()


def test_shared_locks_coexist_but_exclude_an_exclusive_one(tmp_path: Path) -> None:
    a = acquire([gpu(0)], None, str(tmp_path), shared=True)
    b = acquire([gpu(0)], None, str(tmp_path), shared=True)
    with pytest.raises(AllocationError):
        acquire([gpu(0)], None, str(tmp_path))
    a.release()
    b.release()


def test_wait_message_then_timeout(tmp_path: Path) -> None:
    held = acquire([gpu(1)], None, str(tmp_path))
    told: list[str] = []
    try:
        with pytest.raises(AllocationError, match=r"gave up after 0.3 s \(--lock-timeout\)"):
            acquire([gpu(1)], None, str(tmp_path), timeout=0.3, on_wait=told.append)
    finally:
        held.release()
    assert len(told) == 1 and told[0].startswith("waiting for GPU 1 (GPU-1111aaaa")


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    """The kernel drops an flock when its holder dies, even by SIGKILL."""
    path = tmp_path / lock_name(gpu(0))
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'{os.getpid()} holder\\n'.encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(AllocationError, match=f"locked by pid {proc.pid} \\(holder\\)"):
        acquire([gpu(0)], None, str(tmp_path))
    proc.kill()
    proc.wait()
    proc.stdout.close()
    alloc = acquire([gpu(0)], None, str(tmp_path))
    assert holders(str(path))[0].startswith(f"pid {os.getpid()} ")  # the new holder's line
    alloc.release()
    assert holders(str(path)) == []  # a record of a lock nobody holds is not a holder


def test_unwritable_lock_dir_says_which_option(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AllocationError, match=r"cannot create the lock directory .* --lock-dir"):
        acquire([gpu(0)], None, str(blocker / "locks"))


def test_lock_descriptors_are_not_inherited_by_accident(tmp_path: Path) -> None:
    alloc = acquire([gpu(0)], None, str(tmp_path))
    try:
        assert all(not os.get_inheritable(fd) for fd in alloc.fds)
        assert fcntl.fcntl(alloc.fds[0], fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        alloc.release()


def test_one_gpu_is_one_lock_whichever_detectors_saw_it(tmp_path: Path) -> None:
    """Issue 18, 5: a saved inventory with the NVML UUID and a run without NVML both got it."""
    with_nvml = gpu(0)
    without_nvml = gpu(0, uuid=None, index=None, sources=("udev",), pci_address="0000:00:00.0")
    assert lock_name(with_nvml) == lock_name(without_nvml)
    alloc = acquire([with_nvml], None, str(tmp_path))
    try:
        with pytest.raises(AllocationError, match="locked by pid"):
            acquire([without_nvml], None, str(tmp_path))
        [record] = hw_holders.live_holders(str(tmp_path / lock_name(with_nvml)))
        assert record.device == with_nvml.uuid  # the UUID is recorded with the lock
    finally:
        alloc.release()


def test_a_lock_is_not_hidden_behind_many_others(tmp_path: Path) -> None:
    """Issue 18, 8: only the first 1 MiB of /proc/locks was read; 48 k flocks hid the holder.

    The kernel lists each CPU's locks newest first: locks taken on the same CPU
    after ours come before it.
    """
    cpu = min(os.sched_getaffinity(0))
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        alloc = acquire([gpu(0)], None, str(tmp_path))
    finally:
        os.sched_setaffinity(0, mine)
    flood = tmp_path / "flood"
    flood.mkdir()
    code = (  # a lock each on files of their own: the kernel's table grows, not its work
        "import fcntl, os, sys, time\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        "parent = os.getpid()\n"
        "for k in range(2):\n"
        "    if os.fork() == 0:\n"
        "        fds = []\n"
        "        for i in range(12000):\n"
        "            fds.append(os.open(f'{sys.argv[1]}/{k}-{i}', os.O_RDONLY | os.O_CREAT))\n"
        "            fcntl.flock(fds[-1], fcntl.LOCK_SH)\n"
        "        os.write(1, b'flooded\\n')  # one write: two children share the pipe\n"
        "        while os.getppid() == parent:\n"
        "            time.sleep(0.1)\n"
        "        os._exit(0)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(flood)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert [proc.stdout.readline() for _ in range(2)] == [b"flooded\n"] * 2
        with open("/proc/locks", "rb") as f:
            table = f.read()
        assert table.index(b"FLOCK", 1 << 20) > 0  # more than the 1 MiB that was read
        [state] = device_states(Inventory(devices=(gpu(0),)), str(tmp_path))
        assert state.state == "held" and [h.pid for h in state.holders] == [os.getpid()]
    finally:
        proc.kill()
        proc.wait()
        alloc.release()
        if proc.stdout is not None:
            proc.stdout.close()
