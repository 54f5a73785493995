"""AMD's KFD topology (``/sys/class/kfd/kfd/topology/nodes/*/properties``): ROCm gfx targets."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from autopkgtest_hw.spec.hardware import KFD_TOPOLOGY, address_from_devfn

TOPOLOGY = f"{KFD_TOPOLOGY}/nodes"


@dataclass(frozen=True)
class KfdNode:
    node: str  # topology node number
    gfx: str  # gfx90a
    render_minor: int | None  # /dev/dri/renderD<minor>
    pci_address: str | None  # from domain and location_id


def read_topology(root: str = TOPOLOGY) -> list[KfdNode]:
    """Every GPU node (CPU nodes have gfx_target_version 0).

    Raises ValueError naming the file when a properties file is unreadable as
    ``name value`` lines: the kernel never writes one, so it is worth a report.
    """
    nodes = []
    for path in sorted(glob.glob(os.path.join(root, "*", "properties"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            props = parse_properties(f.read(), path)
        version = props.get("gfx_target_version", 0)
        if not version:
            continue
        minor = props.get("drm_render_minor")
        location = props.get("location_id")
        address = None
        if location:  # (bus << 8) | devfn
            address = address_from_devfn(props.get("domain", 0), location >> 8, location & 0xFF)
        nodes.append(
            KfdNode(
                node=os.path.basename(os.path.dirname(path)),
                gfx=gfx_name(version),
                render_minor=minor if minor else None,
                pci_address=address,
            )
        )
    return nodes


def parse_properties(text: str, path: str) -> dict[str, int]:
    props = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, _, value = line.strip().partition(" ")
        try:
            props[name] = int(value.strip())
        except ValueError:
            raise ValueError(f"{path} line {number}: not 'name number': {line.strip()!r}") from None
    return props


def gfx_name(version: int) -> str:
    """The kernel's decimal ``gfx_target_version`` -> the gfx target.

    ``major*10000 + minor*100 + stepping``; the name writes minor and stepping
    as hex digits: 90010 -> gfx90a, 110501 -> gfx1151, 100300 -> gfx1030.
    """
    major, minor, stepping = version // 10000, version // 100 % 100, version % 100
    return f"gfx{major}{minor:x}{stepping:x}"
