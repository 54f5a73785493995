"""The contract every passthrough adapter keeps, checked over the whole registry."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from autopkgtest_hw.spec.inventory import Device
from autopkgtest_hw.virt.backends import (
    Availability,
    Backend,
    FallbackBackend,
    Passthrough,
    backend_class,
)
from autopkgtest_hw.virt.backends.base import append_args

from .backend_helpers import make

ADAPTERS = sorted({*Backend.registry.values(), FallbackBackend}, key=lambda c: c.name)


# -- the registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ("null", "null"),
        ("autopkgtest-virt-null", "null"),
        ("/usr/bin/autopkgtest-virt-ssh", "ssh"),
        ("unshare", "unshare"),
        ("podman", "podman"),
        ("docker", "podman"),
        ("podman+rocm", "podman"),
        ("autopkgtest-virt-qemu+rocm", "qemu"),
    ],
)
def test_inner_names_map_to_their_adapter(inner: str, expected: str) -> None:
    assert backend_class(inner).name == expected


def test_every_inner_server_autopkgtest_ships_has_an_adapter() -> None:
    assert {"null", "ssh", "unshare", "podman", "docker", "qemu"} <= set(Backend.registry)


# -- the contract ----------------------------------------------------------------


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: c.name)
def test_adapter_plans_once_and_passes_nothing_without_devices(cls: type[Backend]) -> None:
    b = make(cls, f"/usr/bin/autopkgtest-virt-{cls.name}")
    plan = b.plan([])
    assert isinstance(plan, Passthrough)
    assert plan.extra_args == () and plan.nodes == ()
    assert plan.inner_args(["--keep", "x.img"]) == ["--keep", "x.img"]
    assert plan.description  # the log always says what was passed, even nothing


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: c.name)
def test_adapter_says_whether_this_host_can_use_it_and_why(cls: type[Backend]) -> None:
    b = make(cls, f"/usr/bin/autopkgtest-virt-{cls.name}")
    verdict = b.available()
    assert isinstance(verdict, Availability)
    assert isinstance(verdict.ok, bool) and verdict.reason


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: c.name)
def test_adapter_plan_is_a_frozen_value(cls: type[Backend]) -> None:
    plan = make(cls, f"/usr/bin/autopkgtest-virt-{cls.name}").plan([])
    with pytest.raises(AttributeError):
        plan.description = "changed"  # type: ignore[misc]


def test_an_adapter_that_forgets_a_method_fails_when_it_is_defined() -> None:
    with pytest.raises(TypeError, match="does not implement available"):

        class Forgetful(Backend, backend_name="forgetful-test"):
            def plan(self, devices: Sequence[Device]) -> Passthrough:
                return Passthrough((), "nothing")

    assert "forgetful-test" not in Backend.registry


def test_an_unregistered_adapter_that_forgets_a_method_cannot_be_made() -> None:
    class Unregistered(Backend):
        def available(self) -> Availability:
            return Availability(True, "always")

    with pytest.raises(TypeError, match="plan"):
        make(Unregistered, "/usr/bin/autopkgtest-virt-x")  # type: ignore[type-abstract]


def test_passthrough_appends_by_default_and_merges_when_told() -> None:
    plain = Passthrough(("--bind", "/a", "/a"), "bind /a")
    assert plain.inner_args(["-t", "x.tar"]) == ["-t", "x.tar", "--bind", "/a", "/a"]
    assert append_args(["x"], ["y"]) == ["x", "y"]
    merged = Passthrough(("-device", "d"), "d", merge=lambda a, e: [" ".join(e), *a])
    assert merged.inner_args(["img"]) == ["-device d", "img"]
