"""null and ssh: the testbed is a machine that has the devices already; nothing to pass."""

from __future__ import annotations

from collections.abc import Sequence

from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends.base import Availability, Backend, Passthrough, nothing_passed


class NullBackend(Backend, backend_name="null"):
    """The testbed is this host: its devices are there, nothing is passed."""

    passes_arguments = False
    testbed_is_host = True

    def plan(self, devices: Sequence[Device]) -> Passthrough:
        return nothing_passed(
            "nothing to pass: the testbed is this host, which has the devices already", devices
        )

    def available(self) -> Availability:
        return Availability(True, "the testbed is this host")


class SshBackend(Backend, backend_name="ssh"):
    """A remote machine: its own devices count, whatever this host has.

    Nothing can be passed over ssh; the probe shows which of the allocated
    devices' nodes the remote testbed has, and only those are advertised.
    """

    strict = False
    passes_arguments = False

    def plan(self, devices: Sequence[Device]) -> Passthrough:
        return nothing_passed(
            "nothing to pass: an ssh testbed has its own devices;"
            " only those whose nodes it has are advertised",
            devices,
        )

    def available(self) -> Availability:
        return Availability(True, "the remote machine's own devices are advertised")
