"""unshare: bind mounts of the allocated nodes (files with 6.0, directories with 5.28)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopkgtest_hw.backends import PassthroughError
from autopkgtest_hw.backends.unshare import UnshareBackend, binds_files

from .backend_helpers import UNSHARE_528, amd, make, nvidia

# -- unshare --------------------------------------------------------------------


def test_installed_unshare_528_binds_directories_only() -> None:
    if not os.path.exists(UNSHARE_528):
        pytest.skip("autopkgtest-virt-unshare is not installed")
    assert not binds_files(UNSHARE_528)


def test_unshare_60_style_server_binds_each_node(tmp_path: Path) -> None:
    server = tmp_path / "autopkgtest-virt-unshare"
    server.write_text("#!/usr/bin/python3\n# binds files too\n")
    d = nvidia(("/dev/nvidia0", "/dev/nvidiactl"))
    b = make(UnshareBackend, str(server), d)
    assert b.plan([d]).inner_args(["-t", "x.tar"]) == [
        "-t", "x.tar",
        "--bind", "/dev/nvidia0", "/dev/nvidia0",
        "--bind", "/dev/nvidiactl", "/dev/nvidiactl",
    ]  # fmt: skip


def test_unshare_528_binds_a_dedicated_directory(tmp_path: Path) -> None:
    (tmp_path / "gpu0").mkdir()
    node = str(tmp_path / "gpu0" / "nvidia0")
    Path(node).touch()
    d = nvidia((node,))
    b = make(UnshareBackend, UNSHARE_528, d)
    assert b.plan([d]).inner_args(["-t", "x.tar"]) == [
        "-t", "x.tar", "--bind", str(tmp_path / "gpu0"), str(tmp_path / "gpu0"),
    ]  # fmt: skip


def test_unshare_528_refuses_dev_itself() -> None:
    d = nvidia(("/dev/nvidia0",))
    b = make(UnshareBackend, UNSHARE_528, d)
    with pytest.raises(PassthroughError, match=r"binds directories only, and /dev holds every"):
        b.plan([d]).inner_args([])


def test_unshare_528_refuses_a_directory_shared_with_other_gpus(tmp_path: Path) -> None:
    dri = tmp_path / "dri"
    dri.mkdir()
    for n in ("card0", "renderD128", "card1", "renderD129"):
        (dri / n).touch()
    mine = amd((str(dri / "card0"), str(dri / "renderD128")))
    other = amd((str(dri / "card1"), str(dri / "renderD129")), address="0000:04:00.0")
    b = make(UnshareBackend, UNSHARE_528, mine, other)
    with pytest.raises(PassthroughError, match=r"also holds .*card1, .*renderD129"):
        b.plan([mine]).inner_args([])
    # Both GPUs allocated: the directory is theirs alone.
    assert b.plan([mine, other]).inner_args([]) == ["--bind", str(dri), str(dri)]
