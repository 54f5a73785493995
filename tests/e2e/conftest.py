"""Session fixtures for end-to-end tests: a bookworm testbed tarball and autopkgtest 6.0.

Both are made once and cached in ~/.cache/autopkgtest-hw/ (XDG_CACHE_HOME
honoured), under a lock so that parallel sessions do not race:

- ``bookworm-<arch>.tar``: ``mmdebstrap --variant=apt bookworm`` (the same
  file tools/run-example.sh makes), for unshare testbeds.
- ``autopkgtest-6.0/``: the sid package, downloaded with apt through a private
  sources list (the system's own mirror, suite sid; the system's apt state and
  its autopkgtest 5.28 are left alone), unpacked with dpkg-deb and laid out like
  a git checkout (runner/, lib/, virt/, setup-commands/, debian/changelog), which
  is how autopkgtest runs from a tree: runner/autopkgtest finds lib/ beside it
  and puts virt/ first on PATH.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

AUTOPKGTEST_NEW = "6.0"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "autopkgtest-hw"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    with open(cache_dir() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def dpkg_arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="session")
def bookworm_tarball() -> Path:
    """A bookworm rootfs tarball for autopkgtest-virt-unshare (made once, ~25 s)."""
    tarball = cache_dir() / f"bookworm-{dpkg_arch()}.tar"
    with cache_lock("tarball"):
        if tarball.is_file() and tarball.stat().st_size > 0:
            return tarball
        if not shutil.which("mmdebstrap"):
            pytest.skip("mmdebstrap is not installed (tools/setup.sh installs it)")
        tmp = tarball.with_suffix(".tar.tmp")
        proc = subprocess.run(
            ["mmdebstrap", "--variant=apt", "--format=tar", "--quiet", "bookworm", str(tmp)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"mmdebstrap failed:\n{proc.stderr[-3000:]}"
        tmp.rename(tarball)
    return tarball


def system_mirror() -> str | None:
    """The first Debian mirror URI of the system's own apt sources (not -security)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") or path.name == "sources.list":
            try:
                texts.append(path.read_text())
            except OSError:
                continue
    for text in texts:
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M
        ):
            if "security" not in uri and uri.rstrip("/").endswith("/debian"):
                return uri
    return None


def download_sid_deb(package: str, version: str, workdir: Path) -> Path:
    """Download ``package=version`` from sid with a private apt configuration."""
    mirror = system_mirror()
    if mirror is None:
        raise RuntimeError("no Debian mirror found in the system's apt sources")
    (workdir / "lists/partial").mkdir(parents=True, exist_ok=True)
    (workdir / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    sources = workdir / "sid.sources"
    sources.write_text(
        f"Types: deb\nURIs: {mirror}\nSuites: sid\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    apt = [
        "apt-get",
        "-q",
        f"-oDir::Etc::sourcelist={sources}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={workdir / 'lists'}",
        f"-oDir::Cache={workdir / 'cache'}",
        "-oDir::State::status=/dev/null",
        "-oAcquire::Languages=none",
        "-oAPT::Sandbox::User=root",
    ]
    for step in (["update"], ["download", f"{package}={version}"]):
        proc = subprocess.run(apt + step, cwd=workdir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get {' '.join(step)}: {proc.stderr.strip()[-1500:]}")
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download left no {package} .deb")
    return debs[-1]


def lay_out_checkout(deb: Path, tree: Path) -> None:
    """Unpack ``deb`` and arrange it the way an autopkgtest git checkout is arranged."""
    with tempfile.TemporaryDirectory(dir=tree.parent) as tmp:
        unpacked = Path(tmp) / "unpacked"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        usr = unpacked / "usr"
        staging = Path(tmp) / "tree"
        (staging / "runner").mkdir(parents=True)
        (staging / "virt").mkdir()
        (staging / "debian").mkdir()
        shutil.copy2(usr / "bin/autopkgtest", staging / "runner/autopkgtest")
        for virt in (usr / "bin").glob("autopkgtest-virt-*"):
            shutil.copy(virt, staging / "virt" / virt.name, follow_symlinks=True)
        share = usr / "share/autopkgtest"
        for sub in share.iterdir():
            shutil.copytree(sub, staging / sub.name, symlinks=True)
        changelog = subprocess.run(
            ["zcat", str(usr / "share/doc/autopkgtest/changelog.gz")],
            capture_output=True,
            check=True,
        ).stdout
        (staging / "debian/changelog").write_bytes(changelog)
        staging.rename(tree)


@pytest.fixture(scope="session")
def autopkgtest_new() -> Path:
    """The program runner/autopkgtest of autopkgtest 6.0 from sid, unpacked in the cache."""
    tree = cache_dir() / f"autopkgtest-{AUTOPKGTEST_NEW}"
    program = tree / "runner/autopkgtest"
    with cache_lock("autopkgtest-new"):
        if program.is_file():
            return program
        if tree.exists():
            shutil.rmtree(tree)
        workdir = cache_dir() / "sid-apt"
        try:
            deb = download_sid_deb("autopkgtest", AUTOPKGTEST_NEW, workdir)
        except (RuntimeError, OSError) as exc:
            pytest.skip(f"cannot download autopkgtest {AUTOPKGTEST_NEW} from sid: {exc}")
        lay_out_checkout(deb, tree)
    return program


@pytest.fixture(scope="session", params=["system", AUTOPKGTEST_NEW])
def autopkgtest_program(request: pytest.FixtureRequest) -> Path | None:
    """Each autopkgtest to test with: None is the system's (bookworm: 5.28), then 6.0."""
    if request.param == AUTOPKGTEST_NEW:
        program: Path = request.getfixturevalue("autopkgtest_new")
        return program
    return None


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME for the programs this test starts (the session-scoped caches are
    found before it is set).

    ``bash -i`` in a null session runs the user's ~/.bashrc on this host; a
    slow or stuck one (root's ``pyenv init`` waits up to 60 s in ``pyenv
    rehash`` for a lock a killed rehash left behind, and sessions killed by
    these tests kill rehashes) keeps the first prompt from the tests past
    their timeouts.  The tests are about the session, not the tester's dotfiles.
    """
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    return home
