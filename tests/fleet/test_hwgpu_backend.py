"""The hwgpu backend's scripts as debci calls them, without a broker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .fleet_support import ARCH, debci_status, env, make_package

pytestmark = pytest.mark.usefixtures("root_only")


def _config(tmp_path: Path, **settings: str) -> dict[str, str]:
    conf = tmp_path / "config"
    conf.mkdir()
    (tmp_path / "data").mkdir()
    lines = [f"debci_data_basedir='{tmp_path / 'data'}'", "debci_backend=hwgpu"]
    lines += [f"{k}='{v}'" for k, v in settings.items()]
    (conf / "debci.conf").write_text("\n".join(lines) + "\n")
    e = env()
    e["debci_config_dir"] = str(conf)
    return e


def test_a_testbed_that_cannot_start_is_a_tmpfail_with_an_exit_code(
    debci_tree: Path, tmp_path: Path
) -> None:
    sources = tmp_path / "sources"
    make_package(sources, "pkg", {"t": ("", "true")})
    e = _config(
        tmp_path,
        debci_hwgpu_inner="no-such-virt-server",
        debci_hwgpu_local_sources=str(sources),
    )
    out = tmp_path / "out"
    e.update(
        debci_suite="unstable",
        debci_arch=ARCH,
        debci_test_package="pkg",
        debci_test_outputdir=str(out),
    )
    script = debci_tree / "backends" / "hwgpu" / "test-package"
    proc = subprocess.run(
        [str(script), "--output-dir", str(out), "pkg"],
        env=e,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    code = int((out / "exitcode").read_text())
    assert proc.returncode == code
    assert code == 16, proc.stdout + proc.stderr  # autopkgtest: testbed failure
    assert debci_status(code) == "tmpfail"
    assert (out / "worker").read_text().strip()


def test_create_testbed_hands_over_to_the_inner_backend(debci_tree: Path, tmp_path: Path) -> None:
    script = str(debci_tree / "backends" / "hwgpu" / "create-testbed")

    def create(inner: str) -> subprocess.CompletedProcess[str]:
        where = tmp_path / inner.replace("/", "_")
        where.mkdir()
        e = _config(where, debci_hwgpu_inner=inner)
        return subprocess.run([script], env=e, capture_output=True, text=True, check=False)

    proc = create("unshare")  # debci has no such backend: nothing to make
    assert (
        proc.returncode == 0 and "nothing to create for the inner testbed 'unshare'" in proc.stdout
    )
    # debci's own "fake" backend has a create-testbed: it is the one that runs.
    proc = create("fake")
    assert proc.returncode == 0 and "nothing to create" not in proc.stdout
    proc = create("../x")
    assert proc.returncode == 1 and "invalid debci_hwgpu_inner" in proc.stderr


def _test_package(
    debci_tree: Path, tmp_path: Path, package: str, word: str
) -> tuple[int, str, Path]:
    sources = tmp_path / "sources"
    make_package(sources, "pkg", {"t": ("", "echo the package own test")})
    e = _config(tmp_path, debci_hwgpu_inner="null", debci_hwgpu_local_sources=str(sources))
    out = tmp_path / "out"
    e.update(
        debci_suite="unstable",
        debci_arch=ARCH,
        debci_test_package=package,
        debci_test_outputdir=str(out),
    )
    script = debci_tree / "backends" / "hwgpu" / "test-package"
    proc = subprocess.run(
        [str(script), "--output-dir", str(out), word],
        env=e,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return proc.returncode, proc.stderr, out


@pytest.mark.parametrize("word", ["..", "--shell-fail"])
def test_the_package_tested_is_the_word_validated_never_the_positional(
    debci_tree: Path, tmp_path: Path, word: str
) -> None:
    rc, err, out = _test_package(debci_tree, tmp_path, "pkg", word)
    assert rc == 0, err
    assert "the package own test" in (out / "log").read_text()
    assert f"hwgpu: pkg unstable/{ARCH} pass" in err  # the worker's log line


@pytest.mark.parametrize("package", ["..", "--shell-fail", ".hidden"])
def test_a_package_word_that_is_not_a_name_is_refused(
    debci_tree: Path, tmp_path: Path, package: str
) -> None:
    rc, _err, out = _test_package(debci_tree, tmp_path, package, package)
    assert rc == 20 and debci_status(rc) == "tmpfail"
    assert "refused a malformed request" in (out / "log").read_text()


def test_a_testbed_that_cannot_fetch_the_source_is_a_tmpfail_that_says_so(
    debci_tree: Path, tmp_path: Path
) -> None:
    """No deb-src or no apt lists: autopkgtest blames the package (12); it is the testbed's."""
    rc, err, out = _test_package(debci_tree, tmp_path, "no-such-pkg-hwgpu", "no-such-pkg-hwgpu")
    assert rc == 16 and debci_status(rc) == "tmpfail", err
    assert int((out / "exitcode").read_text()) == 16
    assert "the testbed cannot fetch the source of no-such-pkg-hwgpu" in (out / "log").read_text()
    assert f"hwgpu: no-such-pkg-hwgpu unstable/{ARCH} tmpfail (exit 16): the testbed cannot" in err
    # Not a passthrough failure: it does not count towards stopping the worker.
    assert (tmp_path / "data" / "hwgpu" / "tmpfails").read_text().strip() == "0"


def test_check_testbed_says_no_while_the_worker_is_stopped(
    debci_tree: Path, tmp_path: Path
) -> None:
    """debci >= 4 asks check-testbed before its worker consumes."""
    script = str(debci_tree / "backends" / "hwgpu" / "check-testbed")
    e = _config(tmp_path, debci_hwgpu_inner="null")
    ok = subprocess.run([script], env=e, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    state = tmp_path / "data" / "hwgpu"
    state.mkdir(parents=True)
    (state / "disabled").write_text("3 passthrough failures in a row\n")
    stopped = subprocess.run([script], env=e, capture_output=True, text=True, check=False)
    assert stopped.returncode == 1
    assert "this worker is stopped: 3 passthrough failures in a row" in stopped.stderr
