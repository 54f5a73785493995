"""The Debian package, built from a clean export by tools/build-deb.sh.

Nothing here installs into the system unless AUTOPKGTEST_HW_INSTALL_DEB=1:
the .deb is unpacked with dpkg -x and its commands run from that tree.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from autopkgtest_hw import cli
from autopkgtest_hw.virt import server as virtserver

from .conftest import ROOT, Built, system_env

pytestmark = pytest.mark.packaging

COMMANDS = ("autopkgtest-hw", "autopkgtest-virt-hwgpu")
#: One man page per sub-command (autopkgtest-hw-build(1), ...), as git has.
SUB_PAGES = tuple(f"autopkgtest-hw-{name}" for name in cli.COMMANDS)
TAG_LINE = re.compile(r"^([EWIPXOCNM]): (\S+)(?: \S+)?: (\S+)(.*)$")


def lintian(*args: str) -> list[tuple[str, str]]:
    """(severity letter, tag) of every tag lintian prints."""
    proc = subprocess.run(
        ["lintian", *args], capture_output=True, text=True, env=system_env(), check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [(m[1], m[3]) for m in map(TAG_LINE.match, proc.stdout.splitlines()) if m]


def run_installed(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run an extracted /usr/bin command with the extracted Python package."""
    site = root / "usr" / "lib" / "python3" / "dist-packages"
    return subprocess.run(
        [str(root / "usr" / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=root,
        env=system_env(PYTHONPATH=str(site)),
        check=False,
    )


def test_build_makes_source_and_binary_packages(built: Built) -> None:
    for path in (built.deb, built.dsc, built.tarball, built.changes):
        assert path.is_file(), f"{path.name} missing from {sorted(os.listdir(built.outdir))}"


def test_source_tarball_is_the_clean_tree(built: Built) -> None:
    with tarfile.open(built.tarball) as tar:
        names = tar.getnames()
    assert "autopkgtest-hw/debian/tests/control" in names
    assert "autopkgtest-hw/man/build-manpages.py" in names
    junk = [n for n in names if re.search(r"/(\.venv|\.pybuild|__pycache__|\.\w+_cache)(/|$)", n)]
    assert junk == []


def test_dpkg_source_ignores_local_environments(built: Built, tmp_path: Path) -> None:
    """A build in a working tree (not an export) leaves .venv and caches out too."""
    subprocess.run(
        ["dpkg-source", "-x", str(built.dsc), "autopkgtest-hw"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    src = tmp_path / "autopkgtest-hw"
    for junk in (".venv/bin/python", ".pytest_cache/v/x", "autopkgtest_hw/__pycache__/x.pyc"):
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_text("junk\n")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["dpkg-source", "-b", str(src)],
        cwd=out,
        check=True,
        capture_output=True,
        env=system_env(),
    )
    with tarfile.open(out / built.tarball.name) as tar:
        names = tar.getnames()
    assert "autopkgtest-hw/debian/control" in names
    junk = (".venv", "__pycache__", ".pytest_cache")  # what was planted above
    assert [n for n in names if any(j in n for j in junk)] == []


#: What a lintian older than the package's Policy (bookworm's, trixie's) says about
#: the checker, not the package; sid's lintian runs without it (tools/release-checks.sh).
OLDER_LINTIAN = ("newer-standards-version",)


def test_lintian_reports_no_error_or_warning(built: Built) -> None:
    tags = lintian(str(built.changes))
    assert [t for t in tags if t[0] in "EW" and t[1] not in OLDER_LINTIAN] == []


def test_the_package_follows_current_policy_for_unstable(built: Built) -> None:
    """sid's Policy and Python: Standards-Version 4.7.4, no X-Python3-Version (ancient there)."""
    dsc = built.dsc.read_text()
    assert re.search(r"^Standards-Version: 4\.7\.4$", dsc, re.M), dsc
    assert re.search(r"^Testsuite: autopkgtest$", dsc, re.M), dsc
    control = (ROOT / "debian" / "control").read_text()
    assert "X-Python3-Version" not in control
    assert re.search(r"^Rules-Requires-Root: no$", control, re.M)


def test_lintian_override_for_needs_hw_is_in_the_source_package(built: Built) -> None:
    """With --pedantic the needs-hw: tag shows as overridden (O:), never as P:."""
    tags = lintian("--pedantic", "--show-overrides", str(built.dsc))
    assert ("O", "unknown-runtime-tests-restriction") in tags
    assert ("P", "unknown-runtime-tests-restriction") not in tags


def test_binary_package_fields(built: Built) -> None:
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(built.deb), "Architecture", "Depends", "Recommends", "Suggests"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Architecture: all" in fields
    depends = re.search(r"^Depends: (.*)$", fields, re.M)
    assert depends is not None
    for dep in ("autopkgtest", "python3-debian", "python3-pyudev", "python3:any"):
        assert dep in depends[1].split(", ") or any(
            d.startswith(dep + " ") for d in depends[1].split(", ")
        ), depends[1]
    assert "python3-pyopencl" in fields.split("Recommends: ", 1)[1].split("\n")[0]
    assert "python3-pika" in fields.split("Recommends: ", 1)[1].split("\n")[0]
    # contrib: Suggests only, so the package can stay in main.
    assert "python3-pynvml" in fields.split("Suggests: ", 1)[1].split("\n")[0]
    assert "pynvml" not in depends[1]


def test_files_in_the_package(extracted: Path) -> None:
    for path in (
        "usr/bin/autopkgtest-hw",
        "usr/bin/autopkgtest-virt-hwgpu",
        "usr/share/man/man1/autopkgtest-hw.1.gz",
        "usr/share/man/man1/autopkgtest-virt-hwgpu.1.gz",
        "usr/lib/python3/dist-packages/autopkgtest_hw/virt/server.py",
        "usr/share/doc/autopkgtest-hw/copyright",
        "usr/share/doc/autopkgtest-hw/examples/hwdemo/debian/tests/control",
        "usr/share/doc/autopkgtest-hw/examples/hwdemo/hwdemo-vadd",
        "usr/share/doc/autopkgtest-hw/examples/workstation.json",
        "usr/share/doc/autopkgtest-hw/examples/fleet",
        "usr/share/doc/autopkgtest-hw/examples/gpu-server.json",
        "usr/share/doc/autopkgtest-hw/examples/hwgpu.conf",
        "usr/share/debci/backends/hwgpu/test-package",
        "usr/share/debci/backends/hwgpu/create-testbed",
        "usr/share/debci/backends/hwgpu/check-testbed",
        "usr/share/debci/backends/hwgpu/arch.sh",  # sourced by the three
    ):
        assert (extracted / path).is_file(), path
    assert list((extracted / "usr/share/doc/autopkgtest-hw").glob("debci.md*"))
    for script in ("test-package", "create-testbed", "check-testbed"):
        assert os.access(extracted / "usr/share/debci/backends/hwgpu" / script, os.X_OK)
    for cmd in COMMANDS:
        assert os.access(extracted / "usr" / "bin" / cmd, os.X_OK)
        head = (extracted / "usr" / "bin" / cmd).read_text().splitlines()[0]
        assert head == "#!/usr/bin/python3", head
    # The example is usable as it is: not compressed, its scripts executable.
    example = extracted / "usr/share/doc/autopkgtest-hw/examples/hwdemo"
    assert (example / "debian" / "changelog").is_file()
    assert os.access(example / "debian" / "tests" / "opencl-cpu", os.X_OK)


def _man(page: Path) -> subprocess.CompletedProcess[str]:
    """The page as man shows it (80 columns), with groff's warnings on stderr."""
    proc = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", str(page)],
        capture_output=True,
        text=True,
        env=system_env(MANWIDTH="80"),
        check=False,
    )
    proc.stdout = re.sub(r".\x08", "", proc.stdout)  # bold and underline by overstriking
    return proc


@pytest.mark.parametrize("cmd", COMMANDS + SUB_PAGES)
def test_man_page_renders_without_warnings(extracted: Path, cmd: str) -> None:
    proc = _man(extracted / "usr/share/man/man1" / f"{cmd}.1.gz")
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert re.search(rf"^NAME\n\s+{re.escape(cmd)}\s+-\s+\S", proc.stdout, re.M), proc.stdout
    assert "SEE ALSO" in proc.stdout


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    found = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o.startswith("--") and o != "--help")
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _long_options(sub)
    return found


def test_man_pages_follow_the_parsers(extracted: Path) -> None:
    """One source of truth: every sub-command and option of the parsers is in its page."""
    hw = re.sub(r"\s+", " ", _man(extracted / "usr/share/man/man1/autopkgtest-hw.1.gz").stdout)
    roff = gzip.decompress((extracted / "usr/share/man/man1/autopkgtest-hw.1.gz").read_bytes())
    see_also = roff.decode().split(".SH SEE ALSO", 1)[1]
    for name in cli.COMMANDS:
        assert f"autopkgtest-hw {name}" in hw
        assert f".BR autopkgtest-hw-{name} (1)" in see_also, see_also
        # Each sub-command's options are on its own page, not on the main one.
        page = extracted / f"usr/share/man/man1/autopkgtest-hw-{name}.1.gz"
        text = re.sub(r"\s+", " ", _man(page).stdout)
        assert f"autopkgtest-hw {name}" in text.split("DESCRIPTION", 1)[0]  # SYNOPSIS
        [sub] = [a for a in cli.build_parser(only=name)._actions if a.dest == "command"]
        assert isinstance(sub, argparse._SubParsersAction)
        for option in _long_options(sub.choices[name]):
            assert option in text, (name, option)
    assert len(hw) < 6000, "the main page lists the sub-commands, not all their options"
    virt_page = extracted / "usr/share/man/man1/autopkgtest-virt-hwgpu.1.gz"
    virt = re.sub(r"\s+", " ", _man(virt_page).stdout)
    for option in _long_options(virtserver.build_parser()):
        assert option in virt, option


def test_extracted_commands_use_the_packaged_modules(extracted: Path) -> None:
    site = extracted / "usr" / "lib" / "python3" / "dist-packages"
    proc = subprocess.run(
        ["python3", "-c", "import autopkgtest_hw.cli as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        cwd=extracted,
        env=system_env(PYTHONPATH=str(site)),
        check=True,
    )
    assert Path(proc.stdout.strip()).is_relative_to(site)


def test_extracted_autopkgtest_hw_detects_and_matches(extracted: Path, built: Built) -> None:
    version = run_installed(extracted, "autopkgtest-hw", "--version")
    assert version.returncode == 0 and built.version in version.stdout
    text = run_installed(extracted, "autopkgtest-hw", "detect")
    assert text.returncode == 0, text.stderr
    assert re.search(r"^CPU: ", text.stdout, re.M)
    js = run_installed(extracted, "autopkgtest-hw", "detect", "--json")
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout)["cpu"]["cores"] >= 1
    assert run_installed(extracted, "autopkgtest-hw", "match", "cpu").returncode == 0
    bad = run_installed(extracted, "autopkgtest-hw", "match", "cdua")
    assert bad.returncode == 2
    assert "did you mean 'cuda'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_extracted_route_reads_the_shipped_fleet_example(extracted: Path) -> None:
    examples = extracted / "usr/share/doc/autopkgtest-hw/examples"
    argv = ["route", "--no-broker", "--fleet", str(examples / "fleet"), "--matrix", "--json"]
    proc = run_installed(extracted, "autopkgtest-hw", *argv, str(examples / "hwdemo"))
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)["jobs"]
    assert {(j["package"], j["profile"]) for j in jobs} == {("hwdemo", "h100"), ("hwdemo", "pocl")}


