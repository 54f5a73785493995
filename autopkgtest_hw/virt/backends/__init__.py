"""One passthrough adapter per kind of inner virt server, found by the server's name.

Every adapter implements the :class:`Backend` contract (``plan``,
``available`` and, where a testbed may leave something behind, ``leftovers``);
importing this package imports every module in it, which registers them all,
so a new adapter is one new module.

``autopkgtest-virt-podman+rocm`` and ``podman+rocm`` both map to ``podman``;
a name no adapter knows gets :class:`FallbackBackend` (nothing passed, with a
warning).
"""

from __future__ import annotations

import importlib
import pkgutil

from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.virt.backends.base import (
    VIRT_PREFIX,
    Availability,
    Backend,
    HostPaths,
    Passthrough,
    PassthroughError,
    kind_of,
)
from autopkgtest_hw.virt.backends.fallback import FallbackBackend

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # adapters register on import


def backend_class(inner: str) -> type[Backend]:
    """The adapter class for an inner server name or path."""
    return Backend.registry.get(kind_of(inner), FallbackBackend)


def availability(
    inventory: Inventory, paths: HostPaths | None = None
) -> list[tuple[str, Availability]]:
    """Each registered inner server name, and whether this host can pass devices into it."""
    out = []
    for name, cls in sorted(Backend.registry.items()):
        backend = cls(name, f"{VIRT_PREFIX}{name}", inventory, paths or HostPaths())
        out.append((name, backend.available()))
    return out


__all__ = [
    "Availability",
    "Backend",
    "FallbackBackend",
    "HostPaths",
    "Passthrough",
    "PassthroughError",
    "availability",
    "backend_class",
    "kind_of",
]
