"""Hardware video codecs through VA-API: ``vainfo`` on each DRM render node.

Fills ``video_decode`` and ``video_encode`` (``video:decode=h264``,
``video:encode=hevc``) for the GPU that owns the render node.  Without
vainfo or a VA-API driver for a GPU its codecs are unknown; the ``video``
class itself comes from the kernel driver (classes.py).  NVIDIA's encoders
come from NVML (detect/nvml.py).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from autopkgtest_hw.detect.base import OK, Inputs, Unavailable, detector, no_devices, plural
from autopkgtest_hw.spec.hardware import LIBRARY_DIRS, normalise_address
from autopkgtest_hw.spec.inventory import DetectorReport, Device

NAME = "vaapi"
TIMEOUT = 10  # seconds per render node
MAX_OUTPUT = 1 << 20
MAX_NODES = 32
RENDER_NODES = "/dev/dri/renderD*"
#: libva's drivers (Mesa's, intel-media-va-driver's, ...), where Debian installs them.
VA_DRIVERS = tuple(f"{d}/dri/*_drv_video.so" for d in LIBRARY_DIRS)

_ENTRY_RE = re.compile(r"^\s*VAProfile(\w+?)\s*:\s*VAEntrypoint(\w+)\s*$")
#: VA-API profile name prefixes -> the codec words of the spec language.
_PROFILES = (
    ("H264", "h264"),
    ("HEVC", "hevc"),
    ("AV1", "av1"),
    ("VP9", "vp9"),
    ("VP8", "vp8"),
    ("MPEG2", "mpeg2"),
    ("VC1", "vc1"),
    ("JPEG", "jpeg"),
)
_DECODE = frozenset({"VLD"})
_ENCODE = frozenset({"EncSlice", "EncSliceLP", "EncPicture"})


@detector(
    NAME,
    order=50,
    empty=no_devices,
    inputs=Inputs(
        tools=("vainfo",),
        libraries=("libva.so.2", "libva-drm.so.2"),
        env=("LIBVA_*",),
        paths=(*VA_DRIVERS, "$LIBVA_DRIVERS_PATH"),
        nodes=(RENDER_NODES,),
    ),
)
def detect() -> tuple[list[Device], DetectorReport]:
    exe = shutil.which("vainfo")
    if exe is None:
        raise Unavailable("vainfo is not installed (Debian: vainfo)")
    nodes = sorted(glob.glob(RENDER_NODES))[:MAX_NODES]
    if not nodes:
        raise Unavailable("no DRM render node")
    devices: list[Device] = []
    problems: list[str] = []
    for node in nodes:
        address = render_node_address(node)
        if address is None:
            continue
        text, error = _vainfo(exe, node)
        if error:
            problems.append(f"{os.path.basename(node)}: {error}")
            continue
        decode, encode = parse_vainfo(text)
        devices.append(
            Device(
                pci_address=address,
                video_decode=decode,
                video_encode=encode,
                video_known=("decode", "encode"),
                sources=(NAME,),
            )
        )
    detail = "; ".join([plural(len(devices), "GPU"), *problems])
    return devices, DetectorReport(NAME, OK, detail, len(devices))


def parse_vainfo(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The codecs ``vainfo`` lists with a decode (VLD) and with an encode entry point."""
    decode: dict[str, None] = {}
    encode: dict[str, None] = {}
    for line in text.splitlines():
        m = _ENTRY_RE.match(line)
        if not m:
            continue
        codec = next((word for prefix, word in _PROFILES if m.group(1).startswith(prefix)), None)
        if codec is None:
            continue
        if m.group(2) in _DECODE:
            decode[codec] = None
        elif m.group(2) in _ENCODE:
            encode[codec] = None
    return tuple(decode), tuple(encode)


def render_node_address(node: str, sys_class: str = "/sys/class/drm") -> str | None:
    """The PCI address of the GPU owning ``/dev/dri/renderDN``."""
    link = os.path.join(sys_class, os.path.basename(node), "device")
    try:
        return normalise_address(os.path.basename(os.path.realpath(link)))
    except OSError:
        return None


def _vainfo(exe: str, node: str) -> tuple[str, str | None]:
    try:
        done = subprocess.run(
            [exe, "--display", "drm", "--device", node],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "", f"vainfo took more than {TIMEOUT} s"
    text = done.stdout[:MAX_OUTPUT].decode(errors="replace")
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["failed"]
        return "", f"vainfo: {lines[-1].strip()[:200]}"
    return text, None
