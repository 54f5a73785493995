"""Passthrough adapters: which options each inner server gets, from fixture hosts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from autopkgtest_hw.backends import (
    Backend,
    FallbackBackend,
    HostPaths,
    PassthroughError,
    backend_class,
    kind_of,
)
from autopkgtest_hw.backends.podman import PodmanBackend, cdi_name
from autopkgtest_hw.backends.qemu import QemuBackend, merge_qemu_options
from autopkgtest_hw.backends.unshare import UnshareBackend, binds_files
from autopkgtest_hw.inventory import Device, Inventory
from autopkgtest_hw.probe import PciFunction, ProbeResult

DATA = Path(__file__).resolve().parent.parent / "data"
UNSHARE_528 = "/usr/bin/autopkgtest-virt-unshare"


def nvidia(nodes: tuple[str, ...], index: int = 0, address: str = "0000:65:00.0") -> Device:
    return Device(
        classes=("gpu", "cuda"),
        vendor="nvidia",
        model="NVIDIA H100 PCIe",
        pci_address=address,
        pci_id="10de:2331",
        pci_class="0x030200",
        driver="nvidia",
        device_nodes=nodes,
        uuid=f"GPU-1111111{index}-2222-3333-4444-555555555555",
        index=index,
        sources=("udev", "nvml"),
    )


def amd(nodes: tuple[str, ...], address: str = "0000:03:00.0") -> Device:
    return Device(
        classes=("gpu", "rocm"),
        vendor="amd",
        model="Instinct MI210",
        pci_address=address,
        pci_id="1002:740f",
        pci_class="0x038000",
        arch="gfx90a",
        driver="amdgpu",
        device_nodes=nodes,
        sources=("udev",),
    )


def make(
    cls: type[Backend], server: str, *devices: Device, paths: HostPaths | None = None
) -> Backend:
    return cls(kind_of(server), server, Inventory(devices=devices), paths or HostPaths())


# -- registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ("null", "null"),
        ("autopkgtest-virt-null", "null"),
        ("/usr/bin/autopkgtest-virt-ssh", "ssh"),
        ("unshare", "unshare"),
        ("podman", "podman"),
        ("docker", "podman"),
        ("podman+rocm", "podman"),
        ("autopkgtest-virt-qemu+rocm", "qemu"),
    ],
)
def test_inner_names_map_to_their_adapter(inner: str, expected: str) -> None:
    assert backend_class(inner).name == expected


def test_unknown_inner_server_gets_the_fallback_that_passes_nothing() -> None:
    cls = backend_class("lxc")
    assert cls is FallbackBackend
    b = make(cls, "/usr/bin/autopkgtest-virt-lxc", nvidia(("/dev/nvidia0",)))
    assert b.inner_args(["img"], b.inventory.devices) == ["img"]
    assert not b.strict
    assert "no passthrough adapter for 'lxc'" in b.describe([])


def test_null_passes_nothing_and_says_so() -> None:
    b = make(backend_class("null"), "/usr/bin/autopkgtest-virt-null", nvidia(("/dev/nvidia0",)))
    assert b.inner_args([], b.inventory.devices) == []
    assert "nothing to pass" in b.describe(b.inventory.devices)
    assert b.strict


def test_node_check_reports_each_missing_node() -> None:
    d = nvidia(("/dev/nvidia0", "/dev/nvidiactl"))
    b = make(backend_class("null"), "null", d)
    probe = ProbeResult(
        cpu=b.inventory.cpu, nodes={"/dev/nvidia0": "char", "/dev/nvidiactl": "not-char"}
    )
    present, problems = b.verify([d], probe)
    assert present == []
    assert problems == [
        f"NVIDIA H100 PCIe ({d.uuid}): /dev/nvidiactl (exists but is not a character device)"
    ]


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
    assert b.inner_args(["-t", "x.tar"], [d]) == [
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
    assert b.inner_args(["-t", "x.tar"], [d]) == [
        "-t", "x.tar", "--bind", str(tmp_path / "gpu0"), str(tmp_path / "gpu0"),
    ]  # fmt: skip


def test_unshare_528_refuses_dev_itself() -> None:
    d = nvidia(("/dev/nvidia0",))
    b = make(UnshareBackend, UNSHARE_528, d)
    with pytest.raises(PassthroughError, match=r"binds directories only, and /dev holds every"):
        b.inner_args([], [d])


def test_unshare_528_refuses_a_directory_shared_with_other_gpus(tmp_path: Path) -> None:
    dri = tmp_path / "dri"
    dri.mkdir()
    for n in ("card0", "renderD128", "card1", "renderD129"):
        (dri / n).touch()
    mine = amd((str(dri / "card0"), str(dri / "renderD128")))
    other = amd((str(dri / "card1"), str(dri / "renderD129")), address="0000:04:00.0")
    b = make(UnshareBackend, UNSHARE_528, mine, other)
    with pytest.raises(PassthroughError, match=r"also holds .*card1, .*renderD129"):
        b.inner_args([], [mine])
    # Both GPUs allocated: the directory is theirs alone.
    assert b.inner_args([], [mine, other]) == ["--bind", str(dri), str(dri)]


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
    args = b.inner_args(["debian:sid"], [d])
    assert args == [
        "debian:sid",
        "--device=nvidia.com/gpu=GPU-11111110-2222-3333-4444-555555555555",
    ]
    assert "CDI devices nvidia.com/gpu=GPU-1111" in b.describe([d])


def test_cdi_yaml_spec_and_index_name(tmp_path: Path) -> None:
    spec = dict(NVIDIA_CDI, devices=[NVIDIA_CDI["devices"][0]])  # type: ignore[index]
    pytest.importorskip("yaml")
    import yaml

    (tmp_path / "nvidia.yaml").write_text(yaml.safe_dump(spec))
    d = nvidia(("/dev/nvidia0",))
    b = make(PodmanBackend, "podman", d, paths=HostPaths(cdi_dirs=(str(tmp_path),)))
    assert b.inner_args(["img"], [d]) == ["img", "--device=nvidia.com/gpu=0"]


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
    args = b.inner_args(["img", "--", "--init"], [d])
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


# -- qemu -----------------------------------------------------------------------


def vfio_dir(tmp_path: Path, mode: int = 0o666) -> str:
    d = tmp_path / "vfio"
    d.mkdir()
    (d / "42").touch()
    os.chmod(d / "42", mode)
    return str(d)


def qemu(tmp_path: Path, tree: str, d: Device, vfio: str | None = None) -> QemuBackend:
    paths = HostPaths(sysfs_root=str(DATA / tree), vfio_dir=vfio or vfio_dir(tmp_path))
    b = make(QemuBackend, "qemu", d, paths=paths)
    assert isinstance(b, QemuBackend)
    return b


def test_qemu_passes_every_function_of_the_iommu_group_but_the_bridge(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d)
    args = b.inner_args(["--ram-size", "4096", "sid.img"], [d])
    assert args == [
        "--qemu-options=-device vfio-pci,host=0000:65:00.0 -device vfio-pci,host=0000:65:00.1",
        "--ram-size", "4096", "sid.img",
    ]  # fmt: skip


def test_qemu_merges_into_the_callers_qemu_options(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d)
    args = b.inner_args(["--qemu-options", "-machine q35", "sid.img"], [d])
    assert args[1] == (
        "-machine q35 -device vfio-pci,host=0000:65:00.0 -device vfio-pci,host=0000:65:00.1"
    )
    assert merge_qemu_options(["--qemu-options=-cpu host", "x.img"], "-device a")[0] == (
        "--qemu-options=-cpu host -device a"
    )


def test_qemu_unbound_group_stops_with_the_commands_that_bind_it(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-unbound", d)
    with pytest.raises(PassthroughError) as err:
        b.inner_args(["sid.img"], [d])
    text = str(err.value)
    assert "0000:65:00.0 (IOMMU group 42) is bound to nvidia, not vfio-pci" in text
    assert "echo vfio-pci > /sys/bus/pci/devices/0000:65:00.0/driver_override" in text
    assert "echo 0000:65:00.0 > /sys/bus/pci/devices/0000:65:00.0/driver/unbind" in text
    assert "echo 0000:65:00.1 > /sys/bus/pci/drivers/vfio-pci/bind" in text
    assert "modprobe vfio-pci" in text
    assert "0000:00:01.0" not in text  # the bridge stays with the host


def test_qemu_without_iommu_group_says_how_to_enable_it(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-no-iommu", d)
    with pytest.raises(PassthroughError, match="has no IOMMU group: enable the IOMMU"):
        b.inner_args([], [d])


def test_qemu_vfio_group_node_missing_or_inaccessible(tmp_path: Path) -> None:
    d = nvidia(())
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d, vfio=str(tmp_path / "nope"))
    with pytest.raises(PassthroughError, match=r"nope/42 does not exist"):
        b.inner_args([], [d])


def test_qemu_verifies_the_gpu_on_the_guest_pci_bus_by_id(tmp_path: Path) -> None:
    d = nvidia(("/dev/nvidia0",))
    b = qemu(tmp_path, "vs-sysfs-vfio-bound", d)
    assert b.nodes_to_check([d]) == []
    guest = ProbeResult(
        cpu=b.inventory.cpu,
        pci=(PciFunction("0000:00:05.0", "10de:2331", "nvidia"),),
    )
    [seen], problems = b.verify([d], guest)
    assert problems == []
    assert seen.pci_address == "0000:00:05.0" and seen.device_nodes == ()
    assert "cuda" in seen.classes
    empty = ProbeResult(cpu=b.inventory.cpu)
    assert b.verify([d], empty)[1] == [
        "NVIDIA H100 PCIe (0000:65:00.0, 10de:2331): no PCI function 10de:2331 in the VM"
    ]


def test_generated_device_option_is_one_real_qemu_knows() -> None:
    """qemu-system-x86_64 lists vfio-pci, and its host= property takes our address form."""
    qemu_bin = shutil.which("qemu-system-x86_64")
    if qemu_bin is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    listing = subprocess.run(
        [qemu_bin, "-device", "help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert 'name "vfio-pci"' in listing
    props = subprocess.run(
        [qemu_bin, "-device", "vfio-pci,help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "host=<str>" in props or "host=" in props


def test_real_qemu_parses_the_generated_options_and_looks_for_the_host_device(
    tmp_path: Path,
) -> None:
    """qemu accepts our words and fails only because this host has no such GPU."""
    qemu_bin = shutil.which("qemu-system-x86_64")
    if qemu_bin is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    d = nvidia(())
    words = qemu(tmp_path, "vs-sysfs-vfio-bound", d).qemu_words([d])
    proc = subprocess.run(
        [qemu_bin, "-machine", "q35", "-nodefaults", "-display", "none", "-S", *words],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "vfio /sys/bus/pci/devices/0000:65:00.0: no such host device" in proc.stderr
