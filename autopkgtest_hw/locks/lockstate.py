"""Who holds which device: the state of each device's lock, from the lock directory.

Read-only: the lock files are never locked or written here (a status query
must not make a run with ``--lock-timeout 0`` fail).  Whether a lock is held
comes from the kernel's lock table, ``/proc/locks``; who holds it, from the
holder records (checked against that table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from autopkgtest_hw.locks import allocate, holders, tickets
from autopkgtest_hw.locks.holders import Holder
from autopkgtest_hw.spec.inventory import Device, Inventory

FREE = "free"
HELD = "held"
UNLOCKED = "not locked"  # an OpenCL CPU device: the CPU is shared, never locked


@dataclass
class DeviceState:
    index: int
    device: Device
    lock: str | None
    state: str
    holders: list[Holder] = field(default_factory=list)
    waiters: list[Holder] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "ident": self.device.ident,
            "label": self.device.label,
            "pci_address": self.device.pci_address,
            "lock": self.lock,
            "state": self.state,
            "holders": [h.to_json() for h in self.holders],
            "waiters": [w.to_json() for w in self.waiters],
        }


def device_states(inventory: Inventory, lock_dir: str) -> list[DeviceState]:
    qdir = os.path.join(lock_dir, tickets.QUEUE)
    out = []
    for i, d in enumerate(inventory.devices):
        index = d.index if d.index is not None else i
        if not allocate.needs_lock(d):
            out.append(DeviceState(index, d, None, UNLOCKED))
            continue
        name = allocate.lock_name(d)
        path = os.path.join(lock_dir, name)
        pids = holders.flock_pids(path) if os.path.exists(path) else set()
        records = holders.live_holders(path, pids) if pids or pids is None else []
        held = bool(pids) if pids is not None else bool(records)
        if held and pids:
            # The kernel's word over the file's: a record counts only if verified.
            confirmed = [h for h in records if h.pid in pids and h.verified]
            named = {h.pid for h in confirmed}
            records = confirmed + [
                Holder(pid=p, owner=holders.process_owner(p)) for p in sorted(pids - named)
            ]
        found = tickets.waiters(qdir, name, allocate.may_wait(d))
        waiting = [w.holder for w in found if w.holder is not None]
        out.append(
            DeviceState(index, d, path, HELD if held else FREE, records if held else [], waiting)
        )
    return out
