"""lint's unanswerable, subsumed and no-op suggestions (issue 19, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import unanswerable

from .test_lint import make_source


def _findings(capsys: pytest.CaptureFixture[str], src: Path) -> dict[str, dict[str, object]]:
    main(["lint", "--json", str(src)])
    found = json.loads(capsys.readouterr().out)["findings"]
    return {str(f["tag"]): f for f in found}


@pytest.mark.parametrize("vendor", ["amd", "intel", "amd/intel"])
def test_a_driver_version_of_amd_or_intel_gpus_is_unanswerable(vendor: str) -> None:
    [why] = unanswerable(parse(f"gpu:vendor={vendor}:driver>=6.0"))
    assert "driver>=6.0" in why and "no version" in why


def test_a_driver_version_of_nvidia_gpus_is_answered() -> None:
    assert unanswerable(parse("gpu:vendor=nvidia:driver>=535")) == []
    assert unanswerable(parse("gpu:driver>=535")) == []  # an NVIDIA GPU may answer


def test_the_suggested_field_leaves_out_subsumed_alternatives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: a\nRestrictions: needs-hw:cuda, skippable\n\n"
        "Tests: b\nRestrictions: needs-hw:cuda:cc>=7.0, skippable\n\n"
        "Tests: c\nRestrictions: needs-hw:rocm:gfx90a, skippable\n",
    )
    hint = _findings(capsys, src)["needs-hw-without-requires-hwspec"]
    assert hint["fix"] == "XS-Requires-Hwspec: cuda | rocm:gfx90a"


def test_the_suggested_field_leaves_out_alternatives_that_never_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(
        tmp_path,
        "Tests: a\nRestrictions: needs-hw:rocm:driver>=6.0, skippable\n\n"
        "Tests: b\nRestrictions: needs-hw:cuda, skippable\n",
    )
    hint = _findings(capsys, src)["needs-hw-without-requires-hwspec"]
    assert hint["fix"] == "XS-Requires-Hwspec: cuda"


def test_no_field_is_suggested_where_it_would_say_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, "Tests: a\nRestrictions: needs-hw:cpu, skippable\n")
    assert "needs-hw-without-requires-hwspec" not in _findings(capsys, src)
