"""The worker's state beside debci: why it stopped, read safely."""

from __future__ import annotations

import os
from pathlib import Path

from autopkgtest_hw.fleet.health import state_dir, stopped


def test_the_stop_reason_is_read_escaped_and_bounded(tmp_path: Path) -> None:
    assert stopped(tmp_path) is None
    (tmp_path / "disabled").write_bytes(b"3 passthrough failures \x1b[31m" + b"x" * 5000)
    why = stopped(tmp_path)
    assert why is not None and "\x1b" not in why
    assert "3 passthrough failures" in why and f"remove {tmp_path / 'disabled'}" in why
    assert len(why) < 1200


def test_a_planted_link_is_not_followed(tmp_path: Path) -> None:
    os.symlink("/etc/shadow", tmp_path / "disabled")
    why = stopped(tmp_path)
    assert why is not None and "cannot be read" in why and "root:" not in why


def test_the_state_directory_follows_debci_configuration() -> None:
    assert state_dir({"data_basedir": "/var/lib/debci/data"}) == Path("/var/lib/debci/data/hwgpu")
    assert state_dir({"data_basedir": "/d", "hwgpu_state_dir": "/s"}) == Path("/s")
    assert state_dir({}) is None
