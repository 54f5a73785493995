"""The real autopkgtest with ``-- hwgpu null``: capabilities, device checks, exit codes."""

from __future__ import annotations

from pathlib import Path

from autopkgtest_hw.spec.inventory import Inventory

from .fixtures import (
    autopkgtest,
    fake_nvidia,
    make_char_device,
    make_package,
    needs_root_and_autopkgtest,
    save_inventory,
)

pytestmark = needs_root_and_autopkgtest("mknod, null testbed")


def test_hwgpu_null_detected_host_advertises_cpu_and_test_passes(tmp_path: Path) -> None:
    src = make_package(tmp_path, {"smoke": "echo hello"})
    run = autopkgtest(
        src, tmp_path / "out", ["hwgpu", "--lock-dir", str(tmp_path / "locks"), "null"]
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary == {"smoke": "PASS"}
    caps = run.capabilities()
    assert any(c.startswith("hw-cpu=") for c in caps), caps
    inv = run.hw_inventory()
    assert inv is not None
    assert inv.cpu.arch and inv.cpu.cores and inv.cpu.memory
    # The inner server's own capabilities are still there.
    assert "root-on-testbed" in caps


def test_hwgpu_null_with_pinned_inventory_advertises_the_device(tmp_path: Path) -> None:
    node = make_char_device(tmp_path / "gpu0", "nvidia0", 0)
    inv_file = save_inventory(tmp_path / "inv.json", fake_nvidia(node))
    src = make_package(tmp_path, {"sees-gpu": f"test -c {node}\necho node ok"})
    virt = ["hwgpu", "--inventory", inv_file, "--lock-dir", str(tmp_path / "locks"), "null"]
    run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary == {"sees-gpu": "PASS"}
    caps = run.capabilities()
    assert "hw:cuda" in caps and "hw:gpu" in caps
    inv = run.hw_inventory()
    assert isinstance(inv, Inventory)
    [dev] = inv.devices
    assert dev.uuid == "GPU-00000000-0000-0000-0000-000000000000"
    assert dev.device_nodes == (node,)
    # The log records which device the testbed got.
    assert "testbed device: nvidia 'NVIDIA H100 PCIe' at 0000:65:00.0 [10de:2331]" in run.stderr
    assert "UUID GPU-00000000-0000-0000-0000-000000000000" in run.stderr


def test_missing_device_node_is_a_testbed_failure_exit_16(tmp_path: Path) -> None:
    gone = str(tmp_path / "gpu0" / "nvidia0")  # never created
    inv_file = save_inventory(tmp_path / "inv.json", fake_nvidia(gone))
    src = make_package(tmp_path, {"smoke": "true"})
    virt = ["hwgpu", "--inventory", inv_file, "--lock-dir", str(tmp_path / "locks"), "null"]
    run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 16, run.stderr[-3000:]
    assert f"{gone} (missing)" in run.stderr
    assert "hw-passthrough-failed" in run.stderr
    assert "testbed failure" in run.stderr
    assert "smoke" not in run.summary
