"""Attacks of a real unprivileged local user on the shared lock directory (issue 9, point 1).

Each test creates a system user with useradd, lets it prepare the attack in
a sticky world-writable lock directory like /run/lock/autopkgtest-hw, then
lets root allocate, and removes the user again.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autopkgtest_hw.locks.allocate import AllocationError, acquire, holders, lock_name
from autopkgtest_hw.locks.lockstate import device_states
from autopkgtest_hw.spec.inventory import Device, Inventory
from tests.unit.hostile import REPO, User, is_root, local_user

pytestmark = pytest.mark.skipif(not is_root(), reason="creates a local user (needs root)")


@pytest.fixture
def user() -> Iterator[User]:
    with local_user() as u:
        yield u


@pytest.fixture
def area() -> Iterator[Path]:
    """A directory both root and the user can reach (tmp_path is root's 0700)."""
    top = Path(tempfile.mkdtemp(prefix="hwlocks-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def shared_dir(area: Path) -> Path:
    d = area / "locks"
    d.mkdir()
    d.chmod(0o1777)
    return d


def device(node: Path) -> Device:
    return Device(
        classes=("gpu",),
        model="GPU 0",
        pci_address="0000:01:00.0",
        uuid="GPU-00000000-0000-0000-0000-000000000001",
        device_nodes=(str(node),),
    )


def node(area: Path, mode: int) -> Path:
    """A stand-in for a device node with the given permissions (root's)."""
    n = area / f"node{mode:o}"
    n.write_text("")
    n.chmod(mode)
    return n


def test_a_planted_symlink_never_makes_root_write_its_target(area: Path, user: User) -> None:
    locks = shared_dir(area)
    victim = area / "precious"
    victim.write_text("root's data\n")
    gpu = device(node(area, 0o666))
    link = locks / lock_name(gpu)
    r = user.run("import os, sys; os.symlink(sys.argv[1], sys.argv[2])", str(victim), str(link))
    assert r.returncode == 0, r.stderr
    alloc = acquire([gpu], None, str(locks))
    try:
        assert victim.read_text() == "root's data\n"
        assert not (locks / lock_name(gpu)).is_symlink()  # root removed the planted link
        assert stat.S_ISREG(os.lstat(locks / lock_name(gpu)).st_mode)
    finally:
        alloc.release()


PLANT = {
    "fifo": "import os, sys; os.mkfifo(sys.argv[1])",
    "directory": (
        "import os, sys; os.mkdir(sys.argv[1]); os.mkdir(sys.argv[1] + '/deeper');"
        " os.symlink('/etc', sys.argv[1] + '/deeper/etc')"
    ),
    "hard link": (
        "import os, sys; d = os.path.dirname(sys.argv[1]); open(d + '/mine', 'w').close();"
        " os.link(d + '/mine', sys.argv[1])"
    ),
    "symlink": "import os, sys; os.symlink('/etc/passwd', sys.argv[1])",
}


@pytest.mark.parametrize("kind", sorted(PLANT))
def test_root_removes_what_a_user_planted_at_a_lock_name(area: Path, user: User, kind: str) -> None:
    """Issue 18, 2: a FIFO, directory or second hard link at a lock name blocked every run."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    r = user.run(PLANT[kind], str(locks / lock_name(gpu)))
    assert r.returncode == 0, r.stderr
    alloc = acquire([gpu], None, str(locks))
    try:
        st = os.lstat(locks / lock_name(gpu))
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == 0
        assert os.path.exists("/etc/passwd") and os.path.isdir("/etc")
    finally:
        alloc.release()
    if kind == "hard link":
        assert (locks / "mine").read_text() == ""  # the user's own name is left alone


def test_a_user_is_refused_safely_at_a_planted_name(area: Path, user: User) -> None:
    """Only root may remove another user's things: a user gets an error that says so."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    with local_user() as victim:
        r = user.run(PLANT["fifo"], str(locks / lock_name(gpu)))
        assert r.returncode == 0, r.stderr
        r = victim.run(
            "import sys\n"
            "from autopkgtest_hw.locks.allocate import AllocationError, acquire\n"
            "from autopkgtest_hw.spec.inventory import Device\n"
            "d = Device(classes=('gpu',), pci_address='0000:01:00.0',"
            " device_nodes=(sys.argv[2],))\n"
            "try:\n"
            "    acquire([d], None, sys.argv[1])\n"
            "except AllocationError as exc:\n"
            "    print(exc)\n",
            str(locks),
            gpu.device_nodes[0],
        )
    assert r.returncode == 0, r.stderr
    assert "not a regular file" in r.stdout and "root removes it" in r.stdout
    assert stat.S_ISFIFO(os.lstat(locks / lock_name(gpu)).st_mode)


def test_a_device_user_cannot_hard_link_roots_lock_file(area: Path, user: User) -> None:
    """Issue 18, 2: root's lock file was 0666, so protected_hardlinks let anybody link it."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    alloc = acquire([gpu], None, str(locks))
    try:
        r = user.run(
            "import os, sys; os.link(sys.argv[1], sys.argv[2])",
            str(locks / lock_name(gpu)),
            str(locks / "copy.lock"),
        )
        assert r.returncode != 0 and "Operation not permitted" in r.stderr
        assert os.stat(locks / lock_name(gpu)).st_nlink == 1
    finally:
        alloc.release()


def test_a_user_barred_from_the_device_cannot_block_roots_lock(area: Path, user: User) -> None:
    """Holding an flock needs only a read descriptor: the lock file is root's 0600 here."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o600))  # only root may open the device
    alloc = acquire([gpu], None, str(locks))
    try:
        path = locks / lock_name(gpu)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == 0
        r = user.run("import sys; open(sys.argv[1], 'rb')", str(path))
        assert r.returncode != 0 and "Permission denied" in r.stderr
    finally:
        alloc.release()
    acquire([gpu], None, str(locks)).release()


def test_a_squatted_lock_file_is_taken_back(area: Path, user: User) -> None:
    """The user makes the lock file first and holds it: root removes it and locks anew."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o600))
    squat = user.start(
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n",
        str(locks / lock_name(gpu)),
    )
    try:
        assert squat.stdout is not None and squat.stdout.readline().strip() == "held"
        alloc = acquire([gpu], None, str(locks))
        try:
            st = (locks / lock_name(gpu)).stat()
            assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
        finally:
            alloc.release()
    finally:
        squat.kill()
        squat.wait()
        assert squat.stdout is not None
        squat.stdout.close()


def test_a_lock_file_root_made_is_usable_by_users_of_the_device(area: Path, user: User) -> None:
    """The docs promise one directory for every user's runs: /dev/nvidia0 is 0666."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    acquire([gpu], None, str(locks)).release()
    r = user.run(
        "import sys\n"
        "from autopkgtest_hw.locks.allocate import acquire\n"
        "from autopkgtest_hw.spec.inventory import Device\n"
        "d = Device(classes=('gpu',), uuid=sys.argv[2], device_nodes=(sys.argv[3],))\n"
        "acquire([d], None, sys.argv[1]).release()\n"
        "print('locked')\n",
        str(locks),
        gpu.uuid or "",
        gpu.device_nodes[0],
    )
    assert r.returncode == 0 and r.stdout.strip() == "locked", r.stderr


def test_forged_holder_lines_are_not_what_a_waiter_prints(area: Path, user: User) -> None:
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    acquire([gpu], None, str(locks)).release()
    forger = user.start(
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'hw1 pid=1 kind=ci user=root package=trusted argv=official%20CI\\n')\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n",
        str(locks / lock_name(gpu)),
    )
    try:
        assert forger.stdout is not None and forger.stdout.readline().strip() == "held"
        who = holders(str(locks / lock_name(gpu)))
        assert who == [f"pid {forger.pid} of user {user.name}"]
        with pytest.raises(AllocationError, match=f"locked by pid {forger.pid} of user"):
            acquire([gpu], None, str(locks))
    finally:
        forger.kill()
        forger.wait()
        assert forger.stdout is not None
        forger.stdout.close()


FORGE = (
    "import os, sys\n"
    "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
    "os.ftruncate(fd, 0)\n"
    "os.write(fd, f'hw1 pid={sys.argv[2]} kind=porterbox user=root until=9999999999\\n'.encode())\n"
)


def test_a_device_user_cannot_forge_roots_holder_record(area: Path, user: User) -> None:
    """Issue 18, 10: root's record rewritten with the real pid was shown as verified."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    path = locks / lock_name(gpu)
    alloc = acquire([gpu], None, str(locks))
    try:
        r = user.run(FORGE, str(path), str(os.getpid()))
        assert r.returncode != 0 and "Permission denied" in r.stderr  # only its owner writes it
        path.chmod(0o666)  # a lock file as older versions left it: anybody may write
        r = user.run(FORGE, str(path), str(os.getpid()))
        assert r.returncode == 0, r.stderr
        [state] = device_states(Inventory(devices=(gpu,)), str(locks))
        [held_by] = state.holders
        assert state.state == "held" and held_by.pid == os.getpid()
        assert not held_by.verified and "porterbox" not in held_by.describe()
        assert holders(str(path)) == [f"pid {os.getpid()} of user root"]
    finally:
        alloc.release()


def test_an_existing_private_lock_dir_keeps_its_mode(area: Path) -> None:
    private = area / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    acquire([device(node(area, 0o666))], None, str(private)).release()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_a_lock_dir_of_another_user_or_a_symlink_is_refused(area: Path, user: User) -> None:
    theirs = area / "theirs"
    theirs.mkdir()
    os.chown(theirs, user.uid, user.gid)
    with pytest.raises(AllocationError, match="belongs to uid"):
        acquire([device(node(area, 0o666))], None, str(theirs))
    link = area / "link"
    link.symlink_to(theirs)
    with pytest.raises(AllocationError, match="not a directory"):
        acquire([device(node(area, 0o666))], None, str(link))
    open_dir = area / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(AllocationError, match="not sticky"):
        acquire([device(node(area, 0o666))], None, str(open_dir))


def test_a_failed_allocation_leaves_no_lock_files(area: Path) -> None:
    """Point 9: a run that cannot lock all it needs removes the files it made."""
    locks = area / "locks"
    gpus = [
        Device(classes=("gpu",), pci_address=f"0000:{i // 256:02x}:{i % 256:02x}.0")
        for i in range(40)
    ]
    held = acquire(gpus[-1:], None, str(locks))
    try:
        with pytest.raises(AllocationError):
            acquire(gpus, None, str(locks))
        assert sorted(os.listdir(locks)) == [lock_name(gpus[-1])]
    finally:
        held.release()


def test_a_planted_fifo_ticket_does_not_block_the_queue(area: Path, user: User) -> None:
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    acquire([gpu], None, str(locks)).release()  # makes the queue directory
    (locks / "queue").mkdir(mode=0o1777, exist_ok=True)
    (locks / "queue").chmod(0o1777)
    r = user.run(
        "import os, sys; os.mkfifo(sys.argv[1]); os.mkfifo(sys.argv[2])",
        str(locks / "queue" / "1-1.ticket"),
        str(locks / "queue" / ".seq"),
    )
    assert r.returncode == 0, r.stderr
    held = acquire([gpu], None, str(locks))
    try:
        with pytest.raises(AllocationError, match=r"gave up after 0\.3 s"):
            acquire([gpu], None, str(locks), timeout=0.3)  # queues: reads the tickets
    finally:
        held.release()


HOLD = (
    "import sys, time\n"
    "from autopkgtest_hw.locks.allocate import acquire\n"
    "from autopkgtest_hw.spec.inventory import Device\n"
    "d = Device(classes=('gpu',), pci_address='0000:01:00.0', device_nodes=(sys.argv[2],),\n"
    "           uuid='GPU-00000000-0000-0000-0000-000000000001')\n"
    "alloc = acquire([d], None, sys.argv[1], timeout=float(sys.argv[3]))\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[4]))\n"
)


def test_a_lock_file_a_user_made_for_a_root_device_is_open_to_all(area: Path, user: User) -> None:
    """Issue 18, 3: the creator's fchown(gid 0) failed and the fchmod after it was skipped."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))  # root:root 0666, like /dev/nvidia0
    first = user.start(HOLD, str(locks), gpu.device_nodes[0], "0", "120")
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "locked"
        st = (locks / lock_name(gpu)).stat()
        assert st.st_uid == user.uid and stat.S_IMODE(st.st_mode) == 0o644
        with local_user() as worker:  # the debci worker's user: waits, is not refused
            r = worker.run(HOLD, str(locks), gpu.device_nodes[0], "0", "0")
            assert "not waiting (--lock-timeout 0)" in r.stderr, r.stderr
            first.kill()  # SIGKILL: the file stays behind, the lock goes
            first.wait()
            r = worker.run(HOLD, str(locks), gpu.device_nodes[0], "5", "0")
            assert r.returncode == 0 and r.stdout.strip() == "locked", r.stderr
    finally:
        first.kill()
        first.wait()
        assert first.stdout is not None
        first.stdout.close()


def test_a_user_gets_the_device_after_its_node_became_open(area: Path, user: User) -> None:
    """Issue 20: a lock file made while the node was 0644 stayed 0600 when it became 0666."""
    locks = shared_dir(area)
    n = node(area, 0o644)
    gpu = device(n)
    acquire([gpu], None, str(locks)).release()
    n.chmod(0o666)
    r = user.run(HOLD, str(locks), str(n), "0", "0")
    assert r.returncode == 0 and r.stdout.strip() == "locked", r.stderr


def queue_dir(locks: Path) -> Path:
    """The queue as the Debian package makes it at boot (debian/autopkgtest-hw.tmpfiles)."""
    q = locks / "queue"
    q.mkdir()
    q.chmod(0o1777)
    return q


FAKE_TICKETS = (
    "import fcntl, os, sys, time\n"
    "q, lock, count = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "record = f'hw1 pid=1 kind=porterbox user=root\\nwants {lock}\\n'.encode()\n"
    "fds = []\n"
    "for name in ('1-1.ticket', f'2-{os.getpid()}.ticket'):\n"
    "    fd = os.open(os.path.join(q, name), os.O_RDWR | os.O_CREAT, 0o644)\n"
    "    os.write(fd, record.replace(b'pid=1', f'pid={os.getpid()}'.encode())\n"
    "             if name.startswith('2-') else record)\n"
    "    fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "    fds.append(fd)\n"
    "for i in range(count):  # one flocked file under many names\n"
    "    os.link(os.path.join(q, f'2-{os.getpid()}.ticket'),\n"
    "            os.path.join(q, f'{3 + i}-{os.getpid()}.ticket'))\n"
    "print('queued', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.parametrize(("mode", "links"), [(0o600, 0), (0o666, 1000)])
def test_nobody_can_block_the_device_with_forged_tickets(
    area: Path, user: User, mode: int, links: int
) -> None:
    """Issue 18, 1: a user's ticket (pid 1, or hard-linked 1000 times) blocked root's CI."""
    locks = shared_dir(area)
    q = queue_dir(locks)
    gpu = device(node(area, mode))
    fake = user.start(FAKE_TICKETS, str(q), lock_name(gpu), str(links))
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "queued"
        [state] = device_states(Inventory(devices=(gpu,)), str(locks))
        assert state.state == "free" and state.waiters == []
        alloc = acquire([gpu], None, str(locks))  # --lock-timeout 0 and not blocked
        alloc.release()
    finally:
        fake.kill()
        fake.wait()
        assert fake.stdout is not None
        fake.stdout.close()


def test_a_device_users_own_ticket_counts(area: Path, user: User) -> None:
    """The queue still works for the users of the device: a ticket of their own process."""
    locks = shared_dir(area)
    queue_dir(locks)
    gpu = device(node(area, 0o666))
    held = acquire([gpu], None, str(locks))
    waiter = user.start(HOLD, str(locks), gpu.device_nodes[0], "30", "0")
    try:
        for _ in range(100):
            [state] = device_states(Inventory(devices=(gpu,)), str(locks))
            if state.waiters:
                break
            time.sleep(0.1)
        [w] = state.waiters
        assert w.pid == waiter.pid and w.user == user.name and w.verified
    finally:
        held.release()
    assert waiter.stdout is not None and waiter.stdout.readline().strip() == "locked"
    waiter.wait()
    waiter.stdout.close()


@pytest.mark.parametrize("planted", ["file", "directory"])
def test_root_queues_whatever_a_user_planted_as_the_queue(
    area: Path, user: User, planted: str
) -> None:
    """Issue 18, 1: a plain file `queue`, or a user's own `queue/`, made root's runs fail."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    make = "open(sys.argv[1], 'w').close()" if planted == "file" else "os.mkdir(sys.argv[1])"
    r = user.run(f"import os, sys; {make}", str(locks / "queue"))
    assert r.returncode == 0, r.stderr
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(locks), gpu.device_nodes[0], "0", "30"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(AllocationError, match=r"gave up after 0\.5 s"):
            acquire([gpu], None, str(locks), timeout=0.5)
        st = os.lstat(locks / "queue")
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_user_waits_without_a_ticket_where_the_queue_is_not_trusted(
    area: Path, user: User
) -> None:
    """Another user's `queue` file cannot be removed by a user: they wait all the same."""
    locks = shared_dir(area)
    gpu = device(node(area, 0o666))
    with local_user() as planter:
        r = planter.run("import sys; open(sys.argv[1], 'w').close()", str(locks / "queue"))
        assert r.returncode == 0, r.stderr
        held = acquire([gpu], None, str(locks))
        waiter = user.start(HOLD, str(locks), gpu.device_nodes[0], "30", "0")
        time.sleep(1)
        held.release()
        assert waiter.stdout is not None and waiter.stdout.readline().strip() == "locked"
        assert waiter.wait() == 0
        waiter.stdout.close()


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None, reason="needs systemd-tmpfiles")
def test_the_package_makes_the_queue_at_boot_with_the_lock_dir(area: Path, user: User) -> None:
    """Issue 18, 1: tmpfiles.d made only the lock directory; a user could make `queue/` first."""
    tmpfiles = Path(REPO) / "debian" / "autopkgtest-hw.tmpfiles"
    subprocess.run(["systemd-tmpfiles", f"--root={area}", "--create", str(tmpfiles)], check=True)
    locks = area / "run" / "lock" / "autopkgtest-hw"
    st = os.lstat(locks / "queue")
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o1777
    r = user.run("import os, sys; os.rmdir(sys.argv[1])", str(locks / "queue"))
    assert r.returncode != 0
