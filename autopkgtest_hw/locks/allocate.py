"""Choose the devices a testbed gets and lock them so two testbeds never share one.

A lock is an ``flock`` on ``<lock dir>/<device>.lock``, held by an open file
descriptor: the kernel drops it when the last process holding the descriptor
dies, even by SIGKILL, so a crashed run never leaves a device locked.  The
holder writes its record (``holders``: pid, kind, user, package, since,
until, command line) into the file, so a waiting run can say who it waits
for.  Waiters queue with a ticket (``tickets``) and are served in order; a
run takes all the devices it needs at once or none, so two runs never hold
one device each while waiting for the other's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from autopkgtest_hw.base import bounds, log
from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.locks import holders as holder_records
from autopkgtest_hw.locks.holders import Holder
from autopkgtest_hw.locks.lockdir import (
    LockDir,
    LockDirError,
    device_access,
    may_use,
    squatted,
)
from autopkgtest_hw.spec.hardware import normalise_address
from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.spec.render import describe_device

if TYPE_CHECKING:
    from autopkgtest_hw.locks import tickets

DEFAULT_LOCK_DIR = "/run/lock/autopkgtest-hw"
POLL_INTERVAL = 0.2


class AllocationError(HwError):
    """No device fits the request, or the wanted ones stayed locked too long."""


def needs_lock(device: Device) -> bool:
    """Physical devices are locked; an OpenCL CPU device (PoCL) is the CPU itself."""
    return bool(device.device_nodes or device.pci_address)


def select(inventory: Inventory, selectors: Sequence[str]) -> list[Device]:
    """The devices named by ``selectors`` (all devices if none), in inventory order.

    A selector is an index (NVML's, else the position in the inventory), a
    UUID, a PCI address (``0000:01:00.0`` or ``01:00.0``) or a hardware spec
    (``cuda:cc>=8.0``: every device that fits it).
    """
    devices = list(inventory.devices)
    if not selectors:
        return devices
    chosen: set[int] = set()
    for sel in selectors:
        found = _select_one(inventory, devices, sel.strip())
        if not found:
            raise AllocationError(f"--gpu {sel}: {_no_match(sel, devices)}")
        chosen.update(found)
    return [d for i, d in enumerate(devices) if i in chosen]


def _select_one(inventory: Inventory, devices: list[Device], sel: str) -> list[int]:
    low = sel.lower()
    if sel.isascii() and sel.isdigit():  # "²" is a digit to str.isdigit, not to int()
        if len(sel) > 6:
            return []  # no inventory has a million devices
        n = int(sel)
        by_index = [i for i, d in enumerate(devices) if d.index == n]
        if by_index:
            return by_index
        if any(d.index is not None for d in devices):
            return []
        return [n] if n < len(devices) else []
    address = normalise_address(sel)
    if address is not None:
        return [i for i, d in enumerate(devices) if (d.pci_address or "").lower() == address]
    by_uuid = [i for i, d in enumerate(devices) if d.uuid and _same_uuid(d.uuid, sel)]
    if by_uuid:
        return by_uuid
    # Only a spec needs the language and the matcher (the virt server's start-up
    # with no --gpu or an index imports neither: docs/performance.md).
    from autopkgtest_hw.spec import language as spec
    from autopkgtest_hw.spec import matcher

    try:
        parsed = spec.parse(sel)
    except spec.SpecError as exc:
        if low.startswith(("gpu-", "mig-")) or len(low) >= 32:
            return []  # a UUID that matched nothing
        raise AllocationError(
            f"--gpu {sel}: not an index, UUID or PCI address, and {exc}"
        ) from None
    verdict = matcher.match(parsed, inventory)
    fitting = {id(d) for d in verdict.devices}
    return [i for i, d in enumerate(devices) if id(d) in fitting]


def _same_uuid(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        u = u.lower()
        return u[4:] if u.startswith("gpu-") else u

    return norm(a) == norm(b)


def _no_match(sel: str, devices: list[Device]) -> str:
    if not devices:
        return "no device matches: the inventory has no devices"
    names = ", ".join(describe_device(d, "short", position=i) for i, d in enumerate(devices))
    return f"no device matches (devices: {names})"


def lock_name(device: Device) -> str:
    """A file name for the device's lock: one name per physical device, made file-safe.

    The PCI address where the device has one: every detector that sees the
    device finds it (udev, NVML, OpenCL, Vulkan), so a run from a saved
    inventory with the NVML UUID and a run on a host without NVML take the
    same lock (the UUID goes into the holder record).  Without a PCI address,
    the device nodes; only then the identity (UUID or model).
    """
    if device.pci_address:
        ident = normalise_address(device.pci_address) or device.pci_address.lower()
    elif device.device_nodes:
        ident = "nodes-" + "+".join(sorted(device.device_nodes)).lstrip("/")
    else:
        ident = device.ident
    return re.sub(r"[^A-Za-z0-9._+-]", "_", ident)[:200] + ".lock"


def may_wait(device: Device) -> Callable[[int], bool]:
    """Whose tickets count for ``device``: root's, ours, and those of users who may open it."""
    me = os.geteuid()
    return lambda uid: uid in (0, me) or may_use(uid, device.device_nodes)


@dataclass
class Allocation:
    """The devices a testbed got and the lock descriptors that hold them."""

    devices: list[Device]
    fds: list[int] = field(default_factory=list)
    #: Where the locks are, and their names: removed at release if nobody holds them then.
    lock_dir: str | None = None
    names: list[str] = field(default_factory=list)

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        if self.lock_dir is None or not self.names:
            return
        with contextlib.suppress(LockDirError, OSError), LockDir(self.lock_dir, False) as ldir:
            for name in self.names:
                ldir.remove_if_free(name)
        self.names = []


def holders(path: str) -> list[str]:
    """Who holds a lock file, described for a person: the kernel's word over the file's.

    A record counts only if the kernel's lock table confirms that its pid
    holds the lock (anybody who may write the file could write a line); a
    holder without a confirmed record is named by its pid and real owner.
    """
    pids = holder_records.flock_pids(path)
    records = holder_records.live_holders(path, pids)
    if pids is None:
        return [h.describe() for h in records]
    confirmed = [h for h in records if h.pid in pids and h.verified]
    out = [h.describe() for h in confirmed]
    named = {h.pid for h in confirmed}
    for pid in sorted(pids - named):
        owner = holder_records.process_owner(pid)
        if owner is None and not holder_records.alive(pid):
            # The kernel names the process that took the lock; the descriptor lives on
            # in the processes of its testbed (or its keeper) until they are gone.
            out.append(f"pid {pid} (exited; its testbed's processes still hold the lock)")
        else:
            out.append(f"pid {pid}" + (f" of user {safe(owner)}" if owner else ""))
    return out


def acquire(
    candidates: Sequence[Device],
    count: int | None,
    lock_dir: str,
    *,
    shared: bool = False,
    timeout: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    holder: Holder | None = None,
) -> Allocation:
    """Lock ``count`` of the physical ``candidates`` (all if None), waiting up to ``timeout`` s.

    Devices that need no lock (an OpenCL CPU device) always come along and do
    not count.  With ``count``, whichever devices are free first are taken.
    On timeout the error names the holders.  ``holder`` is the record written
    into the lock files (default: this process, a CI job).
    """
    lockable = [d for d in candidates if needs_lock(d)]
    want = len(lockable) if count is None else count
    if want > len(lockable):
        raise AllocationError(
            f"--count {want}: only {len(lockable)} device(s) with device nodes or a PCI"
            " address to choose from"
        )
    if want > bounds.MAX_LOCKS:
        raise AllocationError(
            f"{want} devices to lock: at most {bounds.MAX_LOCKS} may be locked at once"
            " (select fewer with --gpu or --count)"
        )
    record = holder if holder is not None else holder_records.for_this_process()
    if not want:
        return Allocation(devices=[d for d in candidates if not needs_lock(d)])
    try:
        ldir = LockDir(lock_dir)
    except LockDirError as exc:
        raise AllocationError(str(exc)) from None
    try:
        return _acquire(ldir, candidates, lockable, want, shared, timeout, on_wait, record)
    finally:
        ldir.close()


def _acquire(
    ldir: LockDir,
    candidates: Sequence[Device],
    lockable: list[Device],
    want: int,
    shared: bool,
    timeout: float,
    on_wait: Callable[[str], None] | None,
    record: Holder,
) -> Allocation:
    from autopkgtest_hw.locks import tickets  # only once something is to be locked

    lock_dir = ldir.path
    deadline = time.monotonic() + timeout
    told = False
    ticket: tickets.Ticket | None = None
    unqueued = False  # the queue cannot be trusted: waiting without a ticket
    qdir = os.path.join(lock_dir, tickets.QUEUE)
    created: set[str] = set()  # lock files this call made: removed again if it fails
    held: dict[int, int] = {}  # position in lockable -> fd
    done = False
    try:
        while True:
            held = {}
            for i, d in enumerate(lockable):
                if len(held) >= want:
                    break
                name = lock_name(d)
                allowed = may_wait(d)
                if ticket is not None and not ticket.first_in_line(name, allowed):
                    continue  # somebody asked before us
                if ticket is None and tickets.waiters(qdir, name, allowed):
                    continue  # others are queued for it: get in line
                fd = _try_lock(ldir, d, shared, created)
                if fd is not None:
                    held[i] = fd
            if len(held) >= want:
                break
            for fd in held.values():  # all or nothing: no holding while waiting
                os.close(fd)
            held = {}
            busy = list(lockable)
            mine = ticket.number if ticket is not None else None
            if time.monotonic() >= deadline:
                raise AllocationError(_busy_message(busy, lock_dir, timeout, mine))
            if ticket is None and not unqueued:
                ticket = _take_ticket(lock_dir, [lock_name(d) for d in lockable], record)
                unqueued = ticket is None
            if not told and on_wait is not None:
                number = ticket.number if ticket is not None else None
                on_wait(_busy_message(busy, lock_dir, None, number))
                told = True
            time.sleep(POLL_INTERVAL)
        done = True
    finally:
        if ticket is not None:
            ticket.leave()
        if not done:
            for fd in held.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            _remove_created(ldir, created)
    record = holder_records.restamp(record)
    chosen = {id(lockable[i]) for i in held}
    alloc = Allocation(
        devices=[d for d in candidates if id(d) in chosen or not needs_lock(d)], lock_dir=lock_dir
    )
    for i in sorted(held):
        if not shared:
            ldir.take_over(held[i], device_access(lockable[i].device_nodes))
        _write_holder(held[i], shared, replace(record, device=lockable[i].uuid))
        alloc.fds.append(held[i])
        alloc.names.append(lock_name(lockable[i]))
    return alloc


def _remove_created(ldir: LockDir, created: set[str]) -> None:
    """Remove the lock files a failed call made, where nobody holds them (no litter)."""
    for name in created:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ldir.fd)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if ldir.same_file(name, fd):
                os.unlink(name, dir_fd=ldir.fd)
        except OSError:
            pass  # somebody holds it now: it is theirs
        finally:
            os.close(fd)


