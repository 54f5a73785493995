"""What a person reads when the device is busy (issue 20): real virt servers, a real shell."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from autopkgtest_hw.locks.allocate import lock_name

from .fixtures import (
    GONE_WITHIN,
    HAVE_AUTOPKGTEST,
    IS_ROOT,
    VENV_BIN,
    Server,
    env,
    fake_nvidia,
    make_char_device,
    save_inventory,
)

pytestmark = pytest.mark.skipif(
    not (HAVE_AUTOPKGTEST and IS_ROOT), reason="needs autopkgtest and root (mknod, testbeds)"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[str, Server]]:
    """(inventory file, a virt server holding its one GPU)."""
    node = make_char_device(tmp_path / "gpu3", "nvidia3", 3)
    dev = fake_nvidia(node, index=3)
    inv = save_inventory(tmp_path / "inv.json", dev)
    server = Server(
        ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "null"], tmp_path / "h"
    )
    try:
        assert server.line() == "ok"
        assert (tmp_path / "locks" / lock_name(dev)).exists()
        yield inv, server
    finally:
        server.close()


def test_a_session_that_did_not_wait_does_not_say_the_devices_are_free(
    tmp_path: Path, holder: tuple[str, Server]
) -> None:
    inv, server = holder
    argv = [str(VENV_BIN / "autopkgtest-hw"), "shell", "--inventory", inv]
    argv += ["--lock-dir", str(tmp_path / "locks"), "--lock-timeout", "0", "--", "null"]
    r = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=GONE_WITHIN,
        env=env(),
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "not waiting (--lock-timeout 0): NVIDIA H100 PCIe" in out, out
    assert f"locked by pid {server.proc.pid}" in out, out
    assert "devices are free" not in out, out
    assert "no session was opened" in out, out
