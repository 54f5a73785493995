"""null and ssh: the testbed is a machine that has the devices already; nothing to pass."""

from __future__ import annotations

from collections.abc import Sequence

from ..inventory import Device
from .base import Backend


class NullBackend(Backend, backend_name="null"):
    """The testbed is this host: its devices are there, nothing is passed."""

    isolating = False

    def describe(self, devices: Sequence[Device]) -> str:
        return "nothing to pass: the testbed is this host, which has the devices already"


class SshBackend(Backend, backend_name="ssh"):
    """A remote machine: its own devices count, whatever this host has.

    Nothing can be passed over ssh; the probe shows which of the allocated
    devices' nodes the remote testbed has, and only those are advertised.
    """

    isolating = False
    strict = False

    def describe(self, devices: Sequence[Device]) -> str:
        return (
            "nothing to pass: an ssh testbed has its own devices;"
            " only those whose nodes it has are advertised"
        )
