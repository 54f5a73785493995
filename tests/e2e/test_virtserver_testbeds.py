"""A device node passed into real unshare and podman testbeds, seen from inside by the test.

The "GPU" is a real character device (195:N, NVIDIA's major) made with mknod
in a directory of its own, listed in a pinned inventory.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .fixtures import (
    GONE_WITHIN,
    Server,
    autopkgtest,
    fake_nvidia,
    lock_is_free,
    make_char_device,
    make_package,
    needs_root_and_autopkgtest,
    one_fake_gpu,
    opened,
    process_gone,
    save_inventory,
)

pytestmark = needs_root_and_autopkgtest("mknod, testbeds")

IMAGE = "localhost/autopkgtest-hw-vs:bookworm"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


@pytest.fixture(scope="session")
def podman_image(bookworm_tarball: Path) -> str:
    """A local image imported from the bookworm tarball (no registry)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    have = subprocess.run([*PODMAN, "image", "exists", IMAGE], check=False)
    if have.returncode != 0:
        proc = subprocess.run(
            [*PODMAN, "import", str(bookworm_tarball), IMAGE],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"podman cannot import an image here: {proc.stderr.strip()[-500:]}")
    return IMAGE


def containers() -> set[str]:
    out = subprocess.run(
        [*PODMAN, "ps", "-a", "--format", "{{.ID}}"], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.fixture
def node_inventory(tmp_path: Path) -> tuple[str, str, str]:
    """(inventory file, device node, lock file) for one fake GPU in a dedicated directory."""
    return one_fake_gpu(tmp_path, 3)


def sees_node_package(tmp_path: Path, node: str) -> Path:
    script = f'test -c {node}\nstat -c "%F %t:%T" {node}\n'
    return make_package(tmp_path, {"sees-gpu": script})


def test_unshare_528_testbed_sees_the_node_through_its_bound_directory(
    tmp_path: Path, bookworm_tarball: Path, node_inventory: tuple[str, str, str]
) -> None:
    inv, node, lock = node_inventory
    src = sees_node_package(tmp_path, node)
    virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    virt += ["unshare", "--tarball", str(bookworm_tarball)]
    run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary == {"sees-gpu": "PASS"}
    assert "character special file c3:3" in run.stdout + run.stderr  # 195 = 0xc3
    assert f"bind-mounting directories (this server binds no files): {Path(node).parent}" in (
        run.stderr
    )
    assert "hw:cuda" in run.capabilities()
    assert lock_is_free(lock)


def test_unshare_528_refuses_a_node_in_dev_before_starting(
    tmp_path: Path, bookworm_tarball: Path
) -> None:
    inv = save_inventory(tmp_path / "inv.json", fake_nvidia("/dev/null"))
    src = make_package(tmp_path, {"smoke": "true"})
    virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    virt += ["unshare", "--tarball", str(bookworm_tarball)]
    run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 16
    assert "binds directories only, and /dev holds every device of the host" in run.stderr


def test_unshare_60_binds_the_node_itself(
    tmp_path: Path,
    bookworm_tarball: Path,
    node_inventory: tuple[str, str, str],
    autopkgtest_new: Path,
) -> None:
    """autopkgtest 6.0's own unshare server binds files; each revert is re-checked."""
    inv, node, _ = node_inventory
    server = autopkgtest_new.parent.parent / "virt" / "autopkgtest-virt-unshare"
    src = make_package(tmp_path, {"sees-gpu": f"test -c {node}", "again": f"test -c {node}"})
    virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    virt += [str(server), "--tarball", str(bookworm_tarball)]
    run = autopkgtest(src, tmp_path / "out", virt, program=autopkgtest_new)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary == {"sees-gpu": "PASS", "again": "PASS"}
    assert f"bind-mounting files: {node}" in run.stderr


def test_podman_testbed_sees_only_the_allocated_node(
    tmp_path: Path, podman_image: str, node_inventory: tuple[str, str, str]
) -> None:
    inv, node, lock = node_inventory
    other = make_char_device(tmp_path / "gpu3", "nvidia4", 4)  # another GPU's node, same dir
    src = make_package(tmp_path, {"sees-gpu": f"test -c {node}\n! test -e {other}\necho only mine"})
    before = containers()
    virt = ["hwgpu", "--inventory", inv, "--lock-dir", str(tmp_path / "locks")]
    virt += ["--cdi-dir", str(tmp_path / "no-cdi"), "podman", podman_image]
    run = autopkgtest(src, tmp_path / "out", virt)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary == {"sees-gpu": "PASS"}
    assert f"podman passthrough: device nodes {node}" in run.stderr
    assert containers() == before
    assert lock_is_free(lock)


def test_sigterm_to_the_proxy_removes_the_container(
    tmp_path: Path, podman_image: str, node_inventory: tuple[str, str, str]
) -> None:
    inv, _, lock = node_inventory
    before = containers()
    args = ["--inventory", inv, "--lock-dir", str(tmp_path / "locks"), "podman", podman_image]
    s = Server(args, tmp_path / "stderr")
    try:
        opened(s)
        inner = s.inner_pid()
        assert len(containers() - before) == 1
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=GONE_WITHIN) == -signal.SIGTERM
        assert process_gone(inner)
    finally:
        s.close()
    assert containers() == before
    assert lock_is_free(lock)
