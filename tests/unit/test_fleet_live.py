"""Routing only to live workers, and the profile's form in debci (ARCH+PROFILE)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autopkgtest_hw.fleet.enqueue import enqueue_argv, groups, requests_for
from autopkgtest_hw.fleet.profiles import Fleet, read_fleet
from autopkgtest_hw.fleet.route import route
from autopkgtest_hw.source.archive import SourceEntry, read_sources_index
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

H100 = Device(classes=("gpu", "cuda"), vendor="nvidia", model="NVIDIA H100", arch="sm_90",
              compute_capability="9.0", memory=80 << 30)  # fmt: skip
Q = "debci-tests-amd64-hwgpu_"


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    for name in ("h100", "a100"):
        inv = Inventory(cpu=Cpu(arch="amd64", cores=8), devices=(H100,))
        (tmp_path / f"{name}.json").write_text(inv.to_json())
    (tmp_path / "fleet").write_text(
        textwrap.dedent(
            """\
            Profile: a100
            Architecture: amd64
            Inventory: a100.json

            Profile: h100
            Architecture: amd64
            Inventory: h100.json

            Profile: cpu
            Architecture: amd64
            Ordinary: yes
            """
        )
    )
    return read_fleet(str(tmp_path / "fleet"))


@pytest.fixture
def cuda(tmp_path: Path) -> list[SourceEntry]:
    (tmp_path / "Sources").write_text(
        "Package: cudapkg\nVersion: 1\nArchitecture: any\nTestsuite: autopkgtest\n"
        "Requires-Hwspec: cuda:cc>=9.0\n"
    )
    return list(read_sources_index(str(tmp_path / "Sources")))


def test_a_profile_without_a_consumer_gets_no_job(fleet: Fleet, cuda: list[SourceEntry]) -> None:
    consumers = {Q + "a100": 0, Q + "h100": 1}
    r = route(fleet, cuda * 2, depths={Q + "a100": 0, Q + "h100": 5}, consumers=consumers)
    assert [j.profile for j in r.jobs] == ["h100", "h100"]  # a100 is emptier, but idle
    assert r.held == []


def test_all_idle_is_held_with_the_reason_unless_allowed(
    fleet: Fleet, cuda: list[SourceEntry]
) -> None:
    idle = {Q + "a100": 0, Q + "h100": 0}
    r = route(fleet, cuda, consumers=idle)
    assert r.jobs == [] and [h.profiles for h in r.held] == [("a100", "h100")]
    assert "no live worker" in r.held[0].reason and "--allow-idle" in r.held[0].reason
    r = route(fleet, cuda, consumers=idle, allow_idle=True)
    assert [j.profile for j in r.jobs] == ["a100"] and r.held == []
    # Matrix: the same hardware is one group; its live profile takes the job.
    r = route(fleet, cuda, matrix=True, consumers={Q + "h100": 2})
    assert [j.profile for j in r.jobs] == ["h100"]


def test_debci_records_each_profile_under_its_own_architecture(
    fleet: Fleet, cuda: list[SourceEntry]
) -> None:
    profiles = {p.name: p for p in fleet}
    assert profiles["h100"].debci_arch == "amd64+h100"
    assert profiles["cpu"].debci_arch == "amd64"  # debci's own, unchanged
    r = route(fleet, cuda, consumers={Q + "h100": 1})
    [req] = requests_for(r.jobs, "unstable", "cuda/1", 7)
    assert req.message == "cudapkg unstable run-id:NEW trigger:cuda%2F1"
    argv = enqueue_argv(groups([req])[0], "unstable", "cuda/1", "autopkgtest-hw")
    assert argv[:6] == ["debci", "enqueue", "--suite", "unstable", "--arch", "amd64+h100"]
    assert argv[-2:] == ["--", "cudapkg"]
