"""A stub ``libnvidia-ml.so.1`` (fake_nvml.c) and the fixture that builds it.

Use it in a subprocess with ``LD_LIBRARY_PATH=<fixture dir>`` so pynvml's real
ctypes loading finds it; the ``FAKE_NVML_*`` knobs in fake_nvml.c choose what
it reports.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIBRARY = "libnvidia-ml.so.1"


def build(dest: Path) -> Path:
    """Compile the stub into ``dest``; return the directory for LD_LIBRARY_PATH."""
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            "-o",
            str(dest / LIBRARY),
            str(SOURCE),
        ],
        check=True,
    )
    return dest


@pytest.fixture(scope="session")
def nvml_stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding a freshly compiled stub libnvidia-ml.so.1."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the stub libnvidia-ml.so.1")
    return build(tmp_path_factory.mktemp("nvml-stub"))
