"""Inner servers without an adapter (lxc, schroot, ...): pass nothing, advertise what is there."""

from __future__ import annotations

from collections.abc import Sequence

from ..inventory import Device
from .base import Backend


class FallbackBackend(Backend):
    """Not registered by name: used for every inner server no adapter knows."""

    name = "fallback"
    strict = False

    def describe(self, devices: Sequence[Device]) -> str:
        return (
            f"no passthrough adapter for {self.kind!r}: nothing is passed; devices whose"
            " nodes the testbed has anyway are advertised"
        )
