"""A command imports only what it uses: the GPU libraries and python-debian stay unloaded.

Each case runs the real command line in a fresh interpreter and reads its
``sys.modules`` afterwards, so start-up cost cannot creep back unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("pyopencl", "pynvml", "pyudev", "debian", "apt_pkg", "numpy")

PROBE = """
import contextlib, io, json, sys
from autopkgtest_hw import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = cli.main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


def loaded(*argv: str, detectors: str | None = None) -> tuple[int, set[str]]:
    env = dict(os.environ)
    env.pop("AUTOPKGTEST_HW_DETECTORS", None)
    if detectors is not None:
        env["AUTOPKGTEST_HW_DETECTORS"] = detectors
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, check=False
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout.splitlines()[-1])
    return data["rc"], {m.split(".")[0] for m in data["modules"]}


def test_match_cpu_loads_no_gpu_library_and_no_python_debian() -> None:
    rc, modules = loaded("match", "cpu")
    assert rc == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("spec", ["cpu:cores>=1", "cpu:mem>=1M|cpu:cores>=1"])
def test_any_machine_spec_loads_no_gpu_library(spec: str) -> None:
    rc, modules = loaded("match", spec)
    assert rc == 0
    assert not modules & set(HEAVY)


def test_detect_from_the_cache_loads_no_gpu_library() -> None:
    rc, _ = loaded("detect", detectors="cpu,udev,nvml,opencl")
    assert rc == 0
    rc, second = loaded("detect", detectors="cpu,udev,nvml,opencl")
    assert rc == 0
    assert not second & set(HEAVY), sorted(second & set(HEAVY))


def test_a_device_spec_still_runs_the_device_detectors() -> None:
    """The guard is not bought by skipping detection: an OpenCL spec loads pyopencl."""
    _, modules = loaded("match", "opencl:type=any", detectors="cpu,opencl")
    assert "pyopencl" in modules
