"""plan: which tests run where, and an --ignore-restrictions= that real autopkgtest obeys."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

from ..conftest import console_transcripts
from .devices import CPU, H100, POCL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hwdemo"

needs_autopkgtest = pytest.mark.skipif(
    not shutil.which("autopkgtest") or os.geteuid() != 0,
    reason="needs autopkgtest and root (the null testbed installs test dependencies)",
)


def save(tmp_path: Path, name: str, *devices: Device, cpu: Cpu = CPU) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(Inventory(cpu=cpu, devices=devices).to_json(), encoding="utf-8")
    return str(path)


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["plan", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    rc, out, _ = plan(capsys, "--json", *args)
    assert rc == 0
    data: dict[str, object] = json.loads(out)
    return data


def verdicts(data: dict[str, object]) -> dict[str, bool]:
    return {t["name"]: t["runs"] for t in data["tests"]}  # type: ignore[attr-defined]


def autopkgtest(srcdir: Path, tmp_path: Path, *args: str) -> tuple[int, dict[str, str]]:
    """Run the real autopkgtest on the null testbed; return its exit code and summary."""
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    proc = subprocess.run(
        ["autopkgtest", *args, str(srcdir), "--output-dir", str(out), "--", "null"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    summary: dict[str, str] = {}
    for line in (out / "summary").read_text().splitlines():
        name, _, result = line.partition(" ")
        summary[name] = result.strip()
    return proc.returncode, summary


# -- the example package, with saved inventories ------------------------------


def test_pocl_only_machine_runs_opencl_cpu_and_skips_cuda_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = save(tmp_path, "pocl", POCL)
    rc, out, _ = plan(capsys, str(EXAMPLE), "--inventory", inv)
    assert rc == 0
    lines = out.splitlines()
    assert re.search(r"^opencl-cpu +RUN +needs-hw:opencl:type=cpu satisfied: ", out, re.M)
    assert (
        "cuda-smoke           SKIP needs-hw:cuda:cc>=7.0 not satisfied: machine has no CUDA device"
        in lines
    )
    assert re.search(r"^plain +RUN +needs no hardware$", out, re.M)
    assert "  autopkgtest --ignore-restrictions=needs-hw:opencl:type=cpu " in out
    assert "3 of 4 tests would run." in lines


def test_cuda_cc_9_machine_runs_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = save(tmp_path, "h100", POCL, H100)
    data = plan_json(capsys, str(EXAMPLE), "--inventory", inv)
    assert verdicts(data) == {
        "opencl-cpu": True,
        "cuda-smoke": True,
        "plain": True,
        "opencl-legacy": True,
    }
    assert data["ignore_restrictions"] == ["needs-hw:opencl:type=cpu", "needs-hw:cuda:cc>=7.0"]
    assert (
        data["argument"] == "--ignore-restrictions=needs-hw:opencl:type=cpu,needs-hw:cuda:cc>=7.0"
    )
    cuda = data["tests"][1]  # type: ignore[index]
    assert "1 CUDA device fits (NVIDIA H100 80GB HBM3, cc 9.0)" in cuda["reasons"][0]
    _, out, _ = plan(capsys, str(EXAMPLE), "--inventory", inv)
    # shell-quoted for copy and paste: '>' must not become a redirection
    assert "'--ignore-restrictions=needs-hw:opencl:type=cpu,needs-hw:cuda:cc>=7.0'" in out


def test_args_only_prints_one_word_even_when_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = plan(capsys, str(EXAMPLE), "--inventory", save(tmp_path, "h", H100), "--args-only")
    assert (rc, out) == (
        0,
        "--ignore-restrictions=needs-hw:opencl:type=cpu,needs-hw:cuda:cc>=7.0\n",
    )
    # An amd64 CPU satisfies opencl:type=cpu (the test installs PoCL itself) ...
    rc, out, _ = plan(capsys, str(EXAMPLE), "--inventory", save(tmp_path, "n"), "--args-only")
    assert (rc, out) == (0, "--ignore-restrictions=needs-hw:opencl:type=cpu\n")
    # ... a machine of unknown architecture satisfies nothing.
    unknown = save(tmp_path, "u", cpu=Cpu())
    rc, out, _ = plan(capsys, str(EXAMPLE), "--inventory", unknown, "--args-only")
    assert (rc, out) == (0, "--ignore-restrictions=\n")


def test_requires_hwspec_is_judged_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = plan_json(capsys, str(EXAMPLE), "--inventory", save(tmp_path, "n", cpu=Cpu()))
    (req,) = data["requires_hwspec"]  # type: ignore[misc]
    assert req["spec"] == "opencl:type=cpu|cuda"
    assert req["satisfied"] is False
    assert data["hwspec_field"] == "XS-Requires-Hwspec"


# -- several restrictions per test, invalid ones, other restrictions -----------

MIXED = """\
Test-Command: true
Features: test-name=opencl
Restrictions: needs-hw:opencl:type=cpu
Depends: dpkg

Test-Command: true
Features: test-name=both
Restrictions: needs-hw:opencl:type=cpu needs-hw:cuda
Depends: dpkg

