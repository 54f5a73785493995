"""null, ssh and the fallback adapter: nothing passed, the nodes checked."""

from __future__ import annotations

from autopkgtest_hw.virt.backends import FallbackBackend, backend_class
from autopkgtest_hw.virt.probe import ProbeResult

from .backend_helpers import make, nvidia

# -- null, ssh and the fallback --------------------------------------------------


def test_unknown_inner_server_gets_the_fallback_that_passes_nothing() -> None:
    cls = backend_class("lxc")
    assert cls is FallbackBackend
    b = make(cls, "/usr/bin/autopkgtest-virt-lxc", nvidia(("/dev/nvidia0",)))
    assert b.plan(b.inventory.devices).inner_args(["img"]) == ["img"]
    assert not b.strict
    assert "no passthrough adapter for 'lxc'" in b.plan([]).description


def test_null_passes_nothing_and_says_so() -> None:
    b = make(backend_class("null"), "/usr/bin/autopkgtest-virt-null", nvidia(("/dev/nvidia0",)))
    assert b.plan(b.inventory.devices).inner_args([]) == []
    assert "nothing to pass" in b.plan(b.inventory.devices).description
    assert b.strict


def test_node_check_reports_each_missing_node() -> None:
    d = nvidia(("/dev/nvidia0", "/dev/nvidiactl"))
    b = make(backend_class("null"), "null", d)
    probe = ProbeResult(
        cpu=b.inventory.cpu, nodes={"/dev/nvidia0": "char", "/dev/nvidiactl": "not-char"}
    )
    present, problems = b.verify([d], probe)
    assert present == []
    assert problems == [
        f"NVIDIA H100 PCIe ({d.uuid}): /dev/nvidiactl (exists but is not a character device)"
    ]
