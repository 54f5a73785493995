"""podman and docker: CDI names where a spec lists the device, else device nodes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from autopkgtest_hw.virt.backends import HostPaths
from autopkgtest_hw.virt.backends.podman import LABEL, PodmanBackend, cdi_name

from .backend_helpers import amd, make, nvidia

# -- podman / docker ---------------------------------------------------------------


def write_cdi(directory: Path, spec: dict[str, object], name: str = "nvidia.json") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(spec))


NVIDIA_CDI = {
    "cdiVersion": "0.5.0",
    "kind": "nvidia.com/gpu",
    "devices": [
        {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
        {"name": "GPU-11111110-2222-3333-4444-555555555555",
         "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
        {"name": "all", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
    ],
}  # fmt: skip


def test_podman_uses_the_cdi_name_when_a_spec_lists_the_device(tmp_path: Path) -> None:
    write_cdi(tmp_path / "cdi", NVIDIA_CDI)
    d = nvidia(("/dev/nvidia0", "/dev/nvidiactl"))
    b = make(PodmanBackend, "podman", d, paths=HostPaths(cdi_dirs=(str(tmp_path / "cdi"),)))
    args = b.plan([d]).inner_args(["debian:sid"])
    assert args[:-1] == [
        "debian:sid",
        "--device=nvidia.com/gpu=GPU-11111110-2222-3333-4444-555555555555",
    ]
    # the container is labelled, to be found and removed if the inner server dies
    assert args[-1] == f"--label={LABEL}={b.run_token}"
    assert b.leftovers()[0]["what"] == f"containers {LABEL}={b.run_token}"
    assert "CDI devices nvidia.com/gpu=GPU-1111" in b.plan([d]).description


def test_cdi_yaml_spec_and_index_name(tmp_path: Path) -> None:
    spec = dict(NVIDIA_CDI, devices=[NVIDIA_CDI["devices"][0]])  # type: ignore[index]
    pytest.importorskip("yaml")
    import yaml

    (tmp_path / "nvidia.yaml").write_text(yaml.safe_dump(spec))
    d = nvidia(("/dev/nvidia0",))
    b = make(PodmanBackend, "podman", d, paths=HostPaths(cdi_dirs=(str(tmp_path),)))
    assert b.plan([d]).inner_args(["img"])[:-1] == ["img", "--device=nvidia.com/gpu=0"]


def test_amd_cdi_device_found_by_its_render_node(tmp_path: Path) -> None:
    spec = {
        "cdiVersion": "0.5.0",
        "kind": "amd.com/gpu",
        "devices": [
            {"name": "1", "containerEdits": {"deviceNodes": [
                {"path": "/dev/dri/card2"}, {"path": "/dev/dri/renderD129"},
                {"path": "/dev/kfd"}]}},
        ],
    }  # fmt: skip
    d = amd(("/dev/dri/card2", "/dev/dri/renderD129", "/dev/kfd"))
    assert cdi_name(d, [spec]) == "amd.com/gpu=1"


def test_podman_without_cdi_passes_only_the_allocated_nodes_and_their_groups(
    tmp_path: Path,
) -> None:
    (tmp_path / "dri").mkdir()
    nodes = []
    for i, n in enumerate(("card0", "renderD128")):
        p = tmp_path / "dri" / n
        p.touch()
        if os.geteuid() == 0:
            os.chown(p, -1, 40 + i)
        nodes.append(str(p))
    d = amd(tuple(nodes))
    other = amd((str(tmp_path / "dri" / "card1"),), address="0000:04:00.0")
    b = make(PodmanBackend, "podman", d, other, paths=HostPaths(cdi_dirs=(str(tmp_path / "none"),)))
    args = b.plan([d]).inner_args(["img", "--", "--init"])
    assert args[:3] == ["img", "--", "--init"]
    assert [a for a in args if a.startswith("--device=")] == [f"--device={n}" for n in nodes] + (
        ["--device=/dev/kfd"] if os.path.exists("/dev/kfd") else []
    )
    if os.geteuid() == 0:
        assert [a for a in args if a.startswith("--group-add=")] == [
            "--group-add=40",
            "--group-add=41",
        ]
    assert not any("card1" in a for a in args)


def test_podman_synopsis_takes_extra_run_options_after_the_image() -> None:
    """Our options go last; the installed server collects them as 'podman run' args."""
    server = shutil.which("autopkgtest-virt-podman")
    if server is None:
        pytest.skip("autopkgtest-virt-podman is not installed")
    text = Path(server).read_text()
    assert "parser.add_argument('image'" in text
    assert "nargs=argparse.REMAINDER" in text