Test-Command: true
Features: test-name=cuda
Restrictions: needs-hw:cuda
Depends: dpkg

Test-Command: true
Features: test-name=typo
Restrictions: needs-hw:cdua
Depends: dpkg

Test-Command: true
Features: test-name=other
Restrictions: needs-hw:opencl:type=cpu, hint-testsuite-triggers
Depends: dpkg

Test-Command: true
Features: test-name=plain
Depends: dpkg
"""


def mixed_package(tmp_path: Path) -> Path:
    src = tmp_path / "mixed"
    shutil.copytree(EXAMPLE, src)
    (src / "debian" / "tests" / "control").write_text(MIXED, encoding="utf-8")
    return src


def test_a_test_runs_only_when_all_its_restrictions_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = mixed_package(tmp_path)
    data = plan_json(capsys, str(src), "--inventory", save(tmp_path, "pocl", POCL))
    assert verdicts(data) == {
        "opencl": True,
        "both": False,
        "cuda": False,
        "typo": False,
        "other": False,
        "plain": True,
    }
    assert data["ignore_restrictions"] == ["needs-hw:opencl:type=cpu"]
    reasons = {t["name"]: t["reasons"] for t in data["tests"]}  # type: ignore[attr-defined]
    assert reasons["both"] == ["needs-hw:cuda not satisfied: machine has no CUDA device"]
    assert reasons["typo"][0].startswith("invalid hardware spec 'needs-hw:cdua': unknown class")
    assert reasons["other"] == ["unknown restriction hint-testsuite-triggers"]


def test_malformed_and_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = mixed_package(tmp_path)
    (src / "debian" / "tests" / "control").write_text("Depends: x\n", encoding="utf-8")
    rc, _, err = plan(capsys, str(src), "--inventory", save(tmp_path, "n"))
    assert rc == 1
    assert 'debian/tests/control:1: missing "Tests" or "Test-Command" field' in err
    rc, _, err = plan(capsys, str(tmp_path / "nothing"))
    assert rc == 2
    assert "not a directory" in err
    rc, _, err = plan(capsys, str(EXAMPLE), "--inventory", str(tmp_path / "none.json"))
    assert rc == 2
    assert "cannot read inventory" in err


# -- the argument, fed to the real autopkgtest ---------------------------------


@needs_autopkgtest
def test_plain_autopkgtest_skips_needs_hw_tests_of_the_example(tmp_path: Path) -> None:
    rc, summary = autopkgtest(EXAMPLE, tmp_path)
    assert summary == {
        "opencl-cpu": "SKIP unknown restriction needs-hw:opencl:type=cpu",
        "cuda-smoke": "SKIP unknown restriction needs-hw:cuda:cc>=7.0",
        "plain": "PASS",
        "opencl-legacy": "SKIP exit status 77 and marked as skippable",
    }
    assert rc == 2


@needs_autopkgtest
def test_the_argument_makes_autopkgtest_run_exactly_the_planned_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = mixed_package(tmp_path)
    inv = save(tmp_path, "pocl", POCL)
    _, argument, _ = plan(capsys, str(src), "--inventory", inv, "--args-only")
    planned = verdicts(plan_json(capsys, str(src), "--inventory", inv))
    rc, summary = autopkgtest(src, tmp_path, argument.strip())
    ran = {name for name, result in summary.items() if not result.startswith("SKIP")}
    assert ran == {name for name, runs in planned.items() if runs}
    assert summary["opencl"] == summary["plain"] == "PASS"
    assert summary["both"] == "SKIP unknown restriction needs-hw:cuda"
    assert summary["typo"] == "SKIP unknown restriction needs-hw:cdua"
    assert rc == 2


@needs_autopkgtest
@pytest.mark.skipif(not Path("/etc/OpenCL/vendors/pocl.icd").exists(), reason="needs PoCL")
def test_example_opencl_test_passes_on_pocl_with_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real OpenCL kernel runs on PoCL once plan's argument lets autopkgtest run it."""
    _, argument, _ = plan(
        capsys, str(EXAMPLE), "--inventory", save(tmp_path, "pocl", POCL), "--args-only"
    )
    rc, summary = autopkgtest(EXAMPLE, tmp_path, argument.strip())
    assert summary["opencl-cpu"] == "PASS"
    assert summary["cuda-smoke"] == "SKIP unknown restriction needs-hw:cuda:cc>=7.0"
    assert summary["plain"] == "PASS"
    assert rc == 2
    out = next(tmp_path.glob("out*"))
    stdout = (out / "opencl-cpu-stdout").read_text()
    assert "vadd: 65536 elements match numpy" in stdout
    assert "device: " in stdout


# -- docs/plan-and-require.md stays true ------------------------------------------


def doc_transcripts() -> list[tuple[str, list[str]]]:
    return console_transcripts(ROOT / "docs" / "plan-and-require.md")


@pytest.mark.parametrize(("command", "expected"), doc_transcripts())
def test_doc_transcript(command: str, expected: list[str]) -> None:
    argv = shlex.split(command)
    assert argv[0] == "autopkgtest-hw"
    proc = subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
