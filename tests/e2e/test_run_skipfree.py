"""``autopkgtest-hw run`` without a testbed, when every test is skipped whatever the testbed.

Each case runs the same package twice through the real autopkgtest: as a
user does (the testbed is not opened when the verdict is certain) and with
``--hw-open-testbed`` (the testbed opened as before), and compares what a
user and debci read: the exit code, the summary, the SKIP lines of the log,
testpkg-version and testinfo.json's virt_server.  The inner server is a
copy of ``autopkgtest-virt-null`` that leaves a mark when it starts, so each
case also knows whether a testbed was opened.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fixtures import (
    AUTOPKGTEST_HW,
    POCL_CPU,
    TESLA_T4,
    command_test,
    hw_env,
    make_tests_tree,
    write_inventory,
)

STAMP = re.compile(r"^ *\d+s ", re.M)
REPORT = re.compile(r"^(\S+ +(?:PASS|FAIL|SKIP|FLAKY|BROKEN)\b.*?)(?=autopkgtest \[|$)", re.M)
NOT_OPENED = "testbed not opened: every test is skipped whatever the testbed"

pytestmark = pytest.mark.skipif(shutil.which("autopkgtest") is None, reason="needs autopkgtest")


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    out: Path
    opened: bool

    @property
    def summary(self) -> str:
        return (self.out / "summary").read_text()

    def reports(self) -> list[str]:
        """The log's distinct report lines (a test name and its result), sorted.

        autopkgtest's log is stdout and stderr teed into one file by two
        processes: their order varies between runs, and a report line may
        share a line with another message (each is written twice: when it
        happens and in the summary at the end).
        """
        text = STAMP.sub("", (self.out / "log").read_text())  # 6.0: seconds elapsed
        return sorted(set(REPORT.findall(text)))

    def file(self, name: str) -> str | None:
        path = self.out / name
        return path.read_text() if path.exists() else None


def marking_null(where: Path) -> tuple[Path, Path]:
    """An inner server named autopkgtest-virt-null that marks each start; (server, mark)."""
    where.mkdir(parents=True, exist_ok=True)
    mark = where / "started"
    real = shutil.which("autopkgtest-virt-null")
    assert real is not None
    server = where / "autopkgtest-virt-null"
    server.write_text(f'#!/bin/sh\necho started >> "{mark}"\nexec "{real}" "$@"\n')
    server.chmod(0o755)
    return server, mark


def run_twice(
    tmp_path: Path, args: list[str], hwgpu: list[str], program: Path | None = None
) -> tuple[Outcome, Outcome]:
    """(as a user runs it, with --hw-open-testbed) of ``run ARGS -- hwgpu HWGPU null``.

    ``program``: the autopkgtest to run (None: the system's).
    """
    outcomes = []
    for n, own in enumerate(([], ["--hw-open-testbed"])):
        server, mark = marking_null(tmp_path / f"inner-{n}")
        out = tmp_path / f"out-{n}"
        proc = subprocess.run(
            [
                str(AUTOPKGTEST_HW),
                "run",
                *own,
                *args,
                "-o",
                str(out),
                "--",
                "hwgpu",
                *hwgpu,
                str(server),
            ],
            env=hw_env(program),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        outcomes.append(Outcome(proc.returncode, proc.stdout, proc.stderr, out, mark.exists()))
    return outcomes[0], outcomes[1]


def assert_same_for_users(free: Outcome, opened: Outcome) -> None:
    assert opened.opened, opened.stderr
    assert free.rc == opened.rc, free.stderr + opened.stderr
    assert free.summary == opened.summary
    assert free.stdout == opened.stdout
    assert free.reports() == opened.reports()
    assert free.file("testpkg-version") == opened.file("testpkg-version")
    free_info = json.loads(free.file("testinfo.json") or "{}")
    opened_info = json.loads(opened.file("testinfo.json") or "{}")
    # The two runs' inner servers are two copies (inner-0, inner-1), each with its mark.
    assert free_info["virt_server"] == opened_info["virt_server"].replace("inner-1", "inner-0")


def no_gpu(tmp_path: Path) -> list[str]:
    return ["--inventory", str(write_inventory(tmp_path / "inv.json", [POCL_CPU]))]


def built_tree(where: Path, stanzas: list[str]) -> Path:
    """A built source tree (debian/files present): autopkgtest reads it on the host."""
    tree = make_tests_tree(where, stanzas)
    (tree / "debian" / "control").write_text(
        "Source: gpudemo\nMaintainer: T <t@example.org>\n\n"
        "Package: gpudemo\nArchitecture: all\nDescription: d\n d\n"
    )
    (tree / "debian" / "changelog").write_text(
        textwrap.dedent(
            """\
            gpudemo (2.1-1) unstable; urgency=medium

              * Test.

             -- T <t@example.org>  Mon, 01 Jan 2024 00:00:00 +0000
            """
        )
    )
    (tree / "debian" / "files").write_text("")
    return tree


def test_gpu_only_package_is_reported_as_autopkgtest_does_without_a_testbed(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = built_tree(
        tmp_path / "pkg",
        [
            command_test("cuda-smoke", "needs-hw:cuda:cc>=8.0", depends="python3-torch"),
            command_test("rocm", "needs-hw:rocm, needs-root"),
            command_test("typo", "needs-hw:cuda:cc>>8.0"),
        ],
    )
    free, opened = run_twice(tmp_path, [str(pkg)], no_gpu(tmp_path), autopkgtest_program)
    assert not free.opened, free.stderr
    assert free.rc == 8
    assert free.summary.splitlines()[0] == (
        "cuda-smoke           SKIP needs-hw:cuda:cc>=8.0 not satisfied: testbed has no CUDA device"
    )
    assert NOT_OPENED in (free.out / "log").read_text()
    assert NOT_OPENED not in (opened.out / "log").read_text()
    assert free.file("testpkg-version") == "gpudemo 2.1-1\n"
    assert_same_for_users(free, opened)


def test_a_package_with_a_test_that_may_run_opens_the_testbed(tmp_path: Path) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg", [command_test("plain"), command_test("gpu", "needs-hw:cuda")]
    )
    free, opened = run_twice(tmp_path, [str(pkg)], no_gpu(tmp_path))
    assert free.opened
    assert free.rc == 2
    assert_same_for_users(free, opened)


def test_a_skip_that_depends_on_the_testbeds_capabilities_opens_it(tmp_path: Path) -> None:
    """isolation-machine: null cannot, but the verdict is the testbed's to give."""
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [command_test("vm", "isolation-machine"), command_test("gpu", "needs-hw:cuda")],
    )
    free, opened = run_twice(tmp_path, [str(pkg)], no_gpu(tmp_path))
    assert free.opened
    assert_same_for_users(free, opened)


