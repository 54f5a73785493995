"""What every passthrough adapter does, and the registry of adapters by inner server name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..inventory import Device, Inventory
from ..probe import ProbeResult

VIRT_PREFIX = "autopkgtest-virt-"


class PassthroughError(RuntimeError):
    """The allocated devices cannot be passed into this kind of testbed (and why)."""


@dataclass(frozen=True)
class HostPaths:
    """Where the host's sysfs, VFIO nodes and CDI specs are (overridable for tests)."""

    sysfs_root: str = "/sys"
    vfio_dir: str = "/dev/vfio"
    cdi_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")


class Backend:
    """Passes allocated devices into the testbed of one kind of inner server.

    Subclasses register with ``class X(Backend, backend_name="podman",
    aliases=("docker",))``.  ``kind`` is the inner server's base name
    (``podman`` for ``autopkgtest-virt-podman+rocm``).
    """

    name: ClassVar[str] = ""
    #: The testbed sees only the devices passed in (a container or a VM).
    isolating: ClassVar[bool] = True
    #: A device whose nodes are missing in the testbed is a failed passthrough.
    strict: ClassVar[bool] = True
    registry: ClassVar[dict[str, type[Backend]]] = {}

    def __init_subclass__(
        cls, backend_name: str | None = None, aliases: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if backend_name is not None:
            cls.name = backend_name
            for n in (backend_name, *aliases):
                Backend.registry[n] = cls

    def __init__(self, kind: str, server: str, inventory: Inventory, paths: HostPaths) -> None:
        self.kind = kind
        self.server = server  # path of the inner server's executable
        self.inventory = inventory  # the whole host inventory (to know other GPUs' nodes)
        self.paths = paths

    def inner_args(self, args: Sequence[str], devices: Sequence[Device]) -> list[str]:
        """The inner server's options with this adapter's passthrough added."""
        return list(args)

    def describe(self, devices: Sequence[Device]) -> str:
        """One line for the log: what is passed and how."""
        return "nothing to pass"

    def nodes_to_check(self, devices: Sequence[Device]) -> list[str]:
        return list(dict.fromkeys(n for d in devices for n in d.device_nodes))

    def verify(
        self, devices: Sequence[Device], probe: ProbeResult
    ) -> tuple[list[Device], list[str]]:
        """The devices the testbed really has (as it sees them), and what is missing."""
        present: list[Device] = []
        problems: list[str] = []
        for d in devices:
            missing = probe.missing(d.device_nodes)
            if missing:
                problems.append(f"{d.label} ({d.ident}): {', '.join(missing)}")
            else:
                present.append(d)
        return present, problems


def kind_of(inner: str) -> str:
    """``/usr/bin/autopkgtest-virt-podman+rocm`` -> ``podman``."""
    base = os.path.basename(inner)
    if base.startswith(VIRT_PREFIX):
        base = base[len(VIRT_PREFIX) :]
    return base.split("+", 1)[0]


def nodes_of(devices: Sequence[Device]) -> list[str]:
    return list(dict.fromkeys(n for d in devices for n in d.device_nodes))
