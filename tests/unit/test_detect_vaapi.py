"""The VA-API detector: vainfo's profiles as the video:decode and video:encode codecs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopkgtest_hw.detect import detect_inventory, vaapi
from autopkgtest_hw.detect.merge import classify, merge
from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

DATA = Path(__file__).resolve().parents[1] / "data" / "vainfo"


def test_profiles_become_codecs() -> None:
    decode, encode = vaapi.parse_vainfo((DATA / "rx6800-radeonsi.txt").read_text())
    assert decode == ("mpeg2", "vc1", "h264", "hevc", "jpeg", "vp9", "av1")
    assert encode == ("h264", "hevc")


def test_a_render_node_belongs_to_its_pci_gpu(tmp_path: Path) -> None:
    gpu = tmp_path / "devices" / "pci0000:00" / "0000:03:00.0"
    gpu.mkdir(parents=True)
    (tmp_path / "renderD128").mkdir()
    os.symlink(gpu, tmp_path / "renderD128" / "device")
    assert vaapi.render_node_address("/dev/dri/renderD128", str(tmp_path)) == "0000:03:00.0"
    assert vaapi.render_node_address("/dev/dri/renderD129", str(tmp_path)) is None


def test_the_codecs_answer_the_video_keys_of_the_merged_gpu() -> None:
    decode, encode = vaapi.parse_vainfo((DATA / "rx6800-radeonsi.txt").read_text())
    udev = Device(
        vendor="amd",
        pci_address="0000:03:00.0",
        pci_class="0x030000",
        driver="amdgpu",
        sources=("udev",),
    )
    va = Device(
        pci_address="0000:03:00.0",
        video_decode=decode,
        video_encode=encode,
        video_known=("decode", "encode"),
        sources=("vaapi",),
    )
    (gpu,) = [classify(d) for d in merge([[udev], [va]])]
    machine = Inventory(devices=(gpu,))
    assert match(parse("video:decode=av1"), machine).satisfied
    assert match(parse("video:encode=hevc"), machine).satisfied
    verdict = match(parse("video:encode=av1"), machine)
    assert verdict.detail == "machine has 1 video device (0000:03:00.0, encode h264/hevc)"


def test_no_vainfo_is_unavailable_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    (report,) = [r for r in detect_inventory(["vaapi"]).detectors if r.name == "vaapi"]
    assert (report.status, report.detail) == (
        "unavailable",
        "vainfo is not installed (Debian: vainfo)",
    )


def test_a_recorded_intel_ihd_vainfo_gives_its_codecs() -> None:
    """A real iHD 24.1 recording (tests/data/vainfo/README.md): AV1 decode, no AV1 encode."""
    decode, encode = vaapi.parse_vainfo((DATA / "ihd-raptorlake-ubuntu2404.txt").read_text())
    assert set(decode) == {"mpeg2", "h264", "vc1", "jpeg", "vp8", "hevc", "vp9", "av1"}
    assert set(encode) == {"mpeg2", "h264", "jpeg", "hevc", "vp9"}
