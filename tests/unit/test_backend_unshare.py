"""unshare: bind mounts of the allocated nodes (files with 6.0, directories with 5.28)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from autopkgtest_hw.locks.keeper import cleanup
from autopkgtest_hw.virt.backends import PassthroughError
from autopkgtest_hw.virt.backends.unshare import UnshareBackend, binds_files

from .backend_helpers import UNSHARE_528, amd, make, nvidia

# -- unshare --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter's work directory (unpack dir, private node dirs) goes under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


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
        "--unpack-dir", b.rootfs,
    ]  # fmt: skip


def test_unshare_528_binds_a_dedicated_directory(tmp_path: Path) -> None:
    (tmp_path / "gpu0").mkdir()
    node = str(tmp_path / "gpu0" / "nvidia0")
    Path(node).touch()
    d = nvidia((node,))
    b = make(UnshareBackend, UNSHARE_528, d)
    assert b.plan([d]).inner_args(["-t", "x.tar"]) == [
        "-t", "x.tar", "--bind", str(tmp_path / "gpu0"), str(tmp_path / "gpu0"),
        "--unpack-dir", b.rootfs,
    ]  # fmt: skip
    # the caller's own unpack directory wins; ours is where the keeper looks for leftovers
    assert b.plan([d]).inner_args(["-u", "/x"]) == [
        "-u", "/x", "--bind", str(tmp_path / "gpu0"), str(tmp_path / "gpu0"),
    ]  # fmt: skip
    (Path(b.rootfs) / "etc").mkdir(parents=True)
    assert cleanup(b.leftovers()) == [f"unpacked testbed {b.rootfs}"]  # what the keeper runs
    assert not os.path.exists(b.workdir)


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
    assert b.plan([mine, other]).inner_args([])[:3] == ["--bind", str(dri), str(dri)]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_unshare_528_binds_a_private_directory_of_just_the_allocated_nodes(
    tmp_path: Path,
) -> None:
    """Issue 9, point 8: a node the inventory does not know (card1) stays out."""
    dri = tmp_path / "dri"
    dri.mkdir()
    for minor, n in enumerate(("card0", "renderD128", "card1")):
        os.mknod(dri / n, 0o660 | stat.S_IFCHR, os.makedev(226, minor))
    mine = amd((str(dri / "card0"), str(dri / "renderD128")))
    b = make(UnshareBackend, UNSHARE_528, mine)
    args = b.plan([mine]).inner_args([])
    assert args[0] == "--bind" and args[2] == str(dri)
    private = Path(args[1])
    assert private.parent == Path(b.workdir)
    assert sorted(os.listdir(private)) == ["card0", "renderD128"]
    st = os.stat(private / "renderD128")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(226, 1)
