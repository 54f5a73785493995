"""``autopkgtest-hw run`` through the real autopkgtest (5.28 and 6.0) on null testbeds.

Small packages made in tmp: each test is a Test-Command, so nothing is built
or installed on this host.  Tests that need a pinned inventory use
``-- hwgpu --inventory FILE null``; the rest use plain ``-- null`` (a testbed
without an inventory).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autopkgtest_hw.spec.inventory import Inventory

from .fixtures import (
    POCL_CPU,
    TESLA_T4,
    command_test,
    have_hwgpu,
    hw_env,
    make_tests_tree,
    run_hw,
    write_inventory,
)

NO_INVENTORY = "testbed advertises no hardware inventory (run it through autopkgtest-virt-hwgpu)"

needs_hwgpu = pytest.mark.skipif(
    not have_hwgpu(), reason="autopkgtest-virt-hwgpu is not in this tree yet"
)


def hwgpu_null(tmp_path: Path, devices: list[dict[str, object]]) -> list[str]:
    inventory = write_inventory(tmp_path / "inventory.json", devices)
    return ["--", "hwgpu", "--inventory", str(inventory), "null"]


def test_without_inventory_needs_hw_tests_skip_and_others_run(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test("plain"),
            command_test("gpu", "needs-hw:cuda:cc>=8.0"),
            command_test("cpu", "needs-hw:cpu"),
        ],
    )
    r = run_hw([str(pkg), "--", "null"], autopkgtest_program, tmp_path / "summary")
    assert r.rc == 2, r.stderr
    assert r.result("plain") == "PASS"
    assert r.result("gpu") == f"SKIP needs-hw:cuda:cc>=8.0: {NO_INVENTORY}"
    assert r.result("cpu") == f"SKIP needs-hw:cpu: {NO_INVENTORY}"


def test_invalid_spec_is_reported_as_such_not_as_absent_hardware(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test("typo", "needs-hw:cuda:cc>>8.0"),
            command_test("unknown-class", "needs-hw:tpu"),
            command_test("absent", "needs-hw:rocm"),
            command_test("plain"),
        ],
    )
    r = run_hw([str(pkg), "--", "null"], autopkgtest_program, tmp_path / "summary")
    assert r.rc == 2, r.stderr
    assert r.result("typo").startswith("SKIP invalid hardware spec 'needs-hw:cuda:cc>>8.0': ")
    assert r.result("unknown-class").startswith("SKIP invalid hardware spec 'needs-hw:tpu': ")
    assert r.result("absent") == f"SKIP needs-hw:rocm: {NO_INVENTORY}"
    assert "invalid" not in r.result("absent")


def test_a_skipped_test_has_nothing_installed(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    """The skip comes before dependency installation: an uninstallable Depends is never tried."""
    marker = tmp_path / "ran"
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test(
                "gpu",
                "needs-hw:cuda",
                command=f"touch {marker}",
                depends="autopkgtest-hw-no-such-package-in-any-archive",
            )
        ],
    )
    r = run_hw([str(pkg), "--", "null"], autopkgtest_program, tmp_path / "summary")
    assert r.rc == 8, r.stderr  # every test skipped, none failed as uninstallable (12)
    assert r.summary == [f"gpu                  SKIP needs-hw:cuda: {NO_INVENTORY}"]
    assert "badpkg" not in r.stderr
    assert not marker.exists()


def test_every_test_skipped_exits_8(tmp_path: Path, autopkgtest_program: Path | None) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [command_test("one", "needs-hw:cuda"), command_test("two", "needs-hw:rocm:gfx90a")],
    )
    r = run_hw([str(pkg), "--", "null"], autopkgtest_program, tmp_path / "summary")
    assert r.rc == 8, r.stderr
    assert {ln.split()[0] for ln in r.summary} == {"one", "two"}
    assert all(ln.split()[1] == "SKIP" for ln in r.summary)


def test_ignore_restrictions_runs_the_test_without_checking(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("gpu", "needs-hw:cuda:cc>=8.0")])
    r = run_hw(
        ["--ignore-restrictions=needs-hw:cuda:cc>=8.0", str(pkg), "--", "null"],
        autopkgtest_program,
        tmp_path / "summary",
    )
    assert r.rc == 0, r.stderr
    assert r.summary == ["gpu                  PASS"]


def test_tests_without_needs_hw_behave_as_with_plain_autopkgtest(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    """Same summary and exit code as autopkgtest itself, for every other restriction."""
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test("plain"),
            command_test("fails", command="false"),
            command_test("flaky", "flaky", command="false"),
            command_test("stderr", command="echo oops >&2"),
            command_test("allowed-stderr", "allow-stderr", command="echo fine >&2"),
            command_test("skips", "skippable", command="exit 77"),
            command_test("hint", "hint-testsuite-triggers"),
            command_test("reboot", "needs-reboot"),
            command_test("superficial", "superficial"),
        ],
    )
    hw = run_hw([str(pkg), "--", "null"], autopkgtest_program, tmp_path / "hw-summary")
    # The same autopkgtest, without autopkgtest-hw in the way.
    program = str(autopkgtest_program) if autopkgtest_program else "autopkgtest"
    plain = subprocess.run(
        [program, f"--summary-file={tmp_path / 'plain-summary'}", str(pkg), "--", "null"],
        env=hw_env(None),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert hw.rc == plain.returncode == 6, hw.stderr
    assert hw.summary == (tmp_path / "plain-summary").read_text().splitlines()
    assert hw.result("fails") == "FAIL non-zero exit status 1"
    assert hw.result("hint") == "SKIP unknown restriction hint-testsuite-triggers"


@needs_hwgpu
def test_satisfied_and_unsatisfied_specs_on_a_pinned_inventory(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test("opencl-cpu", "needs-hw:opencl:type=cpu"),
            command_test("cuda", "needs-hw:cuda:cc>=7.0"),
            command_test("plain"),
        ],
    )
    r = run_hw(
        [str(pkg), *hwgpu_null(tmp_path, [POCL_CPU])], autopkgtest_program, tmp_path / "summary"
    )
    assert r.rc == 2, r.stderr
    assert r.result("opencl-cpu") == "PASS"
    assert (
        r.result("cuda") == "SKIP needs-hw:cuda:cc>=7.0 not satisfied: testbed has no CUDA device"
    )
    assert r.result("plain") == "PASS"


@needs_hwgpu
def test_several_needs_hw_on_one_test_must_all_hold(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    both = "needs-hw:opencl:type=cpu needs-hw:cuda:cc>=7.0"
    stanzas = [command_test("both", both), command_test("too-new", f"{both} needs-hw:cuda:cc>=8.0")]
    pkg = make_tests_tree(tmp_path / "pkg", stanzas)

    only_cpu = run_hw(
        [str(pkg), *hwgpu_null(tmp_path, [POCL_CPU])], autopkgtest_program, tmp_path / "s1"
    )
    assert only_cpu.rc == 8, only_cpu.stderr
    assert only_cpu.result("both") == (
        "SKIP needs-hw:cuda:cc>=7.0 not satisfied: testbed has no CUDA device"
    )

    with_t4 = run_hw(
        [str(pkg), *hwgpu_null(tmp_path, [POCL_CPU, TESLA_T4])],
        autopkgtest_program,
        tmp_path / "s2",
    )
    assert with_t4.rc == 2, with_t4.stderr
    assert with_t4.result("both") == "PASS"
    assert with_t4.result("too-new").startswith("SKIP needs-hw:cuda:cc>=8.0 not satisfied: ")
    assert "Tesla T4" in with_t4.result("too-new")


@needs_hwgpu
def test_needs_hw_with_skippable(tmp_path: Path, autopkgtest_program: Path | None) -> None:
    """needs-hw decides first; a test that does run may still skip itself with 77."""
    marker = tmp_path / "ran"
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test("self-skip", "needs-hw:opencl:type=cpu skippable", command="exit 77"),
            command_test("absent", "needs-hw:cuda, skippable", command=f"touch {marker}; exit 77"),
            command_test("runs", "skippable needs-hw:opencl:type=cpu"),
        ],
    )
    r = run_hw(
        [str(pkg), *hwgpu_null(tmp_path, [POCL_CPU])], autopkgtest_program, tmp_path / "summary"
    )
    assert r.rc == 2, r.stderr
    assert r.result("self-skip") == "SKIP exit status 77 and marked as skippable"
    assert r.result("absent") == "SKIP needs-hw:cuda not satisfied: testbed has no CUDA device"
    assert r.result("runs") == "PASS"
    assert not marker.exists()


def test_any_virt_server_capabilities_are_read(tmp_path: Path, autopkgtest_new: Path) -> None:
    """6.0's null server can fake capabilities: the check reads the inventory from them."""
    inventory = Inventory.load(str(write_inventory(tmp_path / "inv.json", [POCL_CPU, TESLA_T4])))
    fake = [f"--fake-capability={cap}" for cap in inventory.to_capabilities()]
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [command_test("t4", "needs-hw:cuda:sm_75"), command_test("h100", "needs-hw:cuda:sm_90")],
    )
    r = run_hw([str(pkg), "--", "null", *fake], autopkgtest_new, tmp_path / "summary")
    assert r.rc == 2, r.stderr
    assert r.result("t4") == "PASS"
    assert r.result("h100").startswith("SKIP needs-hw:cuda:sm_90 not satisfied: testbed has ")
    assert "satisfied: 1 CUDA device fits (Tesla T4" in r.stderr  # logged by autopkgtest
