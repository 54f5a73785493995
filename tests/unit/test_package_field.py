"""XS-Requires-Hwspec as alternatives, read like Depends; coverage; migration; Architecture lint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.source import architecture, build
from autopkgtest_hw.source.control import read_source_package
from autopkgtest_hw.source.planner import make_plan, package_requirement
from autopkgtest_hw.spec.coverage import compatible, implies
from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import parse

from .devices import CPU, MI210, T4
from .test_lint import make_source


def alt(text: str):  # type: ignore[no-untyped-def]
    return parse(text).alternatives[0]


@pytest.mark.parametrize(
    ("field", "test", "sure", "may"),
    [
        ("cuda:cc>=8.0", "gpu", True, True),
        ("cuda:cc>=8.0", "cuda:cc>=7.0", True, True),
        ("cuda:cc>=7.0", "cuda:cc>=8.0", False, True),
        ("cuda:sm_90", "cuda:cc>=8.0", True, True),  # sm_90 is cc 9.0
        ("cuda:cc>=8.0", "cuda:cc<7.0", False, False),
        ("cuda", "rocm", False, False),
        ("rocm:gfx90a", "rocm:arch=gfx90a/gfx942", True, True),
        ("rocm:gfx90a", "rocm:gfx1030", False, False),
        ("cpu:mem>=64G", "cuda", False, False),  # a big CPU host need not have a GPU
        ("cuda", "opencl:type=cpu", True, True),  # draft 2: any CPU
        ("rocm", "gpu:vendor=nvidia", False, False),
        ("cuda:mem>=16G", "cuda:mem>=40G", False, True),
        ("cpu:mem>=64G", "cpu:mem>=32G", True, True),
        ("gpu", "cuda", False, True),
        ("cuda:count>=2", "cuda:count>=2", True, True),
        ("cuda", "cuda:count>=2", False, True),
    ],
)
def test_coverage(field: str, test: str, sure: bool, may: bool) -> None:
    assert implies(alt(field), alt(test)) is sure
    assert compatible(alt(field), alt(test)) is may


def test_field_is_read_like_depends_spaces_and_folds(tmp_path: Path) -> None:
    src = make_source(
        tmp_path,
        "Tests: t\nRestrictions: needs-hw:cuda:cc>=7.0\n",
        extra="XS-Requires-Hwspec: cuda:cc>=7.0 |\n rocm:gfx90a, cpu:cores>=2\n",
    )
    pkg = read_source_package(str(src))
    req = package_requirement(pkg)
    assert req is not None and req.text == "cuda:cc>=7.0 | rocm:gfx90a, cpu:cores>=2"
    assert req.admits(Inventory(cpu=CPU, devices=(MI210,)))
    assert not req.admits(Inventory(cpu=CPU))
    plan = make_plan(pkg, Inventory(cpu=CPU, devices=(T4,)))
    assert [r.spec for r in plan.requires_hwspec] == ["cuda:cc>=7.0|rocm:gfx90a", "cpu:cores>=2"]
    assert plan.admitted
    assert build.read_package(str(src)).hwspecs == ("cuda:cc>=7.0|rocm:gfx90a", "cpu:cores>=2")


def test_an_error_in_a_folded_field_points_at_its_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, None, extra="XS-Requires-Hwspec: cuda |\n   rcom:gfx90a\n")
    rc = main(["lint", "--json", str(src)])
    (error,) = json.loads(capsys.readouterr().out)["findings"]
    assert rc == 1
    assert (error["tag"], error["line"], error["column"]) == ("invalid-requires-hwspec", 4, 4)
    assert error["fix"] == "cuda|rocm:gfx90a"


def findings(capsys: pytest.CaptureFixture[str], src: Path) -> list[dict[str, object]]:
    main(["lint", "--json", str(src)])
    found: list[dict[str, object]] = json.loads(capsys.readouterr().out)["findings"]
    return found


def test_suggested_field_is_alternatives_not_a_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: c\nRestrictions: needs-hw:cuda:cc>=7.0, needs-hw:cpu:mem>=16G, skippable\n\n"
        "Tests: r\nRestrictions: needs-hw:rocm:gfx90a, skippable\n\n"
        "Tests: r2\nRestrictions: needs-hw:rocm:gfx90a, skippable\n",
    )
    (hint,) = findings(capsys, src)
    assert hint["tag"] == "needs-hw-without-requires-hwspec"
    # commas would mean all must hold: no host has both
    assert hint["fix"] == "XS-Requires-Hwspec: cuda:cc>=7.0 | rocm:gfx90a"


def test_migration_sees_own_kfd_checks_and_gpu_depends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: own-check\nRestrictions: skippable\n\n"
        "Tests: by-depends\nDepends: python3-torch-cuda\nRestrictions: skippable, allow-stderr\n\n"
        "Tests: not-skippable\nDepends: librocblas4-tests\n\n"
        "Tests: plain\nRestrictions: skippable\n",
    )
    tests = src / "debian" / "tests"
    (tests / "own-check").write_text("#!/bin/sh\n[ -e /dev/kfd ] || exit 77\n")
    (tests / "plain").write_text("#!/bin/sh\n[ -e /etc/foo ] || exit 77\n")
    (hint,) = findings(capsys, src)
    assert hint["tag"] == "skippable-gpu-test"
    assert "own-check (checks /dev/kfd); by-depends (depends on python3-torch-cuda)." in str(
        hint["message"]
    )
    assert hint["fix"] == (
        "Restrictions: needs-hw:rocm, skippable\n"
        "Restrictions: needs-hw:cuda, skippable, allow-stderr"
    )
    main(["lint", str(src)])
    out = capsys.readouterr().out
    assert (
        "    fix: Restrictions: needs-hw:rocm, skippable\n"
        "         Restrictions: needs-hw:cuda, skippable, allow-stderr\n"
    ) in out


def test_architecture_all_or_mixed_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: a\nArchitecture: all\n\nTests: b\nArchitecture: amd64 !arm64\n\n"
        "Tests: c\nArchitecture: amd64 arm64\n",
    )
    found = findings(capsys, src)
    assert [(f["tag"], f["line"]) for f in found] == [
        ("test-architecture-invalid", 2),
        ("test-architecture-invalid", 5),
    ]
    assert architecture.ALL_NOT_ALLOWED in str(found[0]["message"])
    assert architecture.MIXED in str(found[1]["message"])


def test_plan_of_an_inventory_without_arch_does_not_guess(tmp_path: Path) -> None:
    src = make_source(tmp_path, "Tests: a\nArchitecture: amd64\n\nTests: b\n")
    plan = make_plan(read_source_package(str(src)), Inventory())
    assert [(t.name, t.runs) for t in plan.tests] == [("a", False), ("b", True)]
    assert plan.tests[0].reasons == (
        "Architecture: amd64 cannot be checked: the inventory names no dpkg architecture",
    )


def test_constraints_no_detector_answers_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path, "Tests: t\nRestrictions: skippable needs-hw:rocm:driver>=6.0 needs-hw:cuda\n"
    )
    found = findings(capsys, src)
    assert [(f["tag"], f["line"], f["column"]) for f in found] == [
        ("needs-hw-without-requires-hwspec", 1, None),
        ("needs-hw-unanswerable", 2, 39),  # at "driver>=6.0"
    ]
