"""ROCm gfx targets as the ROCm team writes them: LLVM's generic targets and target features.

A code object built for a generic target (``--offload-arch=gfx10-3-generic``)
runs on every processor that the generic target covers, so
``rocm:gfx10-3-generic`` holds on each of them.

The table is LLVM's AMDGPUUsage "AMDGPU Generic Processors" table
(llvm/docs/AMDGPUUsage.rst, ``amdgpu-generic-processor-table``) as of LLVM
main in March 2026, checked row by row:

* gfx9-generic, gfx10-1-generic, gfx10-3-generic, gfx11-generic and
  gfx12-generic as in AMDGPUUsage since LLVM 19 (gfx12-generic: LLVM PR
  #93875; gfx1152 and gfx1153 joined gfx11-generic in LLVM 19/20);
* gfx9-4-generic: gfx942 and gfx950.  gfx950 joined in LLVM 20; gfx940 and
  gfx941 (pre-production parts, never sold) were removed from LLVM by commit
  8615f9aaffd4 (February 2025, LLVM 21) and no code object names them;
* gfx12-5-generic: gfx1250 and gfx1251 (LLVM PR #183381, February 2026,
  "functionally equivalent to gfx1250"; ROCr took it with gfx1251 in
  ROCm/rocm-systems#7300).

gfx11-7-generic and gfx13-generic have ELF numbers in newer LLVM (0x62 and
0x63, PR #218543) but AMDGPUUsage lists no processors for them in the
revision read here, so they are not in the table: a spec naming them is an
error that lists the generic targets known here, never a guess at other
hardware.
"""

from __future__ import annotations

import difflib
import re

#: Generic target -> the processors it covers.
GENERIC_COVERS: dict[str, tuple[str, ...]] = {
    "gfx9-generic": ("gfx900", "gfx902", "gfx904", "gfx906", "gfx909", "gfx90c"),
    "gfx9-4-generic": ("gfx942", "gfx950"),
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
    "gfx12-5-generic": ("gfx1250", "gfx1251"),
}
GENERIC_TARGETS = tuple(GENERIC_COVERS)

#: LLVM's target-feature suffixes (``gfx90a:xnack+``), which a spec cannot ask for.
TARGET_FEATURE_RE = re.compile(r"^(?:xnack|sramecc)[+-]$")


def expand(target: str) -> tuple[str, ...]:
    """The processors ``target`` names: a generic target's list, else the target itself."""
    return GENERIC_COVERS.get(target.lower(), (target,))


def _family(target: str) -> tuple[str, str | None]:
    """``gfx12-5-generic`` -> ("gfx12", "5"); ``gfx12-generic`` -> ("gfx12", None)."""
    parts = target.lower().removesuffix("-generic").split("-")
    return parts[0], (parts[1] if len(parts) > 1 else None)


def generic_name(word: str) -> str | None:
    """The known generic target ``word`` most likely meant, or None.

    Only a word without a minor version gets a suggestion of the same major
    (``gfx10-generic`` -> ``gfx10-3-generic``).  One that names a minor
    version this table lacks (``gfx12-7-generic``) gets none: gfx12-generic is
    other hardware, and a newer LLVM's target is not a typo.
    """
    major, minor = _family(word)
    if minor is not None:
        return None
    same = [g for g in GENERIC_TARGETS if _family(g)[0] == major]
    found = difflib.get_close_matches(word.lower(), same, n=1, cutoff=0.6)
    return found[0] if found else None