def test_a_spec_the_passed_devices_satisfy_opens_the_testbed(tmp_path: Path) -> None:
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("t4", "needs-hw:cuda:cc>=7.0")])
    inventory = write_inventory(tmp_path / "inv.json", [TESLA_T4])
    # The T4 cannot be passed (no device node here): the testbed says so, not a skip.
    free, _ = run_twice(tmp_path, [str(pkg)], ["--inventory", str(inventory)])
    assert free.opened


def test_a_cpu_spec_is_the_testbeds_to_judge(tmp_path: Path) -> None:
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("big", "needs-hw:cpu:cores>=4096")])
    free, opened = run_twice(tmp_path, [str(pkg)], no_gpu(tmp_path))
    assert free.opened
    assert_same_for_users(free, opened)


def test_test_name_limits_the_verdict_to_the_named_tests(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg", [command_test("plain"), command_test("gpu", "needs-hw:cuda")]
    )
    free, opened = run_twice(
        tmp_path, ["--test-name=gpu", str(pkg)], no_gpu(tmp_path), autopkgtest_program
    )
    assert not free.opened, free.stderr
    assert free.rc == 8
    assert_same_for_users(free, opened)


def test_architecture_is_decided_as_autopkgtest_does(tmp_path: Path) -> None:
    pkg = make_tests_tree(
        tmp_path / "pkg",
        [
            command_test("elsewhere", "needs-hw:cuda") + "Architecture: s390x\n",
            command_test("gpu", "needs-hw:rocm") + "Architecture: any\n",
        ],
    )
    free, opened = run_twice(tmp_path, [str(pkg)], no_gpu(tmp_path))
    assert not free.opened, free.stderr
    assert "SKIP Test lists explicitly supported architectures" in free.summary
    assert_same_for_users(free, opened)


