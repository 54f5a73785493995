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

from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.commands._common import (
    add_inventory_option,
    add_json_option,
    add_lock_options,
    get_inventory,
)
from autopkgtest_hw.locks.lockstate import HELD, UNLOCKED, DeviceState, device_states
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
    if args.json:
        data = {
            "lock_dir": args.lock_dir,
            "devices": [s.to_json() for s in states],
            "testbeds": [{"name": n, "available": a.ok, "reason": a.reason} for n, a in testbeds],
        }
        print(json.dumps(data, indent=2))
    else:
        print(table(states), end="")
        print(testbed_lines(testbeds), end="")
    return Exit.OK


def testbed_lines(testbeds: list[tuple[str, Availability]]) -> str:
    """Which inner virt servers this host can pass devices into (each backend says)."""
    can = ", ".join(n for n, a in testbeds if a.ok) or "none"
    lines = [f"Testbeds this host can pass devices into: {can}"]
    lines += [f"  not {n}: {safe(a.reason, 300)}" for n, a in testbeds if not a.ok]
    return "\n".join(lines) + "\n"


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
            lines.append(f"{head}: held by {s.holders[0].describe()}")
            lines += [f"    and by {h.describe()}" for h in s.holders[1:]]
        lines += [f"    waiting #{n}: {w.describe()}" for n, w in enumerate(s.waiters, 1)]
    return "\n".join(lines) + "\n"
