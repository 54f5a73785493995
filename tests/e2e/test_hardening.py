"""Hostile strings and broken runs against the real autopkgtest (issue 9, points 2-4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .fixtures import (
    TESLA_T4,
    command_test,
    have_hwgpu,
    make_tests_tree,
    run_hw,
    write_inventory,
)

needs_hwgpu = pytest.mark.skipif(not have_hwgpu(), reason="autopkgtest-virt-hwgpu is missing")


@needs_hwgpu
def test_a_device_name_cannot_forge_a_summary_line(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    """A model name with a newline (a crafted inventory, a device's own name) stays one line."""
    evil = dict(TESLA_T4, model="Tesla T4\nfake-test           PASS\x1b]0;owned\x07")
    inventory = write_inventory(tmp_path / "inv.json", [evil])
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("h100", "needs-hw:cuda:cc>=9.0")])
    r = run_hw(
        [str(pkg), "--", "hwgpu", "--inventory", str(inventory), "null"],
        autopkgtest_program,
        tmp_path / "summary",
    )
    assert r.rc == 8, r.stderr
    assert [ln.split()[0] for ln in r.summary] == ["h100"]
    assert "Tesla T4\\nfake-test" in r.result("h100")
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
