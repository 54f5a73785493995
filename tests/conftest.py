"""Shared pytest fixtures."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def console_transcripts(doc: Path, skip_blocks: int = 0) -> list[tuple[str, list[str]]]:
    """``(command, output lines)`` for each ``$ `` line of the doc's console blocks."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", doc.read_text(), re.S)[skip_blocks:]:
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            else:
                out[-1][1].append(line)
    return out


@pytest.fixture
def project_env() -> dict[str, str]:
    """An environment whose PATH finds this checkout's commands first."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'virt-server'}:{VENV_BIN}:{env.get('PATH', '')}"
    return env


@pytest.fixture(autouse=True)
def _own_inventory_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets an empty host inventory cache of its own.

    Tests fake hardware with knobs the fingerprint cannot know (the NVML stub's
    FAKE_NVML_*), so one test's answer must not be another's cached one; the
    commands they run still write and read the cache as on a real host.
    """
    cache_dir = tmp_path_factory.mktemp("inventory-cache")
    cache_dir.chmod(0o755)
    monkeypatch.setenv("AUTOPKGTEST_HW_CACHE_DIR", str(cache_dir))