def _take_ticket(lock_dir: str, wants: list[str], record: Holder) -> tickets.Ticket | None:
    """Our place in the queue; None (and a warning) where the queue cannot be used.

    Root replaces a queue directory that another user planted; anybody else
    then waits without a ticket: served when a device is free and nobody
    with a ticket wants it, never blocked by the queue.
    """
    from autopkgtest_hw.locks import tickets

    try:
        return tickets.Ticket(lock_dir, wants, record)
    except (LockDirError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning(
            f"waiting without a place in the queue {lock_dir}/{tickets.QUEUE}: {safe(why)}"
            " (root replaces a queue another user made; see docs/security.md)"
        )
        return None


def _try_lock(ldir: LockDir, device: Device, shared: bool, created: set[str]) -> int | None:
    """The locked descriptor of the device's lock file, or None if somebody else holds it."""
    name = lock_name(device)
    access = device_access(device.device_nodes)
    path = os.path.join(ldir.path, name)
    for _ in range(10):
        try:
            if not ldir.clear_planted(name):
                return None  # a hard-linked lock file somebody holds: busy until they let go
        except LockDirError as exc:
            raise AllocationError(str(exc)) from None
        existed = _exists(ldir, name)
        try:
            fd = ldir.open_file(name, access)
        except LockDirError as exc:
            raise AllocationError(str(exc)) from None
        except OSError as exc:
            raise AllocationError(
                f"cannot open the lock file {path}: {exc.strerror} (choose another --lock-dir)"
            ) from None
        if not existed:
            created.add(name)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise AllocationError(f"cannot lock {path}: {exc.strerror}") from None
            if _break_squat(ldir, name, fd, device):
                os.close(fd)
                continue
            os.close(fd)
            return None
        if ldir.same_file(name, fd):
            return fd
        os.close(fd)  # removed or replaced between open and flock: lock the new one
    raise AllocationError(f"cannot lock {path}: it keeps being replaced")


def _break_squat(ldir: LockDir, name: str, fd: int, device: Device) -> bool:
    """As root: remove a lock file that only users barred from the device made and hold."""
    pids = holder_records.flock_pids(os.path.join(ldir.path, name)) or set()
    uids = set()
    for pid in pids:
        try:
            uids.add(os.stat(f"/proc/{pid}").st_uid)
        except OSError:
            continue
    if not squatted(fd, uids, device.device_nodes):
        return False
    try:
        os.unlink(name, dir_fd=ldir.fd)
    except OSError:
        return False
    log.warning(
        f"removed the lock file {name}: it was made and held only by users who may not open"
        f" the device (uids {', '.join(map(str, sorted(uids)))}), so it guarded nothing"
    )
    return True


def _exists(ldir: LockDir, name: str) -> bool:
    try:
        os.stat(name, dir_fd=ldir.fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _write_holder(fd: int, shared: bool, holder: Holder) -> None:
    line = holder_records.format_record(holder).encode()
    with contextlib.suppress(OSError):
        if shared:
            os.lseek(fd, 0, os.SEEK_END)
        else:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, line)


def _busy_message(
    busy: Sequence[Device], lock_dir: str, timeout: float | None, mine: int | None
) -> str:
    from autopkgtest_hw.locks import tickets

    parts = []
    qdir = os.path.join(lock_dir, tickets.QUEUE)
    for d in busy:
        name = lock_name(d)
        who = holders(os.path.join(lock_dir, name))
        text = f"{d.label} ({d.ident}) is locked by {', '.join(who) or 'another process'}"
        if not who:
            text = f"{d.label} ({d.ident}) is free"
        queued = [
            w for w in tickets.waiters(qdir, name, may_wait(d)) if mine is None or w.number < mine
        ]
        if queued:
            text += f", {len(queued)} waiting before us"
        if who or queued:
            parts.append(text)
    text = "; ".join(parts) or "devices that other runs hold or wait for"
    if timeout is None:
        return f"waiting for {text}"
    if timeout <= 0:
        return f"not waiting (--lock-timeout 0): {text}; give --lock-timeout to wait"
    return f"gave up after {timeout:g} s (--lock-timeout): {text}"
