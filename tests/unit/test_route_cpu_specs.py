"""Specs that a CPU satisfies are routed to ordinary profiles (issue 19, item 4).

The fleet: an ordinary amd64 profile without an inventory (debci's own
workers), an ordinary arm64 profile whose inventory shows its CPU, and a
GPU profile.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.fleet.profiles import FleetError, read_fleet
from autopkgtest_hw.fleet.route import route
from autopkgtest_hw.source.archive import SourceEntry
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

GiB = 1 << 30
H100 = Device(
    classes=("gpu", "cuda"), vendor="nvidia", model="NVIDIA H100", memory=80 * GiB,
    arch="sm_90", compute_capability="9.0", pci_address="0000:3b:00.0",
)  # fmt: skip


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    gpu = Inventory(cpu=Cpu(arch="amd64", flags=("avx2",)), devices=(H100,))
    (tmp_path / "h100.json").write_text(gpu.to_json())
    arm = Inventory(cpu=Cpu(arch="arm64", flags=("asimd", "sve")))
    (tmp_path / "arm.json").write_text(arm.to_json())
    f = tmp_path / "fleet"
    f.write_text(
        textwrap.dedent(
            """\
            Profile: h100
            Architecture: amd64
            Inventory: h100.json

            Profile: cpu-amd64
            Architecture: amd64
            Ordinary: yes

            Profile: cpu-arm64
            Architecture: arm64
            Ordinary: yes
            Inventory: arm.json
            """
        )
    )
    return f


def _routes(fleet: Path, hwspec: str, arches: tuple[str, ...] = ("any",)) -> list[str]:
    entry = SourceEntry("p", "1", arches, tuple(s.strip() for s in hwspec.split(",")), True, "x")
    r = route(read_fleet(str(fleet)), [entry], matrix=True)
    assert not r.errors, r.errors
    return sorted(j.profile for j in r.jobs)


def test_opencl_on_any_cpu_goes_to_ordinary_profiles(fleet: Path) -> None:
    assert _routes(fleet, "opencl:type=cpu") == ["cpu-amd64", "cpu-arm64"]


def test_cpu_goes_to_ordinary_profiles_without_an_inventory(fleet: Path) -> None:
    assert _routes(fleet, "cpu", ("amd64",)) == ["cpu-amd64"]


def test_a_cpu_feature_goes_where_an_inventory_shows_it(fleet: Path) -> None:
    assert _routes(fleet, "cpu:sve") == ["cpu-arm64"]
    # no ordinary profile shows avx2: the GPU host's inventory does
    assert _routes(fleet, "cpu:avx2", ("amd64",)) == ["h100"]


def test_gpu_specs_still_go_to_hardware_profiles(fleet: Path) -> None:
    assert _routes(fleet, "cuda") == ["h100"]
    assert _routes(fleet, "cuda|opencl:type=cpu") == ["cpu-amd64", "cpu-arm64"]


def test_a_profile_whose_architecture_contradicts_its_inventory_is_an_error_with_its_line(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = fleet.read_text().replace(
        "Profile: h100\nArchitecture: amd64", "Profile: h100\nArchitecture: arm64"
    )
    fleet.write_text(text)
    f = read_fleet(str(fleet))
    with pytest.raises(FleetError, match=r"fleet:2: profile h100: Architecture: arm64, but its"):
        f.inventory(f.profiles[0])
    assert main(["profile", "--fleet", str(fleet), "--check", "h100", "--inventory",
                 str(fleet.parent / "h100.json")]) == 2  # fmt: skip
    assert "of an amd64 machine" in capsys.readouterr().err


def test_an_invalid_spec_is_said_once(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = fleet.parent / "Sources"
    index.write_text(
        "Package: p\nVersion: 1\nArchitecture: any\nTestsuite: autopkgtest\nRequires-Hwspec: cdua\n"
    )
    main(["route", "--fleet", str(fleet), "--sources", str(index), "--no-broker", "--json"])
    [error] = json.loads(capsys.readouterr().out)["errors"]
    assert error["error"].count("invalid hardware spec") == 1


def test_lint_and_route_agree_on_a_cpu_field(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field opencl:type=cpu, test needs-hw:opencl (a GPU): lint says no admitted host runs
    the test, and route sends the package only where it does not run (ordinary workers)."""
    from autopkgtest_hw.source.archive import read_source_tree

    src = tmp_path / "pkg"
    (src / "debian" / "tests").mkdir(parents=True)
    (src / "debian" / "control").write_text(
        "Source: pkg\nXS-Requires-Hwspec: opencl:type=cpu\n\nPackage: pkg\nArchitecture: any\n"
    )
    (src / "debian" / "tests" / "control").write_text(
        "Test-Command: true\nRestrictions: needs-hw:opencl, skippable\n"
    )
    main(["lint", "--json", str(src)])
    tags = [f["tag"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "needs-hw-test-not-covered" in tags
    r = route(read_fleet(str(fleet)), [read_source_tree(str(src))], matrix=True)
    assert sorted(j.profile for j in r.jobs) == ["cpu-amd64", "cpu-arm64"]
