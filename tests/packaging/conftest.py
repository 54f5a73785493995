"""Session fixture for the packaging tests: the .deb built once by tools/build-deb.sh.

tools/build-deb.sh exports HEAD with git archive (what CI has: a fresh clone),
runs ``dpkg-buildpackage -us -uc`` there and lintian on the result.  Set
AUTOPKGTEST_HW_DEB_WORKTREE=1 to build the working tree instead (tracked and
untracked files that git does not ignore), for trying uncommitted changes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What Debian's tools see on a build daemon: no pyenv shim, no virtual environment.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "packaging: builds and checks the Debian package (about a minute; "
        "deselect with -m 'not packaging')",
    )


def system_env(**extra: str) -> dict[str, str]:
    """The environment a user of the installed package has."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PATH"] = SYSTEM_PATH
    env["LC_ALL"] = "C.UTF-8"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Built:
    """What tools/build-deb.sh left in its output directory."""

    outdir: Path
    version: str

    @property
    def deb(self) -> Path:
        return self.outdir / f"autopkgtest-hw_{self.version}_all.deb"

    @property
    def dsc(self) -> Path:
        return self.outdir / f"autopkgtest-hw_{self.version}.dsc"

    @property
    def tarball(self) -> Path:
        return self.outdir / f"autopkgtest-hw_{self.version}.tar.xz"

    @property
    def changes(self) -> Path:
        arch = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return self.outdir / f"autopkgtest-hw_{self.version}_{arch}.changes"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    outdir = tmp_path_factory.mktemp("deb")
    cmd = ["sh", str(ROOT / "tools" / "build-deb.sh")]
    if os.environ.get("AUTOPKGTEST_HW_DEB_WORKTREE") == "1":
        cmd.append("--worktree")
    proc = subprocess.run(
        [*cmd, str(outdir)], cwd=ROOT, capture_output=True, text=True, env=system_env()
    )
    if proc.returncode != 0:
        pytest.fail(
            f"tools/build-deb.sh exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    version = subprocess.run(
        ["dpkg-parsechangelog", "-S", "Version", "-l", str(ROOT / "debian" / "changelog")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Built(outdir, version)


@pytest.fixture(scope="session")
def extracted(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb's files, unpacked with dpkg -x (nothing is installed)."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg", "-x", str(built.deb), str(root)], check=True)
    return root
