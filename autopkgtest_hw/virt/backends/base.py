"""The contract of a passthrough adapter, and the registry of adapters by inner server name.

An adapter is a subclass of :class:`Backend` that names its inner servers
(``class X(Backend, backend_name="podman", aliases=("docker",))``) and
implements the two abstract methods: :meth:`Backend.plan`, which decides once
how the allocated devices go into the testbed (a :class:`Passthrough`), and
:meth:`Backend.available`, which says whether this host can do that at all.
A subclass that leaves one out cannot be instantiated.
"""

from __future__ import annotations

import abc
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.virt.probe import ProbeResult

VIRT_PREFIX = "autopkgtest-virt-"


class PassthroughError(HwError):
    """The allocated devices cannot be passed into this kind of testbed (and why)."""


@dataclass(frozen=True)
class HostPaths:
    """Where the host's sysfs, VFIO nodes and CDI specs are (overridable for tests)."""

    sysfs_root: str = "/sys"
    vfio_dir: str = "/dev/vfio"
    cdi_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")


def append_args(args: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The inner server's arguments with ``extra`` after them (the usual place)."""
    return [*args, *extra]


@dataclass(frozen=True)
class Passthrough:
    """How the allocated devices go into one testbed, decided once by :meth:`Backend.plan`."""

    #: What the inner server gets besides the caller's arguments.
    extra_args: tuple[str, ...]
    #: One line for the log: what is passed and how.
    description: str
    #: Device nodes that must exist inside the testbed after open.
    nodes: tuple[str, ...] = ()
    #: How ``extra_args`` combine with the caller's arguments (qemu merges options).
    merge: Callable[[Sequence[str], Sequence[str]], list[str]] = append_args

    def inner_args(self, args: Sequence[str]) -> list[str]:
        """The inner server's full arguments: the caller's plus this passthrough."""
        return self.merge(args, self.extra_args) if self.extra_args else list(args)


@dataclass(frozen=True)
class Availability:
    """Whether an adapter can work on this host; ``reason`` says why not (or how)."""

    ok: bool
    reason: str


class Backend(abc.ABC):
    """Passes allocated devices into the testbed of one kind of inner server.

    ``kind`` is the inner server's base name (``podman`` for
    ``autopkgtest-virt-podman+rocm``).
    """

    name: ClassVar[str] = ""
    #: A device whose nodes are missing in the testbed is a failed passthrough.
    strict: ClassVar[bool] = True
    #: Whether :meth:`plan` may give the inner server arguments.  When it never
    #: does (null, ssh), the virt server starts the inner server at once and
    #: detects and allocates while it starts up.
    passes_arguments: ClassVar[bool] = True
    #: The testbed shows only the device nodes passed in (a container or namespace of its
    #: own), so any other GPU node seen inside is a passthrough failure.  Not so for null
    #: and ssh (the host itself) or a VM (nodes of its own; it is checked by PCI function).
    hides_other_nodes: ClassVar[bool] = False
    #: The testbed is this very host (null): the probe reads it in this process
    #: (``probe.on_this_host``) instead of running a shell through the testbed.
    testbed_is_host: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[Backend]]] = {}

    def __init_subclass__(
        cls, backend_name: str | None = None, aliases: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if backend_name is not None:
            missing = [
                m
                for m in sorted(Backend.__abstractmethods__)
                if getattr(getattr(cls, m), "__isabstractmethod__", False)
            ]
            if missing:  # fail when the module is imported, not when a testbed starts
                raise TypeError(
                    f"passthrough adapter {backend_name} does not implement {', '.join(missing)}"
                )
            cls.name = backend_name
            for n in (backend_name, *aliases):
                Backend.registry[n] = cls

    def __init__(self, kind: str, server: str, inventory: Inventory, paths: HostPaths) -> None:
        self.kind = kind
        self.server = server  # path of the inner server's executable
        self.inventory = inventory  # the whole host inventory (to know other GPUs' nodes)
        self.paths = paths

    @abc.abstractmethod
    def plan(self, devices: Sequence[Device]) -> Passthrough:
        """How ``devices`` go into the testbed; raises PassthroughError if they cannot."""

    @abc.abstractmethod
    def available(self) -> Availability:
        """Whether this host can run this kind of testbed with devices passed in."""

    def leftovers(self) -> list[dict[str, Any]]:
        """How to remove what this testbed may leave behind if its inner server is killed.

        Steps the lock keeper runs in order once the testbed is gone, before it lets
        go of the locks (``locks.keeper.cleanup``): each ``{"argv": [...], "what":
        "..."}``, a command and what it removes.  The backend knows its leftovers;
        the keeper knows none.
        """
        return []

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


def device_nodes(devices: Sequence[Device]) -> tuple[str, ...]:
    """Every device node of ``devices``, once, in order."""
    return tuple(dict.fromkeys(n for d in devices for n in d.device_nodes))


def nothing_passed(description: str, devices: Sequence[Device]) -> Passthrough:
    """A plan that passes nothing and checks the devices' nodes (the testbed has them)."""
    return Passthrough((), description, device_nodes(devices))


def on_path(*programs: str) -> Availability:
    """Available when one of ``programs`` is on PATH."""
    for p in programs:
        found = shutil.which(p)
        if found:
            return Availability(True, f"{found} is there")
    return Availability(False, f"{' or '.join(programs)} is not on PATH")


def kind_of(inner: str) -> str:
    """``/usr/bin/autopkgtest-virt-podman+rocm`` -> ``podman``."""
    base = os.path.basename(inner)
    if base.startswith(VIRT_PREFIX):
        base = base[len(VIRT_PREFIX) :]
    return base.split("+", 1)[0]
