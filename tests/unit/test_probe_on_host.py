"""The null testbed's probe, read in-process, says what the probe script says on this host."""

from __future__ import annotations

import os
from pathlib import Path

from autopkgtest_hw.virt import probe


def test_reading_this_host_in_process_equals_running_the_script_here(tmp_path: Path) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("")
    nodes = ["/dev/null", str(plain), str(tmp_path / "absent"), "/dev/zero"]
    by_script = probe.run(["env"], nodes)
    in_process = probe.on_this_host(nodes)
    assert in_process == by_script
    assert in_process.nodes == {
        "/dev/null": probe.PRESENT,
        str(plain): probe.NOT_CHAR,
        str(tmp_path / "absent"): probe.MISSING,
        "/dev/zero": probe.PRESENT,
    }
    assert in_process.cpu.cores == len(os.sched_getaffinity(0))
    assert in_process.cpu.arch and in_process.cpu.memory


def test_a_recorded_pci_tree_is_read_like_the_script_reads_it(tmp_path: Path) -> None:
    """Vendor and device ids, lower-case without 0x, and the bound driver's name."""
    devices = tmp_path / "bus/pci/devices"
    gpu = devices / "0000:41:00.0"
    gpu.mkdir(parents=True)
    (gpu / "vendor").write_text("0x10DE\n")
    (gpu / "device").write_text("0x2335\n")
    driver = tmp_path / "bus/pci/drivers/nvidia"
    driver.mkdir(parents=True)
    (gpu / "driver").symlink_to(driver)
    bridge = devices / "0000:00:01.0"
    bridge.mkdir()
    (bridge / "vendor").write_text("0x1022\n")
    (bridge / "device").write_text("0x1482\n")
    (devices / "0000:ff:00.0").mkdir()  # no vendor file: skipped, as the script skips it
    result = probe.on_this_host([], sysfs=str(tmp_path))
    assert result.pci == (
        probe.PciFunction("0000:00:01.0", "1022:1482", None),
        probe.PciFunction("0000:41:00.0", "10de:2335", "nvidia"),
    )
