"""ROCm gfx targets as the ROCm team writes them: LLVM's generic targets and target features.

A code object built for a generic target (``--offload-arch=gfx10-3-generic``)
runs on every processor that the generic target covers, so
``rocm:gfx10-3-generic`` holds on each of them.  The table is LLVM's
AMDGPUUsage "Generic processor code objects" table, written out from the
LLVM documentation as of LLVM 19/20 (gfx950 joined gfx9-4-generic in
LLVM 20); a newer generic target is an error naming the ones known here.
"""

from __future__ import annotations

import difflib
import re

#: Generic target -> the processors it covers.
GENERIC_COVERS: dict[str, tuple[str, ...]] = {
    "gfx9-generic": ("gfx900", "gfx902", "gfx904", "gfx906", "gfx909", "gfx90c"),
    "gfx9-4-generic": ("gfx940", "gfx941", "gfx942", "gfx950"),
    "gfx10-1-generic": ("gfx1010", "gfx1011", "gfx1012", "gfx1013"),
    "gfx10-3-generic": (
        "gfx1030",
        "gfx1031",
        "gfx1032",
        "gfx1033",
        "gfx1034",
        "gfx1035",
        "gfx1036",
    ),
    "gfx11-generic": (
        "gfx1100",
        "gfx1101",
        "gfx1102",
        "gfx1103",
        "gfx1150",
        "gfx1151",
        "gfx1152",
        "gfx1153",
    ),
    "gfx12-generic": ("gfx1200", "gfx1201"),
}
GENERIC_TARGETS = tuple(GENERIC_COVERS)

#: LLVM's target-feature suffixes (``gfx90a:xnack+``), which a spec cannot ask for.
TARGET_FEATURE_RE = re.compile(r"^(?:xnack|sramecc)[+-]$")


def expand(target: str) -> tuple[str, ...]:
    """The processors ``target`` names: a generic target's list, else the target itself."""
    return GENERIC_COVERS.get(target.lower(), (target,))


def generic_name(word: str) -> str | None:
    """The known generic target of the same major version closest to ``word``.

    ``gfx10-generic`` suggests a gfx10 one; ``gfx13-generic`` (a newer LLVM's?) none.
    """
    major = word.lower().split("-")[0]
    same = [g for g in GENERIC_TARGETS if g.split("-")[0] == major]
    found = difflib.get_close_matches(word.lower(), same, n=1, cutoff=0.6)
    return found[0] if found else None
