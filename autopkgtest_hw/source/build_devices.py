"""Which devices a build locks: the fewest that satisfy every one of the package's specs.

The rules are the virt server's: ``--gpu`` names the candidates (every
device it names or whose spec fits) and ``--count N`` takes N of them,
whichever are free first.  Without ``--gpu``, the candidates are the devices
that fit the package's specs and the count is the least they need:
``cuda:cc>=8.0`` locks one fitting GPU, not every one; ``cuda:count>=2``
two; a spec that a device needing no lock satisfies (PoCL, the CPU) locks
none.  The matcher decides each count: the spec is matched against the
devices that need no lock plus one, two, ... of the lockable fitting ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from autopkgtest_hw.locks import allocate
from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.spec.language import Spec
from autopkgtest_hw.spec.matcher import match


@dataclass(frozen=True)
class Request:
    """What ``allocate.acquire`` is asked for: ``count`` of the lockable ``candidates``."""

    candidates: tuple[Device, ...]
    count: int | None  # None: every lockable candidate


def request(
    specs: Sequence[Spec],
    inventory: Inventory,
    selectors: Sequence[str] = (),
    count: int | None = None,
) -> Request:
    """The devices to allocate for a build (``allocate.AllocationError`` for a bad ``--gpu``)."""
    if selectors:
        return Request(tuple(allocate.select(inventory, list(selectors))), count)
    needs = [_need(s, inventory) for s in specs]
    free = _unique(d for fitting, _ in needs for d in fitting if not allocate.needs_lock(d))
    if count is not None:
        fitting = _unique(d for fit, _ in needs for d in fit)
        return Request(tuple(fitting), count)
    locking = [(fit, n) for fit, n in needs if n]
    if not locking:
        return Request(tuple(free), 0)
    want = max(n for _, n in locking)
    common = [d for d in locking[0][0] if all(d in fit for fit, _ in locking[1:])]
    if len(common) >= want:
        return Request(tuple([*free, *common]), want)
    # No devices fit every spec that needs one: lock what each needs, every fitting one.
    return Request(tuple([*free, *_unique(d for fit, _ in locking for d in fit)]), None)


def _need(spec: Spec, inventory: Inventory) -> tuple[list[Device], int]:
    """The lockable devices that fit ``spec`` (those needing none first) and how many it needs."""
    verdict = match(spec, inventory)
    if not verdict.satisfied:
        return [], 0
    free = [d for d in verdict.devices if not allocate.needs_lock(d)]
    lockable = [d for d in verdict.devices if allocate.needs_lock(d)]
    for n in range(len(lockable) + 1):
        trial = Inventory(cpu=inventory.cpu, devices=tuple(free + lockable[:n]))
        if match(spec, trial).satisfied:
            return free + lockable, n
    return free + lockable, len(lockable)


def _unique(devices: Iterable[Device]) -> list[Device]:
    out: list[Device] = []
    for d in devices:
        if not any(d is o for o in out):
            out.append(d)
    return out
