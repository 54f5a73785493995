"""Saved inventories are classed by today's rules, one code path (issue 19, item 1).

The saved documents below are what ``detect --json`` of version 1 wrote (the
RX 6800 without its PCI class, as earlier detectors saved it; the ASPEED BMC
with the ``gpu`` class version 1 gave display-only chips).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.fleet.profiles import Profile, check_host
from autopkgtest_hw.spec.inventory import SCHEMA_VERSION, Inventory, InventoryError

RX6800_V1 = {
    "classes": ["gpu", "rocm", "opencl", "vulkan"],
    "vendor": "amd",
    "model": "AMD Radeon RX 6800",
    "pci_address": "0000:0b:00.0",
    "pci_id": "1002:73bf",
    "memory": 17163091968,
    "arch": "gfx1030",
    "driver": "amdgpu",
    "device_nodes": ["/dev/dri/card0", "/dev/dri/renderD128", "/dev/kfd"],
    "sources": ["udev", "kfd"],
}
AST_V1 = {
    "classes": ["gpu"],
    "vendor": "aspeed",
    "model": "ASPEED Graphics Family",
    "pci_address": "0000:02:00.0",
    "pci_id": "1a03:2000",
    "pci_class": "0x030000",
    "driver": "ast",
    "device_nodes": ["/dev/dri/card1"],
    "sources": ["udev"],
}


def _save(tmp_path: Path, *devices: dict[str, object], version: int = 1) -> str:
    doc = {"version": version, "cpu": {"arch": "amd64"}, "devices": list(devices)}
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_gpu_saved_without_its_pci_class_is_still_a_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save(tmp_path, RX6800_V1)
    assert main(["match", "--inventory", path, "gpu", "rocm:gfx1030"]) == 0
    err = capsys.readouterr().err
    assert "GPU inferred from its driver amdgpu (no PCI class saved)" in err
    assert "detect --json" in err  # the fix


def test_every_reader_classes_a_saved_bmc_by_todays_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save(tmp_path, RX6800_V1, AST_V1)
    inventory = Inventory.load(path)
    assert "gpu" in inventory.classes()
    assert [d.model for d in inventory.of_class("gpu")] == ["AMD Radeon RX 6800"]
    assert main(["detect", "--inventory", path]) == 0
    out = capsys.readouterr().out
    assert "classes: gpu" not in out.split("ASPEED", 1)[1].split("\n\n", 1)[0]
    assert main(["match", "--inventory", path, "gpu:count>=2"]) == 1


def test_a_worker_saved_by_an_older_version_passes_its_profile_check(tmp_path: Path) -> None:
    saved = Inventory.load(_save(tmp_path, RX6800_V1))
    actual = Inventory.from_dict(
        {"version": SCHEMA_VERSION, "cpu": {"arch": "amd64"},
         "devices": [dict(RX6800_V1, pci_class="0x030000")]}
    )  # fmt: skip
    profile = Profile("rx6800", "amd64", "hwgpu", False, None)
    assert check_host(saved, actual, profile) == []


def test_detect_json_writes_the_current_format() -> None:
    assert Inventory().to_dict()["version"] == SCHEMA_VERSION == 2


def test_a_newer_format_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="run 'autopkgtest-hw detect --json' on the host"):
        Inventory.load(_save(tmp_path, RX6800_V1, version=3))


def test_a_current_inventory_loads_without_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = dict(RX6800_V1, pci_class="0x030000")
    current["classes"] = ["gpu", "rocm", "opencl", "vulkan", "video"]
    inventory = Inventory.load(_save(tmp_path, current, version=2))
    assert inventory.notes == ()
    assert capsys.readouterr().err == ""
