"""unshare: bind-mount the allocated devices' nodes into the testbed (``--bind OUTSIDE INSIDE``).

autopkgtest 5.28's ``autopkgtest-virt-unshare`` binds directories only (its
argument check is ``os.path.isdir``); 6.0 binds files too.  With a
directory-only server a node can only come in with its whole directory, which
is allowed when that directory holds no other device's nodes: a dedicated
directory works as it is, ``/dev`` never does, and any other directory with
nodes that were not allocated (another GPU's, or one the inventory does not
know) is replaced by a private directory of copies of just the allocated nodes.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from collections.abc import Sequence
from typing import Any

from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends.base import (
    Availability,
    Backend,
    Passthrough,
    PassthroughError,
    device_nodes,
    on_path,
)

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
    hides_other_nodes = True

    def plan(self, devices: Sequence[Device]) -> Passthrough:
        files = binds_files(self.server)
        binds = [(n, n) for n in device_nodes(devices)] if files else self._dirs(devices)
        extra = [w for outside, inside in binds for w in ("--bind", outside, inside)]
        if not binds:
            description = "nothing to pass (no device nodes)"
        else:
            how = "files" if files else "directories (this server binds no files)"
            shown = [o if o == i else f"{i} (a private directory of just its allocated nodes)"
                     for o, i in binds]  # fmt: skip
            description = f"bind-mounting {how}: {', '.join(shown)}"
        if extra:  # devices are locked: unpack where the keeper finds it if the server dies
            extra += ["--unpack-dir", self.rootfs]
        return Passthrough(tuple(extra), description, device_nodes(devices), merge=_merge)

    def available(self) -> Availability:
        return on_path("unshare")

    @functools.cached_property
    def workdir(self) -> str:
        """A private directory of this run: the unpacked testbed, private node directories."""
        return tempfile.mkdtemp(prefix="autopkgtest-hw-unshare.")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.workdir, "rootfs")

    def leftovers(self) -> list[dict[str, Any]]:
        # Files of the unpacked root file system belong to subordinate ids:
        # removed the way autopkgtest-virt-unshare does, else as ourselves.
        rootfs, what = self.rootfs, f"unpacked testbed {self.rootfs}"
        return [
            {
                "argv": ["unshare", "--map-auto", "--map-root-user", "rm", "-rf", rootfs],
                "what": what,
                "if_exists": rootfs,
            },
            {"argv": ["rm", "-rf", rootfs], "what": what, "if_exists": rootfs},
            {"argv": ["rm", "-rf", self.workdir], "if_exists": self.workdir},
        ]

    def _dirs(self, devices: Sequence[Device]) -> list[tuple[str, str]]:
        """(outside, inside) directories to bind for a server that binds no files.

        A directory that holds nothing but allocated nodes is bound as it is.
        Any other (``/dev/dri`` with another GPU's nodes, or a node the
        inventory does not know) is replaced by a private directory holding
        copies of just the allocated nodes (same device numbers, owner and
        mode; making them needs root), bound in its place.
        """
        nodes = device_nodes(devices)
        mine = set(nodes)
        binds: list[tuple[str, str]] = []
        by_parent: dict[str, list[str]] = {}
        for node in nodes:
            by_parent.setdefault(os.path.dirname(node), []).append(node)
        for parent, wanted in by_parent.items():
            if parent in ("/dev", "/"):
                raise PassthroughError(
                    f"cannot pass {wanted[0]} into an unshare testbed: this"
                    f" autopkgtest-virt-unshare ({self.server}) binds directories only, and"
                    f" {parent} holds every device of the host. Use autopkgtest 6.0 or later"
                    " (binds files) or a podman testbed"
                )
            clash = sorted(_entries(parent) - mine)
            if not clash:
                binds.append((parent, parent))
                continue
            try:
                binds.append((self._private(parent, wanted), parent))
            except (OSError, PassthroughError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise PassthroughError(
                    f"cannot pass {wanted[0]} into an unshare testbed: this"
                    f" autopkgtest-virt-unshare binds directories only, and {parent} also holds"
                    f" {', '.join(clash)}, which were not allocated; a private directory of"
                    f" just the allocated nodes cannot be made ({why}). Run as root, allocate"
                    " those too (--gpu), or use autopkgtest 6.0 or later (binds files) or podman"
                ) from None
        return binds

    def _private(self, parent: str, nodes: Sequence[str]) -> str:
        if os.geteuid() != 0:
            raise PassthroughError("making device nodes needs root")
        private = tempfile.mkdtemp(prefix="dev.", dir=self.workdir)
        os.chmod(private, 0o755)
        for node in nodes:
            st = os.stat(node)
            if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                raise PassthroughError(f"{node} is not a device node")
            copy = os.path.join(private, os.path.basename(node))
            os.mknod(copy, st.st_mode, st.st_rdev)
            os.chown(copy, st.st_uid, st.st_gid)
            os.chmod(copy, stat.S_IMODE(st.st_mode))
        return private


def _merge(args: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The caller's arguments, then ours; the caller's own --unpack-dir wins over ours."""
    theirs = any(a in ("-u", "--unpack-dir") or a.startswith("--unpack-dir=") for a in args)
    out = list(extra)
    if theirs and "--unpack-dir" in out:
        i = out.index("--unpack-dir")
        del out[i : i + 2]
    return [*args, *out]


def _entries(directory: str) -> set[str]:
    try:
        return {os.path.join(directory, e) for e in os.listdir(directory)}
    except OSError:
        return set()
