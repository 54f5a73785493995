"""One passthrough adapter per kind of inner virt server, found by the server's name.

``autopkgtest-virt-podman+rocm`` and ``podman+rocm`` both map to ``podman``;
a name no adapter knows gets :class:`FallbackBackend` (nothing passed, with a
warning).
"""

from __future__ import annotations

from . import null, podman, qemu, unshare
from .base import Backend, HostPaths, PassthroughError, kind_of
from .fallback import FallbackBackend


def backend_class(inner: str) -> type[Backend]:
    """The adapter class for an inner server name or path."""
    return Backend.registry.get(kind_of(inner), FallbackBackend)


def known() -> list[str]:
    return sorted(Backend.registry)


__all__ = [
    "Backend",
    "FallbackBackend",
    "HostPaths",
    "PassthroughError",
    "backend_class",
    "kind_of",
    "known",
    "null",
    "podman",
    "qemu",
    "unshare",
]
