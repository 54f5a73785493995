"""Output people read (issue 19, item 6): tables, verdicts, hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopkgtest_hw.commands.route import render
from autopkgtest_hw.detect import nvml
from autopkgtest_hw.fleet.profiles import read_fleet
from autopkgtest_hw.fleet.route import Job, Routing, route
from autopkgtest_hw.source.archive import read_source_tree
from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

from .devices import ARC, CPU, inv


def test_the_route_table_keeps_columns_for_long_names() -> None:
    long = "golang-github-hashicorp-terraform-plugin-framework-validators"  # a sid source
    jobs = [
        Job(f"p{i}", "1", "cpu-amd64", "debci-tests-amd64-lxc", "amd64", "x") for i in range(1001)
    ]
    queue = "debci-tests-amd64-hwgpu_a-very-long-profile-name"
    jobs.append(Job(long, "1", "a-very-long-profile-name", queue, "amd64", "needs no hardware"))
    text = render(Routing("shortest-queue", {}, jobs=jobs))
    rows = text.splitlines()
    header = rows[0]
    row = next(r for r in rows if r.startswith(long))
    assert header.index("PROFILE") == row.index("a-very-long-profile-name")
    assert header.index("QUEUE") == row.index("debci-tests-amd64-hwgpu_")
    assert header.index("WHY") == row.index("needs no hardware")


def test_a_profiles_verdict_names_the_profile_not_a_machine(tmp_path: Path) -> None:
    (tmp_path / "cpu.json").write_text(Inventory(cpu=CPU).to_json())
    fleet = tmp_path / "fleet"
    fleet.write_text("Profile: x86\nArchitecture: amd64\nInventory: cpu.json\n")
    pkg = tmp_path / "pkg"
    (pkg / "debian" / "tests").mkdir(parents=True)
    (pkg / "debian" / "control").write_text("Source: p\n\nPackage: p\nArchitecture: any\n")
    (pkg / "debian" / "tests" / "control").write_text(
        "Test-Command: true\nRestrictions: needs-hw:rocm, skippable\n"
    )
    r = route(read_fleet(str(fleet)), [read_source_tree(str(pkg))])
    [u] = r.unroutable
    assert any("profile has no ROCm device" in reason for reason in u.reasons), u.reasons
    assert not any("machine" in reason for reason in u.reasons)


def test_the_nvml_hint_names_debians_package() -> None:
    assert nvml.NO_PYNVML.startswith("python3-pynvml is not installed")


def test_unknown_gpu_memory_says_what_to_install() -> None:
    message = match(parse("gpu:mem>=8G"), inv(ARC)).message
    assert "mem unknown" in message and "intel-opencl-icd" in message


@pytest.mark.parametrize("spec", ["cdua", "cuda:cc>>8"])
def test_an_invalid_spec_is_named_once(spec: str) -> None:
    from autopkgtest_hw.spec.language import SpecError

    with pytest.raises(SpecError) as info:
        parse(spec)
    assert str(info.value).count("invalid hardware spec") == 1
