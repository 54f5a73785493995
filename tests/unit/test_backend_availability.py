"""Each backend says whether this host can pass devices into its testbeds; status shows it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from autopkgtest_hw.virt.backends import Backend

HOST = Path(__file__).resolve().parents[1] / "data" / "hosts" / "no-gpu-server.json"


def _status(
    tmp_path: Path, *extra: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = None
    if path is not None:
        import os

        env = {**os.environ, "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", "status", "--inventory", str(HOST),
         "--lock-dir", str(tmp_path / "locks"), *extra],
        capture_output=True, text=True, timeout=60, check=True, env=env,
    )  # fmt: skip


def test_status_lists_every_backend_and_why_one_cannot_work(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("unshare",):  # podman and docker are not on this PATH
        (bin_dir / tool).symlink_to(shutil.which(tool) or "/bin/true")
    data = json.loads(_status(tmp_path, "--json", path=str(bin_dir)).stdout)
    testbeds = {t["name"]: t for t in data["testbeds"]}
    assert set(testbeds) == set(Backend.registry)
    assert testbeds["null"]["available"] is True
    assert testbeds["unshare"]["available"] is True
    assert testbeds["podman"] == {
        "name": "podman",
        "available": False,
        "reason": "podman is not on PATH",
    }
    text = _status(tmp_path, path=str(bin_dir)).stdout
    assert "Testbeds this host can pass devices into: null, " in text
    assert "  not podman: podman is not on PATH" in text
