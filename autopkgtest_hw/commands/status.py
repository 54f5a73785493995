"""Show who holds which of this host's devices: free, held or waited for.

For every device of the inventory: free; held by a CI job (package, pid,
since), a build (package) or a porterbox session (user, since, until); and
who waits for it, in the order they will be served.  The state comes from
the lock directory that autopkgtest-virt-hwgpu uses (--lock-dir) and the
kernel's lock table; a holder record that the kernel does not confirm is
marked unverified.  Nothing is locked or changed.  Exit status: 0, or 2 for
an unreadable --inventory file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.commands._common import (
    add_inventory_option,
    add_json_option,
    add_lock_options,
    get_inventory,
)
from autopkgtest_hw.locks.holders import alive, clock
from autopkgtest_hw.locks.lockstate import HELD, UNLOCKED, DeviceState, device_states
from autopkgtest_hw.porterbox.session import sessions
from autopkgtest_hw.virt.backends import Availability, availability

HELP = "show which devices are free, held (by whom, until when) or waited for"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_option(parser)
    add_json_option(parser)
    add_lock_options(parser, timeout=False)


def run(args: argparse.Namespace) -> int:
    inventory = get_inventory(args)
    states = device_states(inventory, args.lock_dir)
    testbeds = availability(inventory)
    open_sessions = [s for s in sessions() if s.get("lock_dir") == args.lock_dir]
    if args.json:
        data = {
            "lock_dir": args.lock_dir,
            "devices": [s.to_json() for s in states],
            "testbeds": [{"name": n, "available": a.ok, "reason": a.reason} for n, a in testbeds],
            "sessions": open_sessions,
        }
        print(json.dumps(data, indent=2))
    else:
        print(table(states) + session_table(open_sessions), end="")
        print(testbed_lines(testbeds), end="")
    return Exit.OK


def testbed_lines(testbeds: list[tuple[str, Availability]]) -> str:
    """Which inner virt servers this host can pass devices into (each backend says)."""
    can = ", ".join(n for n, a in testbeds if a.ok) or "none"
    lines = [f"Testbeds this host can pass devices into: {can}"]
    lines += [f"  not {n}: {safe(a.reason, 300)}" for n, a in testbeds if not a.ok]
    return "\n".join(lines) + "\n"


def _gone(pid: int) -> str:
    """Whether the holder itself has exited (what it left behind holds the lock)."""
    if pid <= 0 or alive(pid):
        return ""
    return f" [the holder, pid {pid}, is gone: a process it left behind holds the lock]"


def session_table(found: list[dict[str, Any]]) -> str:
    """Every porterbox session on this lock directory, whatever devices it has."""
    lines = []
    for s in found:
        devices = ", ".join(safe(d, 60) for d in s.get("devices") or []) or "no lockable device"
        attached = "attached" if s.get("attached") else "detached"
        lines.append(
            f"session {safe(s.get('name'), 40)} of {safe(s.get('user'), 40)}"
            f" (pid {safe(s.get('pid'), 12)}): {safe(s.get('inner'), 40)} testbed, {devices},"
            f" {safe(s.get('state'), 12)}, {attached}, until {clock(int(s.get('until') or 0))}"
        )
    return "".join(f"{line}\n" for line in lines)


def table(states: list[DeviceState]) -> str:
    if not states:
        return "No devices in the inventory.\n"
    lines = []
    for s in states:
        head = f"{s.index}: {safe(s.device.label, 100)} ({safe(s.device.ident, 100)})"
        if s.state == UNLOCKED:
            lines.append(f"{head}: not locked (a CPU device, shared by every run)")
            continue
        if s.state != HELD:
            lines.append(f"{head}: free")
        else:
            lines.append(f"{head}: held by {s.holders[0].describe()}{_gone(s.holders[0].pid)}")
            lines += [f"    and by {h.describe()}{_gone(h.pid)}" for h in s.holders[1:]]
        lines += [f"    waiting #{n}: {w.describe()}" for n, w in enumerate(s.waiters, 1)]
    return "\n".join(lines) + "\n"