def test_an_unbuilt_tree_reports_its_skips_twice_as_autopkgtest_does(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    pkg = built_tree(tmp_path / "pkg", [command_test("gpu", "needs-hw:cuda")])
    (pkg / "debian" / "files").unlink()
    free, opened = run_twice(tmp_path, ["-B", str(pkg)], no_gpu(tmp_path), autopkgtest_program)
    assert not free.opened, free.stderr
    assert free.summary.count("gpu ") == 2
    assert_same_for_users(free, opened)


@pytest.mark.skipif(
    not (Path("/usr/share/debci/bin/debci-worker").exists() and os.geteuid() == 0),
    reason="needs debci and root",
)
def test_the_debci_backend_answers_a_gpu_only_package_without_a_testbed(tmp_path: Path) -> None:
    """debci's hwgpu backend runs autopkgtest-hw run: neutral (8), no testbed started."""
    from ..fleet.fleet_support import ARCH, debci_status, make_debci_tree
    from ..fleet.fleet_support import env as debci_env
    from ..fleet.fleet_support import make_package as make_debci_package

    debci = make_debci_tree(tmp_path / "debci")
    sources = tmp_path / "sources"
    make_debci_package(sources, "gpupkg", {"cuda": ("needs-hw:cuda", "nvidia-smi")})
    server, mark = marking_null(tmp_path / "inner")
    conf = tmp_path / "config"
    conf.mkdir()
    (tmp_path / "data").mkdir()
    inventory = write_inventory(tmp_path / "inv.json", [POCL_CPU])
    settings = {
        "debci_data_basedir": tmp_path / "data",
        "debci_backend": "hwgpu",
        "debci_hwgpu_inner": server,
        "debci_hwgpu_args": f"--inventory {inventory}",
        "debci_hwgpu_local_sources": sources,
    }
    (conf / "debci.conf").write_text("".join(f"{k}='{v}'\n" for k, v in settings.items()))
    out = tmp_path / "out"
    e = debci_env()
    e.update(
        debci_config_dir=str(conf),
        debci_suite="unstable",
        debci_arch=ARCH,
        debci_test_package="gpupkg",
        debci_test_outputdir=str(out),
    )
    proc = subprocess.run(
        [str(debci / "backends" / "hwgpu" / "test-package"), "--output-dir", str(out), "gpupkg"],
        env=e,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    code = int((out / "exitcode").read_text())
    assert code == proc.returncode == 8, proc.stdout + proc.stderr
    assert debci_status(code) == "neutral"
    assert not mark.exists()
    assert (out / "summary").read_text() == (
        "cuda                 SKIP needs-hw:cuda not satisfied: testbed has no CUDA device\n"
    )
    assert NOT_OPENED in (out / "log").read_text()
    assert (out / "testpkg-version").read_text() == "gpupkg 1.0\n"


def unopened_reason(tmp_path: Path, args: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``autopkgtest-hw -d run ARGS`` whose testbed cannot start."""
    inner = tmp_path / "missing" / "autopkgtest-virt-null"  # not there: opening fails (16)
    proc = subprocess.run(
        [str(AUTOPKGTEST_HW), "-d", "run", *args, "--", "hwgpu", *no_gpu(tmp_path), str(inner)],
        env=hw_env(None),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ([], "the package is built first"),
        (["-B", "--validate"], "--validate"),
    ],
)
def test_an_unbuilt_tree_that_autopkgtest_works_on_in_the_testbed_opens_it(
    tmp_path: Path, args: list[str], why: str
) -> None:
    pkg = built_tree(tmp_path / "pkg", [command_test("gpu", "needs-hw:cuda")])
    (pkg / "debian" / "files").unlink()
    rc, stderr = unopened_reason(tmp_path, [*args, str(pkg)])
    assert f"opening the testbed: {why}" in stderr
    assert rc == 16, stderr  # the testbed was asked for, and could not start


def test_a_missing_inner_server_is_left_to_the_testbed_to_report(tmp_path: Path) -> None:
    pkg = make_tests_tree(tmp_path / "pkg", [command_test("gpu", "needs-hw:cuda")])
    rc, stderr = unopened_reason(tmp_path, [str(pkg)])
    assert rc == 16, stderr
    assert "is not found" in stderr
