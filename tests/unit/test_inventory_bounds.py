"""Bad inventories get a clear InventoryError, never a crash or a hang (issue 9, point 5/9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.base import bounds
from autopkgtest_hw.locks.allocate import AllocationError, select
from autopkgtest_hw.spec.inventory import Device, Inventory, InventoryError

from .test_allocate import INV


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"version": true}', "version a boolean is not supported"),
        (b'{"version": 1.0}', "version a number is not supported"),
        (b'{"version": 1, "devices": [{"model": "\\ud800"}]}', "lone surrogate"),
        (b'{"version": 1, "devices": [{"model": 5}]}', "Device.model: expected a string"),
        (b'{"version": 1, "devices": [{"classes": "gpu"}]}', "Device.classes: expected a list"),
        (b'{"version": 1, "devices": [{"index": "0"}]}', "Device.index: expected a whole"),
        (b'{"version": 1, "devices": [{"index": true}]}', "Device.index: expected a whole"),
        (b'{"version": 1, "devices": [{"mig_mode": 1}]}', "Device.mig_mode: expected true"),
        (b'{"version": 1, "devices": {"a": 1}}', "devices: expected a list"),
        (b'{"version": 1, "devices": [7]}', "Device: expected an object"),
        (b'{"version": 1, "cpu": {"cores": -1}}', "Cpu.cores: expected a whole"),
        (b'{"version": 1, "detectors": [{"status": "ok"}]}', "DetectorReport: missing"),
    ],
    ids=lambda v: v[:30] if isinstance(v, str) else "",
)
def test_bad_inventories_are_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "inv.json"
    path.write_bytes(content)
    with pytest.raises(InventoryError, match=message):
        Inventory.load(str(path))
    r = cli("detect", "--inventory", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr and message.split()[0] in r.stderr


def test_devices_and_fifos_are_never_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        with pytest.raises(InventoryError, match="not a regular file"):
            Inventory.load(path)


def test_size_and_device_count_are_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (bounds.MAX_INVENTORY_BYTES + 1))
    with pytest.raises(InventoryError, match="too large for an inventory"):
        Inventory.load(str(big))
    many = {"version": 1, "devices": [{"classes": ["gpu"]}] * (bounds.MAX_DEVICES + 1)}
    with pytest.raises(InventoryError, match=f"at most {bounds.MAX_DEVICES} are read"):
        Inventory.from_dict(many)


def test_a_good_inventory_still_round_trips() -> None:
    d = Device(classes=("gpu", "cuda"), model="x\x1b[2J", memory=2**40, mig_mode=False, index=0)
    inv = Inventory(devices=(d,))
    assert Inventory.from_json(inv.to_json()) == inv


@pytest.mark.parametrize("selector", ["²", "٣", "9" * 5000])
def test_unicode_and_huge_digits_are_not_indexes(selector: str) -> None:
    with pytest.raises(AllocationError, match="--gpu"):
        select(INV, [selector])
