"""Setting the testbed up: find the inner server, allocate and lock devices, plan passthrough.

Everything here happens before the inner server starts; any failure is a
:class:`StartupError` whose message says what to do, and leaves no lock held.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import StartupError
from autopkgtest_hw.locks import allocate
from autopkgtest_hw.locks.holders import Holder
from autopkgtest_hw.spec.inventory import Device, Inventory, InventoryError
from autopkgtest_hw.spec.render import describe_device
from autopkgtest_hw.virt.backends import (
    Backend,
    FallbackBackend,
    HostPaths,
    Passthrough,
    PassthroughError,
    backend_class,
)
from autopkgtest_hw.virt.backends.base import VIRT_PREFIX, kind_of


@dataclass(frozen=True)
class Request:
    """What the caller asked for (the virt server's options)."""

    inner: str  # name or path of the inner server
    inner_args: tuple[str, ...] = ()
    selectors: tuple[str, ...] = ()  # --gpu
    count: int | None = None
    inventory: str | None = None  # a saved inventory instead of detecting
    lock_dir: str = allocate.DEFAULT_LOCK_DIR
    shared: bool = False
    lock_timeout: float = 0.0
    paths: HostPaths = field(default_factory=HostPaths)
    holder: Holder | None = None  # the record written into the lock files (--hold-*)
    use_cache: bool = True  # the host inventory cache (--no-cache: detect afresh)


@dataclass
class Testbed:
    """What start-up decided: the adapter, the held devices and the inner server's argv."""

    backend: Backend
    allocation: allocate.Allocation
    passthrough: Passthrough
    argv: list[str]


def find_inner(inner: str) -> str:
    """The inner server's executable, found the way autopkgtest finds virt servers."""
    if "/" in inner:
        if not os.access(inner, os.X_OK):
            raise StartupError(f"inner virt server {inner} is not an executable file")
        return inner
    name = inner if inner.startswith(VIRT_PREFIX) else VIRT_PREFIX + inner
    if kind_of(name) == "hwgpu":
        raise StartupError("INNER cannot be hwgpu itself")
    path = shutil.which(name)
    if path is None:
        raise StartupError(f"inner virt server {name} not found on PATH")
    return path


def load_inventory(path: str | None, use_cache: bool = True) -> Inventory:
    if path is not None:
        try:
            return Inventory.load(path)
        except InventoryError as exc:
            raise StartupError(str(exc)) from None
    from autopkgtest_hw.detect import detect_host  # only when needed: it imports the detectors

    return detect_host(use_cache)[0]


def early_argv(request: Request) -> list[str] | None:
    """The inner server's argv if it can start before allocation (its adapter passes nothing).

    Then detection and locking overlap the inner server's own start-up; None
    when the passthrough arguments must be known first (unshare, podman, qemu).
    """
    server = find_inner(request.inner)
    if backend_class(server).passes_arguments:
        return None
    return [server, *request.inner_args]


def prepare(request: Request) -> Testbed:
    """Allocate and lock the devices and plan their passthrough; log what was decided."""
    server = find_inner(request.inner)
    cls = backend_class(server)
    inventory = load_inventory(request.inventory, request.use_cache)
    backend = cls(kind_of(server), server, inventory, request.paths)
    if cls is FallbackBackend:
        log.warning(backend.plan([]).description)
    try:
        candidates = allocate.select(inventory, request.selectors)
        alloc = allocate.acquire(
            candidates,
            request.count,
            request.lock_dir,
            shared=request.shared,
            timeout=request.lock_timeout,
            on_wait=lambda m: log.info(m),
            holder=request.holder,
        )
    except allocate.AllocationError as exc:
        raise StartupError(str(exc)) from None
    try:
        passthrough = backend.plan(alloc.devices)
    except PassthroughError as exc:
        alloc.release()
        raise StartupError(str(exc)) from None
    _log_allocation(alloc.devices)
    log.info(f"{backend.name} passthrough: {passthrough.description}")
    return Testbed(
        backend, alloc, passthrough, [server, *passthrough.inner_args(request.inner_args)]
    )


def _log_allocation(devices: Sequence[Device]) -> None:
    for d in devices:
        log.info(f"allocated: {describe_device(d)}")
    if not devices:
        log.info("allocated: no devices (the inventory has none, or none were selected)")
