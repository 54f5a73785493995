"""The example package examples/hwdemo, end to end, in an unshare testbed through hwgpu.

``autopkgtest-hw run examples/hwdemo -o OUT -- hwgpu unshare --tarball T``
with autopkgtest 5.28 and 6.0: opencl-cpu computes a real OpenCL kernel on
PoCL inside the testbed, cuda-smoke is skipped with the verdict (no CUDA
device here), plain passes.  The tarball has no apt lists, so autopkgtest
runs ``apt-get update`` as a setup command.  A few minutes per version.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .fixtures import AUTOPKGTEST_HW, ROOT, have_hwgpu, hw_env

pytestmark = pytest.mark.skipif(
    not have_hwgpu(), reason="autopkgtest-virt-hwgpu is not in this tree yet"
)

SUMMARY_LINE = re.compile(r"^(\S+) +(PASS|FAIL|FLAKY|SKIP|BROKEN)( .*)?$")


def test_hwdemo_through_hwgpu_unshare(
    tmp_path: Path, autopkgtest_program: Path | None, bookworm_tarball: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            str(AUTOPKGTEST_HW),
            "run",
            "--setup-commands=apt-get update -q",
            str(ROOT / "examples" / "hwdemo"),
            "-o",
            str(out),
            "--",
            "hwgpu",
            "unshare",
            "--tarball",
            str(bookworm_tarball),
        ],
        env=hw_env(autopkgtest_program),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1200,
    )
    summary = (out / "summary").read_text().splitlines()
    assert proc.returncode == 2, f"{summary}\n{proc.stderr[-6000:]}"
    for line in summary:  # autopkgtest's '%-20s %s' lines
        assert SUMMARY_LINE.match(line), line
        assert line[20] == " " and line[:20].rstrip() == line.split()[0]
    results = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in summary}
    assert results["opencl-cpu"] == "PASS"
    assert results["cuda-smoke"] == (
        "SKIP needs-hw:cuda:cc>=7.0 not satisfied: testbed has no CUDA device"
    )
    assert results["plain"] == "PASS"
    # the OpenCL test really computed on the testbed's device
    log = (out / "log").read_text(errors="replace")
    assert "needs-hw:opencl:type=cpu satisfied" in log
    assert re.search(r"device: .*\(Portable Computing Language, OpenCL", log), log[-3000:]
    assert re.search(r"elements match numpy", log)
