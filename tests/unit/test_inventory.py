"""The inventory's JSON and capability forms round-trip and reject garbage clearly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autopkgtest_hw.spec.inventory import SCHEMA_VERSION, Inventory, InventoryError

from .devices import CPU, MI210, POCL, inv
from .devices import H100_OPENCL as H100

FULL = inv(H100, MI210, POCL)


def test_json_round_trip_keeps_every_field():
    text = FULL.to_json()
    assert json.loads(text)["version"] == SCHEMA_VERSION
    assert Inventory.from_json(text) == FULL


def test_capabilities_round_trip_and_name_classes():
    caps = FULL.to_capabilities()
    assert {"hw:gpu", "hw:cuda", "hw:rocm", "hw:opencl", "hw:vulkan"} <= set(caps)
    assert not any(" " in c for c in caps), "a capability word must never hold a space"
    back = Inventory.from_capabilities(["revert", "root-on-testbed", *caps, "has_internet"])
    assert back is not None
    assert back.devices == FULL.devices and back.cpu == CPU


def test_no_hardware_capabilities_means_no_inventory():
    assert Inventory.from_capabilities(["revert", "isolation-container"]) is None


def test_newer_fields_are_ignored_older_versions_refused():
    data = FULL.to_dict()
    data["devices"][0]["frobnication"] = 3
    assert Inventory.from_dict(data).devices[0] == H100
    data["version"] = SCHEMA_VERSION + 1
    with pytest.raises(InventoryError, match="not supported"):
        Inventory.from_dict(data)


@pytest.mark.parametrize("text", ["", "[]", '{"version": 1, "devices": [3]}', "{nope"])
def test_garbage_is_an_inventory_error(text):
    with pytest.raises(InventoryError):
        Inventory.from_json(text)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *args], capture_output=True, text=True, check=False
    )


def test_match_command_against_a_saved_inventory(tmp_path):
    saved = tmp_path / "dgx.json"
    saved.write_text(FULL.to_json())
    ok = run_cli("match", "--inventory", str(saved), "cuda:cc>=8.0", "rocm:gfx90a")
    assert ok.returncode == 0, ok.stderr
    assert "cuda:cc>=8.0 satisfied: 1 CUDA device fits (NVIDIA H100 80GB HBM3, cc 9.0)" in ok.stdout
    no = run_cli("match", "--inventory", str(saved), "cuda:count>=2")
    assert no.returncode == 1
    assert "machine has 1 CUDA device (NVIDIA H100 80GB HBM3); asked for count>=2" in no.stdout
    bad = run_cli("match", "--inventory", str(saved), "cdua")
    assert bad.returncode == 2
    assert "did you mean 'cuda'?" in bad.stderr and "Traceback" not in bad.stderr
    as_json = run_cli("match", "--json", "--inventory", str(saved), "opencl:type=cpu")
    assert json.loads(as_json.stdout)[0]["satisfied"] is True


def test_unreadable_inventory_is_a_clear_error(tmp_path):
    missing = run_cli("match", "--inventory", str(tmp_path / "nope.json"), "cuda")
    assert missing.returncode == 2
    assert "cannot read inventory" in missing.stderr and "Traceback" not in missing.stderr
