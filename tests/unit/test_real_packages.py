"""Real GPU packages, converted to needs-hw:, planned and routed against recorded real hosts.

tests/data/packages holds the debian/ of rocblas, pytorch-cuda, pocl and mesa
(tests/data/packages/README.md says how they were written); tests/data/hosts
the inventories of an MI210 server, an RX 6800 and an RTX 3090 workstation, a
T4 and an H100 server, a server without GPU and an arm64 server (the servers
with their BMC's ASPEED display chip).  The expected verdicts are SPEC draft
2's: sizes are decimal (16G holds on a 16 GB RX 6800 and T4), a class is
hardware plus the kernel driver (opencl:type=cpu holds on any CPU; pocl's
tests install PoCL themselves), and a BMC's display chip is no GPU (mesa is
not routed to a server whose only display device is its ASPEED chip).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.source import planner
from autopkgtest_hw.source.control import read_source_package
from autopkgtest_hw.source.planner import make_plan, package_admits, package_requirement
from autopkgtest_hw.spec.inventory import Inventory

from ..conftest import ROOT

DATA = ROOT / "tests" / "data"
HOSTS = ("mi210-server", "rx6800-workstation", "rtx3090-workstation", "t4-server")
HOSTS += ("h100-server", "no-gpu-server", "altra-arm64-server")

R, S = "RUN", "SKIP"
ARCH_SKIP = (
    "Test lists explicitly supported architectures, but the current architecture arm64 "
    "isn't listed."
)

#: package -> test -> the verdict on each host, in HOSTS order.
EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {
    "rocblas": {
        "rocblas-test": (R, R, S, S, S, S, S),
        "rocblas-test-full": (R, R, S, S, S, S, S),
        "build-example": (R, R, R, R, R, R, S),
    },
    "pytorch-cuda": {
        "import": (R, R, R, R, R, R, R),
        "cuda-smoke": (S, S, R, R, R, S, S),
        "cuda-large-model": (S, S, R, R, R, S, S),
        "cuda-multi-gpu": (S, S, S, S, R, S, S),
        "rocm-smoke": (R, S, S, S, S, S, S),
    },
    "pocl": {
        "clinfo": (R,) * 7,
        "poclcc-vadd": (R,) * 7,
    },
    "mesa": {
        "vulkaninfo": (R, R, R, R, R, S, S),
        "rusticl": (R, R, S, S, S, S, S),
        "llvmpipe": (R,) * 7,
    },
}


def host(name: str) -> Inventory:
    return Inventory.load(str(DATA / "hosts" / f"{name}.json"))


def package(name: str) -> str:
    return str(DATA / "packages" / name)


def cases() -> list[object]:
    out = []
    for pkg, tests in EXPECTED.items():
        for test, verdicts in tests.items():
            for hostname, verdict in zip(HOSTS, verdicts, strict=True):
                out.append(pytest.param(pkg, hostname, test, verdict))
    return out


@pytest.mark.parametrize(("pkg", "hostname", "test", "verdict"), cases())
def test_plan_per_host(pkg: str, hostname: str, test: str, verdict: str) -> None:
    plan = make_plan(read_source_package(package(pkg)), host(hostname))
    (planned,) = [t for t in plan.tests if t.name == test]
    assert (R if planned.runs else S) == verdict, planned.reasons


def test_every_test_of_every_package_has_its_expectation() -> None:
    for pkg, tests in EXPECTED.items():
        plan = make_plan(read_source_package(package(pkg)), host("no-gpu-server"))
        assert [t.name for t in plan.tests] == list(tests)


def test_an_arm64_host_skips_amd64_tests_with_autopkgtests_reason_and_no_hardware(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = str(DATA / "hosts" / "altra-arm64-server.json")
    rc = main(["plan", package("rocblas"), "--inventory", inventory])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"rocblas: tests on the inventory {inventory} (arm64)" in out
    assert re.search(rf"^rocblas-test +SKIP {re.escape(ARCH_SKIP)}$", out, re.M)
    assert re.search(rf"^build-example +SKIP {re.escape(ARCH_SKIP)}$", out, re.M)
    assert "ROCm" not in out.split("\n\n", 1)[1]  # no hardware verdict for these tests
    rc = main(["plan", "--json", package("rocblas"), "--inventory", inventory])
    data = json.loads(capsys.readouterr().out)
    assert data["arch"] == "arm64"
    test = data["tests"][0]
    assert (test["architecture"], test["needs_hw"], test["runs"]) == (ARCH_SKIP, [], False)


# -- routing: the package's field, else its needs-hw: tests ---------------------

#: package -> the hosts that the package's requirement admits, in HOSTS order.
ADMITTED = {
    "rocblas": (True, True, False, False, False, False, False),
    "pytorch-cuda": (False, False, True, True, True, False, False),
    "pocl": (True,) * 7,
    "mesa": (True, True, True, True, True, False, False),
    # neither field nor needs-hw: ordinary workers, but only amd64 ones (Architecture:)
    "rocblas-today": (True,) * 6 + (False,),
}


def routing_cases() -> list[object]:
    out = []
    for pkg, admitted in ADMITTED.items():
        for hostname, expected in zip(HOSTS, admitted, strict=True):
            out.append(pytest.param(pkg, hostname, expected))
    return out


@pytest.mark.parametrize(("pkg", "hostname", "expected"), routing_cases())
def test_routing_admits(pkg: str, hostname: str, expected: bool) -> None:
    assert package_admits(read_source_package(package(pkg)), host(hostname)) is expected


def test_requirement_is_the_field_else_the_tests_alternatives(tmp_path: Path) -> None:
    req = package_requirement(read_source_package(package("pytorch-cuda")))
    assert req is not None and (req.origin, req.text) == ("field", "cuda:cc>=6.1")
    assert package_requirement(read_source_package(package("rocblas-today"))) is None
    # the converted pytorch-cuda without its field: routed by its tests' alternatives
    src = tmp_path / "pytorch-cuda"
    (src / "debian" / "tests").mkdir(parents=True)
    control = (DATA / "packages" / "pytorch-cuda" / "debian" / "control").read_text()
    (src / "debian" / "control").write_text(
        "\n".join(li for li in control.splitlines() if "Requires-Hwspec" not in li) + "\n"
    )
    tests = DATA / "packages" / "pytorch-cuda" / "debian" / "tests" / "control"
    (src / "debian" / "tests" / "control").write_text(tests.read_text())
    pkg = read_source_package(str(src))
    req = package_requirement(pkg)
    assert req is not None
    # cuda:cc>=7.0:mem>=16G and cuda:cc>=6.1:count>=2 admit no host that cuda:cc>=6.1 does not
    assert (req.origin, req.text) == ("tests", "cuda:cc>=6.1 | rocm:gfx90a")
    assert package_admits(pkg, host("mi210-server"))  # for rocm-smoke
    assert planner.tests_admitted(pkg, host("mi210-server")) == ("import", "rocm-smoke")
    assert not package_admits(pkg, host("rx6800-workstation"))


def test_tests_admitted_is_what_plan_runs() -> None:
    pkg = read_source_package(package("pytorch-cuda"))
    assert planner.tests_admitted(pkg, host("h100-server")) == (
        "import",
        "cuda-smoke",
        "cuda-large-model",
        "cuda-multi-gpu",
    )
    assert planner.tests_admitted(pkg, host("altra-arm64-server")) == ("import",)


# -- lint on the real packages ----------------------------------------------------


def lint_json(capsys: pytest.CaptureFixture[str], pkg: str) -> list[dict[str, object]]:
    rc = main(["lint", "--json", package(pkg)])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    findings: list[dict[str, object]] = data["findings"]
    return findings


def test_lint_prints_the_needs_hw_line_once_for_rocblas_today(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = lint_json(capsys, "rocblas-today")
    assert [(f["tag"], f["line"]) for f in found] == [("skippable-gpu-test", 6)]
    (hint,) = found
    assert (
        "rocblas-test (runs rocm-test-launcher); rocblas-test-full (runs rocm-test-launcher)"
        in (str(hint["message"]))
    )
    assert hint["fix"] == "Restrictions: needs-hw:rocm, allow-stderr, skippable"


def test_lint_recognises_nvidia_smi_checks_in_pytorch_cuda_today(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = lint_json(capsys, "pytorch-cuda-today")
    assert [f["tag"] for f in found] == ["skippable-gpu-test"]
    assert "cuda-smoke (runs nvidia-smi); cuda-large-model (runs nvidia-smi)" in str(
        found[0]["message"]
    )
    assert found[0]["fix"] == "Restrictions: needs-hw:cuda, allow-stderr, skippable"


def test_lint_warns_about_the_test_the_field_never_admits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = lint_json(capsys, "pytorch-cuda")
    tags = {str(f["tag"]): f for f in found}
    warning = tags["needs-hw-test-not-covered"]
    assert warning["line"] == 27 and warning["severity"] == "warning"
    assert warning["fix"] == "XS-Requires-Hwspec: cuda:cc>=6.1 | rocm:gfx90a"
    admits = tags["requires-hwspec-admits"]
    assert admits["message"] == (
        "on a host that XS-Requires-Hwspec admits: cuda:cc>=6.1 runs cuda-smoke; "
        "cuda-large-model, cuda-multi-gpu only where the host has more than the field asks"
    )


def test_lint_is_quiet_about_coverage_of_rocblas_and_pocl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for pkg in ("rocblas", "pocl"):
        tags = [f["tag"] for f in lint_json(capsys, pkg)]
        assert "needs-hw-test-not-covered" not in tags
        assert "skippable-gpu-test" not in tags
        assert "requires-hwspec-admits" in tags


def test_routing_honours_architecture() -> None:
    """An arm64 host with an MI210: the field holds, but every rocblas test is amd64-only."""
    import dataclasses

    mi210 = host("mi210-server")
    arm = dataclasses.replace(mi210, cpu=dataclasses.replace(mi210.cpu, arch="arm64"))
    rocblas = read_source_package(package("rocblas"))
    assert package_requirement(rocblas) is not None
    assert package_requirement(rocblas).admits(arm)  # type: ignore[union-attr]
    assert not package_admits(rocblas, arm)
    assert planner.tests_admitted(rocblas, arm) == ()
    assert package_admits(rocblas, mi210)
    # pocl's tests have no Architecture: wherever its field holds
    assert package_admits(read_source_package(package("pocl")), host("rtx3090-workstation"))