def test_extracted_virt_server_starts(extracted: Path, built: Built) -> None:
    helped = run_installed(extracted, "autopkgtest-virt-hwgpu", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "INNER" in helped.stdout
    version = run_installed(extracted, "autopkgtest-virt-hwgpu", "--version")
    assert built.version in version.stdout
    usage = run_installed(extracted, "autopkgtest-virt-hwgpu")
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


def _summary(path: Path) -> dict[str, str]:
    words = (line.split(None, 2) for line in path.read_text().splitlines() if line.strip())
    return {w[0]: " ".join(w[1:]) for w in words}


@pytest.mark.skipif(
    os.environ.get("AUTOPKGTEST_HW_INSTALL_DEB") != "1",
    reason="installs the .deb into this system: set AUTOPKGTEST_HW_INSTALL_DEB=1 (CI does)",
)
def test_installed_package_runs_the_example(built: Built, tmp_path: Path) -> None:
    """apt-get install ./x.deb, then the example through /usr/bin/autopkgtest-virt-hwgpu null.

    The package is purged afterwards unless it was installed before.
    """
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "autopkgtest-hw"],
        capture_output=True,
        text=True,
        check=False,
    )
    was_installed = status.stdout.startswith("ii")
    env = system_env(DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", f"./{built.deb.name}"],
        cwd=built.outdir,
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        detect = subprocess.run(
            ["/usr/bin/autopkgtest-hw", "detect"], capture_output=True, text=True, env=env
        )
        assert detect.returncode == 0, detect.stderr
        assert re.search(r"^CPU: ", detect.stdout, re.M)
        shutil.copytree("/usr/share/doc/autopkgtest-hw/examples/hwdemo", tmp_path / "hwdemo")
        summary = tmp_path / "summary"
        run = subprocess.run(
            [
                *("/usr/bin/autopkgtest-hw", "run", f"--summary-file={summary}"),
                *("hwdemo/", "--", "hwgpu", "null"),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        log = run.stdout + run.stderr
        assert run.returncode in (0, 2), log
        # The only autopkgtest-virt-hwgpu autopkgtest can find is the package's.
        assert shutil.which("autopkgtest-virt-hwgpu", path=env["PATH"]) == (
            "/usr/bin/autopkgtest-virt-hwgpu"
        )
        results = _summary(summary)
        assert results["plain"] == "PASS", results
        assert results["opencl-cpu"] == "PASS", results
        cuda = results["cuda-smoke"]
        assert cuda == "PASS" or cuda.startswith("SKIP needs-hw:cuda"), results
    finally:
        if not was_installed:
            subprocess.run(
                ["apt-get", "purge", "-y", "-q", "autopkgtest-hw"],
                env=env,
                check=True,
                capture_output=True,
            )


def test_own_tests_lint_clean() -> None:
    """debian/tests/control's needs-hw: restriction is one autopkgtest-hw accepts."""
    assert cli.main(["lint", str(ROOT)]) == 0


def test_build_script_rejects_bad_usage() -> None:
    proc = subprocess.run(
        ["sh", str(ROOT / "tools" / "build-deb.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "usage: tools/build-deb.sh" in proc.stderr
