"""ROCm generic targets against LLVM's AMDGPUUsage table (issue 19, item 5)."""

from __future__ import annotations

import dataclasses

import pytest

from autopkgtest_hw.spec import rocm
from autopkgtest_hw.spec.language import SpecError, parse
from autopkgtest_hw.spec.matcher import match

from .devices import MI210, inv


def _on(arch: str, token: str) -> bool:
    device = dataclasses.replace(MI210, arch=arch, classes=("gpu", "rocm"))
    return match(parse(token), inv(device)).satisfied


@pytest.mark.parametrize("arch", ["gfx1250", "gfx1251"])
def test_gfx12_5_generic_is_an_llvm_target_covering_gfx1250_and_gfx1251(arch: str) -> None:
    assert _on(arch, "rocm:gfx12-5-generic")
    assert not _on(arch, "rocm:gfx12-generic")  # RDNA 4 code objects do not run there


def test_gfx12_5_generic_does_not_hold_on_rdna4() -> None:
    assert not _on("gfx1201", "rocm:gfx12-5-generic")


@pytest.mark.parametrize(("arch", "holds"), [("gfx942", True), ("gfx950", True), ("gfx940", False)])
def test_gfx9_4_generic_covers_what_current_llvm_lists(arch: str, holds: bool) -> None:
    assert _on(arch, "rocm:gfx9-4-generic") is holds


def test_an_unknown_minor_version_is_not_suggested_as_other_hardware() -> None:
    with pytest.raises(SpecError) as info:
        parse("rocm:gfx12-7-generic")
    assert info.value.suggestion is None
    assert "gfx12-5-generic" in str(info.value)  # the known ones are listed


def test_the_module_names_the_llvm_revision_it_was_checked_against() -> None:
    doc = rocm.__doc__ or ""
    assert "AMDGPUUsage" in doc and "2026" in doc
