"""unshare: bind-mount the allocated devices' nodes into the testbed (``--bind OUTSIDE INSIDE``).

autopkgtest 5.28's ``autopkgtest-virt-unshare`` binds directories only (its
argument check is ``os.path.isdir``); 6.0 binds files too.  With a
directory-only server a node can only come in with its whole directory, which
is allowed when that directory holds no other device's nodes: a dedicated
directory works, ``/dev`` never does, ``/dev/dri`` only when every GPU in it is
allocated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..inventory import Device
from .base import Availability, Backend, Passthrough, PassthroughError, device_nodes, on_path

#: The 5.28 argument check that refuses files.
_DIRS_ONLY_MARKER = "os.path.isdir(olddir)"


def binds_files(server: str) -> bool:
    """Whether this autopkgtest-virt-unshare accepts files for --bind (6.0 does, 5.28 not)."""
    try:
        with open(server, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False  # cannot tell: assume the older, stricter behaviour
    return _DIRS_ONLY_MARKER not in text


class UnshareBackend(Backend, backend_name="unshare"):
    def plan(self, devices: Sequence[Device]) -> Passthrough:
        files = binds_files(self.server)
        binds = device_nodes(devices) if files else self._dirs(devices)
        extra = [w for path in binds for w in ("--bind", path, path)]
        if not binds:
            description = "nothing to pass (no device nodes)"
        else:
            how = "files" if files else "directories (this server binds no files)"
            description = f"bind-mounting {how}: {', '.join(binds)}"
        return Passthrough(tuple(extra), description, device_nodes(devices))

    def available(self) -> Availability:
        return on_path("unshare")

    def _dirs(self, devices: Sequence[Device]) -> tuple[str, ...]:
        """The directories to bind for a server that binds no files (or why none can be)."""
        nodes = device_nodes(devices)
        mine = set(nodes)
        others = {n for d in self.inventory.devices if d not in devices for n in d.device_nodes}
        dirs: list[str] = []
        for node in nodes:
            parent = os.path.dirname(node)
            if parent in dirs:
                continue
            if parent in ("/dev", "/"):
                raise PassthroughError(
                    f"cannot pass {node} into an unshare testbed: this"
                    f" autopkgtest-virt-unshare ({self.server}) binds directories only, and"
                    f" {parent} holds every device of the host. Use autopkgtest 6.0 or later"
                    " (binds files) or a podman testbed"
                )
            clash = sorted(_entries(parent) & others - mine)
            if clash:
                raise PassthroughError(
                    f"cannot pass {node} into an unshare testbed: this"
                    f" autopkgtest-virt-unshare binds directories only, and {parent} also holds"
                    f" {', '.join(clash)} of devices that were not allocated. Allocate those"
                    " too (--gpu), or use autopkgtest 6.0 or later (binds files) or podman"
                )
            dirs.append(parent)
        return tuple(dirs)


def _entries(directory: str) -> set[str]:
    try:
        return {os.path.join(directory, e) for e in os.listdir(directory)}
    except OSError:
        return set()
