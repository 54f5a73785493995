"""Running ``autopkgtest-hw run`` as a user does, and making small test packages."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AUTOPKGTEST_HW = VENV_BIN / "autopkgtest-hw"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    summary: list[str]

    def line(self, test: str) -> str:
        """The one summary line of ``test`` (autopkgtest may print a SKIP twice)."""
        lines = {ln for ln in self.summary if ln.split(None, 1)[0] == test}
        assert len(lines) == 1, f"summary lines for {test}: {lines}\n{self.stderr[-4000:]}"
        return lines.pop()

    def result(self, test: str) -> str:
        return self.line(test).split(None, 1)[1]


def hw_env(program: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'virt-server'}:{VENV_BIN}:{env.get('PATH', '')}"
    env.pop("AUTOPKGTEST_HW_AUTOPKGTEST", None)
    if program is not None:
        env["AUTOPKGTEST_HW_AUTOPKGTEST"] = str(program)
    return env


def run_hw(args: list[str], program: Path | None, summary: Path, timeout: int = 900) -> Result:
    """``autopkgtest-hw run --summary-file=SUMMARY ARGS`` with ``program`` as autopkgtest."""
    proc = subprocess.run(
        [str(AUTOPKGTEST_HW), "run", f"--summary-file={summary}", *args],
        env=hw_env(program),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    lines = summary.read_text().splitlines() if summary.exists() else []
    return Result(proc.returncode, proc.stdout, proc.stderr, lines)


def make_package(where: Path, stanzas: list[str], scripts: dict[str, str] | None = None) -> Path:
    """A source tree with only debian/tests (autopkgtest runs it as built-tree, no build)."""
    tests = where / "debian" / "tests"
    tests.mkdir(parents=True)
    (tests / "control").write_text("\n".join(s.strip() + "\n" for s in stanzas))
    for name, text in (scripts or {}).items():
        path = tests / name
        path.write_text(text)
        path.chmod(0o755)
    return where


def command_test(
    name: str, restrictions: str = "", command: str = "true", depends: str = ""
) -> str:
    text = f"Test-Command: {command}\nFeatures: test-name={name}\nDepends: {depends}\n"
    if restrictions:
        text += f"Restrictions: {restrictions}\n"
    return text


POCL_CPU = {
    "classes": ["opencl"],
    "model": "pthread-AMD EPYC 7B13",
    "opencl_version": "3.0",
    "opencl_type": "cpu",
    "opencl_platform": "Portable Computing Language",
    "opencl_extensions": ["cl_khr_fp64"],
}
TESLA_T4 = {
    "classes": ["gpu", "cuda", "vulkan"],
    "vendor": "nvidia",
    "model": "Tesla T4",
    "pci_address": "0000:3b:00.0",
    "pci_id": "10de:1eb8",
    "memory": 16106127360,
    "arch": "sm_75",
    "compute_capability": "7.5",
    "driver": "nvidia",
    "driver_version": "535.104.05",
    "cuda_version": "12.2",
}


def write_inventory(path: Path, devices: list[dict[str, object]]) -> Path:
    """A saved inventory, as ``autopkgtest-hw detect --json`` writes it."""
    data = {
        "version": 1,
        "cpu": {"arch": "amd64", "vendor": "amd", "cores": 2, "memory": 8 << 30},
        "devices": devices,
        "detectors": [{"name": "saved", "status": "ok", "detail": "test", "devices": 0}],
    }
    path.write_text(json.dumps(data))
    return path


def have_hwgpu() -> bool:
    """Whether autopkgtest-virt-hwgpu is there (it is being written alongside)."""
    found = shutil.which("autopkgtest-virt-hwgpu", path=hw_env(None)["PATH"])
    return found is not None and importlib.util.find_spec("autopkgtest_hw.virtserver") is not None
