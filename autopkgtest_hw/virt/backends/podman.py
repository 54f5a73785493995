"""podman and docker: CDI device names where a CDI spec lists the device, else device nodes.

The inner server takes ``IMAGE [extra 'run' options...]`` (argparse REMAINDER
after the image), so the passthrough options are appended at the end of its
arguments, where they reach ``podman run`` / ``docker run``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from autopkgtest_hw.base import log
from autopkgtest_hw.spec.hardware import KFD_NODE
from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends.base import (
    Availability,
    Backend,
    Passthrough,
    device_nodes,
    on_path,
)

#: CDI kinds per vendor (nvidia-ctk and amd-ctk generate these).
CDI_KINDS = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "intel": "intel.com/gpu"}


def load_cdi_specs(dirs: Sequence[str]) -> list[dict[str, Any]]:
    """Every readable CDI spec (JSON or YAML) in ``dirs``; unreadable ones are skipped."""
    specs = []
    for directory in dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            spec = _load_spec(path)
            if isinstance(spec, dict) and isinstance(spec.get("kind"), str):
                specs.append(spec)
    return specs


def _load_spec(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            log.warning(f"CDI spec {path} is not valid JSON ({exc}); ignored")
            return None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            log.warning(f"CDI spec {path} ignored: python3-yaml is not installed")
            return None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            log.warning(f"CDI spec {path} is not valid YAML ({exc}); ignored")
    return None


def cdi_name(device: Device, specs: Sequence[dict[str, Any]]) -> str | None:
    """``kind=name`` of the CDI device that is this device: by UUID, index or device node."""
    kind = CDI_KINDS.get(device.vendor or "")
    for spec in specs:
        if spec.get("kind") != kind:
            continue
        entries = [e for e in spec.get("devices") or () if isinstance(e, dict)]
        names = {str(e.get("name")): e for e in entries}
        if device.uuid and device.uuid in names:
            return f"{kind}={device.uuid}"
        if device.index is not None and str(device.index) in names:
            return f"{kind}={device.index}"
        own = {n for n in device.device_nodes if n != KFD_NODE and "nvidiactl" not in n}
        for entry in entries:
            edits = entry.get("containerEdits") or {}
            paths = {
                str(n.get("path")) for n in edits.get("deviceNodes") or () if isinstance(n, dict)
            }
            if own and own <= paths and entry.get("name") != "all":
                return f"{kind}={entry.get('name')}"
    return None


LABEL = "org.debian.autopkgtest-hw.run"


class PodmanBackend(Backend, backend_name="podman", aliases=("docker",)):
    hides_other_nodes = True

    @functools.cached_property
    def run_token(self) -> str:
        return f"{os.getpid()}-{os.urandom(8).hex()}"

    def leftovers(self) -> list[dict[str, Any]]:
        command = self.kind if self.kind in ("podman", "docker") else "podman"
        label = f"{LABEL}={self.run_token}"
        stop_now = " -t 0" if command == "podman" else ""
        remove = (
            'ids=$("$0" ps -aq --filter "label=$1") || exit 1;'
            f' [ -z "$ids" ] || "$0" rm -f{stop_now} $ids'
        )
        return [{"argv": ["sh", "-c", remove, command, label], "what": f"containers {label}"}]

    def plan(self, devices: Sequence[Device]) -> Passthrough:
        """CDI names where a spec lists the device, else its nodes; their groups added."""
        specs = load_cdi_specs(self.paths.cdi_dirs)
        names: list[str] = []
        plain: list[Device] = []
        for d in devices:
            name = cdi_name(d, specs) if d.device_nodes else None
            if name:
                names.append(name)
            elif d.device_nodes:
                plain.append(d)
        nodes = list(device_nodes(plain))
        if (
            any(d.vendor == "amd" for d in plain)
            and os.path.exists(KFD_NODE)
            and KFD_NODE not in nodes
        ):
            nodes.append(KFD_NODE)
        groups: list[int] = []
        for n in nodes:
            with contextlib.suppress(OSError):
                gid = os.stat(n).st_gid
                if gid != 0 and gid not in groups:
                    groups.append(gid)
        extra = [f"--device={x}" for x in (*names, *nodes)]
        extra += [f"--group-add={g}" for g in groups]
        if extra:  # devices are locked: a label to find the container by (keeper.py)
            extra.append(f"--label={LABEL}={self.run_token}")
        parts = []
        if names:
            parts.append(f"CDI devices {', '.join(names)}")
        if nodes:
            parts.append(f"device nodes {', '.join(nodes)}")
        if groups:
            parts.append(f"groups {', '.join(map(str, groups))}")
        description = "; ".join(parts) or "nothing to pass (no device nodes)"
        return Passthrough(tuple(extra), description, device_nodes(devices))

    def available(self) -> Availability:
        return on_path(self.kind if self.kind in ("podman", "docker") else "podman")
