"""Inner servers without an adapter (lxc, schroot, ...): pass nothing, advertise what is there."""

from __future__ import annotations

from collections.abc import Sequence

from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends.base import Availability, Backend, Passthrough, nothing_passed


class FallbackBackend(Backend):
    """Not registered by name: used for every inner server no adapter knows."""

    name = "fallback"
    strict = False

    def plan(self, devices: Sequence[Device]) -> Passthrough:
        return nothing_passed(
            f"no passthrough adapter for {self.kind!r}: nothing is passed; devices whose"
            " nodes the testbed has anyway are advertised",
            devices,
        )

    def available(self) -> Availability:
        return Availability(True, "nothing is passed; only what the testbed has is advertised")
