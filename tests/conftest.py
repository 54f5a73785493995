"""Shared pytest fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def project_env() -> dict[str, str]:
    """An environment whose PATH finds this checkout's commands first."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'virt-server'}:{VENV_BIN}:{env.get('PATH', '')}"
    return env
