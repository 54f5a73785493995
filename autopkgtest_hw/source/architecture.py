"""The ``Architecture:`` field of a test stanza, decided exactly as autopkgtest decides it.

autopkgtest (``testdesc._check_architecture``, the same in 5.28 and 6.0)
checks it before the test's restrictions, so a test that is not for the
testbed's dpkg architecture is skipped with one of the reasons below, and
no hardware is ever looked at.  Wildcards (``linux-any``, ``any-amd64``) are
dpkg's, matched with python-debian's table of dpkg's tuples, as 6.0 does.
An inventory's dpkg architecture is its CPU's (``Cpu.arch``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from debian.debian_support import DpkgArchTable

#: autopkgtest's own wording (testdesc.py), so plan and run say the same thing.
ALL_NOT_ALLOWED = "Arch 'all' not allowed in Architecture field"
DECLARED_UNSUPPORTED = "Test declares architecture as not supported: {arch}"
MIXED = (
    "It is not permitted for some archs to be prepended by an exclamation mark while others aren't"
)
NOT_LISTED = (
    "Test lists explicitly supported architectures, but the current architecture {arch} "
    "isn't listed."
)
#: Ours: an inventory that does not say its architecture cannot be checked.
UNKNOWN_ARCH = "Architecture: {field} cannot be checked: the inventory names no dpkg architecture"


@functools.cache
def _table() -> DpkgArchTable:
    return DpkgArchTable.load_arch_table()


def matches(arch: str, wildcard: str) -> bool:
    """dpkg's ``debarch_is(arch, wildcard)``: ``amd64`` is ``any-amd64`` and ``linux-any``."""
    if arch == wildcard or wildcard == "any":
        return True
    try:
        return bool(_table().matches_architecture(arch, wildcard))
    except (KeyError, ValueError):  # a word that names no architecture
        return False


def skip_reason(arch: str | None, architectures: Sequence[str]) -> str | None:
    """Why autopkgtest skips a test with ``Architecture: architectures`` on ``arch``; None: it
    does not.  An empty list and ``any`` allow every architecture."""
    architectures = list(architectures)
    if "all" in architectures:
        return ALL_NOT_ALLOWED
    if not architectures or architectures == ["any"]:
        return None
    if arch is None:
        return UNKNOWN_ARCH.format(field=" ".join(architectures))
    negative = [a[1:] for a in architectures if a.startswith("!")]
    positive = [a for a in architectures if not a.startswith("!")]
    # autopkgtest tests the negations first, in the order written.
    if any(matches(arch, a) for a in negative):
        return DECLARED_UNSUPPORTED.format(arch=arch)
    if positive and negative:
        return MIXED
    if positive and not any(matches(arch, a) for a in positive):
        return NOT_LISTED.format(arch=arch)
    return None


def field_problem(architectures: Sequence[str]) -> str | None:
    """What is wrong with an Architecture field on every architecture (for lint); None: fine."""
    if "all" in architectures:
        return ALL_NOT_ALLOWED
    if any(a.startswith("!") for a in architectures) and any(
        not a.startswith("!") for a in architectures
    ):
        return MIXED
    return None
