"""adt_compat against the real testdesc of autopkgtest 5.28 and 6.0, and its pure parts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autopkgtest_hw.source import adt_compat
from autopkgtest_hw.source.adt_compat import AdtCompatError, hardware_verdict, locate
from autopkgtest_hw.spec.inventory import Inventory

from .fixtures import POCL_CPU, TESLA_T4, write_inventory

NO_INVENTORY = "testbed advertises no hardware inventory (run it through autopkgtest-virt-hwgpu)"

#: Runs in a fresh interpreter: install the check into the given autopkgtest's
#: testdesc and call Test.check_testbed_compat as parse_debian_source does.
PROBE = """
import json, sys
from autopkgtest_hw.source import adt_compat
at = adt_compat.locate(sys.argv[1] or None)
adt_compat.install(at)
adt_compat.install(at)  # a second time changes nothing
import testdesc
out = {"version": at.version, "lib": str(at.lib_dir), "results": {}}
caps = json.loads(sys.argv[2])
for case in json.loads(sys.argv[3]):
    name, restrictions, ignored = case
    t = testdesc.Test(name, "debian/tests/" + name, None, set(restrictions), set(), [], [])
    try:
        t.check_testbed_compat(caps, ignored)
        out["results"][name] = "RUN"
    except testdesc.Unsupported as u:
        out["results"][name] = "SKIP " + u.message
print(json.dumps(out))
"""


def probe(
    program: Path | None, caps: list[str], cases: list[tuple[str, list[str], list[str]]]
) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(program or ""), json.dumps(caps), json.dumps(cases)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def caps_of(tmp_path: Path, devices: list[dict[str, object]]) -> list[str]:
    inventory = Inventory.load(str(write_inventory(tmp_path / "inv.json", devices)))
    return ["root-on-testbed", *inventory.to_capabilities(), "has_internet"]


def test_the_real_testdesc_judges_needs_hw(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    caps = caps_of(tmp_path, [POCL_CPU, TESLA_T4])
    out = probe(
        autopkgtest_program,
        caps,
        [
            ("t4", ["needs-hw:cuda:cc>=7.0"], []),
            ("h100", ["needs-hw:cuda:cc>=9.0"], []),
            ("ignored", ["needs-hw:cuda:cc>=9.0"], ["needs-hw:cuda:cc>=9.0"]),
            ("with-root", ["needs-hw:cuda", "needs-root"], []),
            ("with-reboot", ["needs-hw:cuda", "needs-reboot"], []),
            ("with-unknown", ["needs-hw:cuda", "explodes-spontaneously"], []),
            ("plain", [], []),
        ],
    )
    expected_version = "6.0" if autopkgtest_program else None
    if expected_version:
        assert out["version"] == expected_version
    r = out["results"]
    assert r["t4"] == "RUN"
    assert r["h100"].startswith("SKIP needs-hw:cuda:cc>=9.0 not satisfied: testbed has 1 CUDA")
    assert r["ignored"] == "RUN"
    assert r["with-root"] == "RUN"
    assert r["with-reboot"] == (
        'SKIP Test restriction "needs-reboot" requires testbed capability "reboot"'
    )
    assert r["with-unknown"] == "SKIP unknown restriction explodes-spontaneously"
    assert r["plain"] == "RUN"


def test_verdict_invalid_comes_before_missing_inventory() -> None:
    reason, ok = hardware_verdict(["needs-hw:cuda", "needs-hw:cuda:cc=>8"], ["root-on-testbed"])
    assert reason is not None and reason.startswith("invalid hardware spec 'needs-hw:cuda:cc=>8'")
    assert ok == []


def test_verdict_without_inventory_names_every_spec() -> None:
    reason, _ = hardware_verdict(["needs-hw:cuda", "needs-hw:rocm"], ["has_internet"])
    assert reason == f"needs-hw:cuda, needs-hw:rocm: {NO_INVENTORY}"


def test_verdict_lists_every_unsatisfied_spec(tmp_path: Path) -> None:
    caps = caps_of(tmp_path, [POCL_CPU])
    reason, _ = hardware_verdict(
        ["needs-hw:cuda", "needs-hw:opencl:type=cpu", "needs-hw:rocm"], caps
    )
    assert reason == (
        "needs-hw:cuda not satisfied: testbed has no CUDA device; "
        "needs-hw:rocm not satisfied: testbed has no ROCm device"
    )


def test_verdict_satisfied_gives_the_messages(tmp_path: Path) -> None:
    reason, ok = hardware_verdict(["needs-hw:opencl:type=cpu"], caps_of(tmp_path, [POCL_CPU]))
    assert reason is None
    assert ok == [
        "needs-hw:opencl:type=cpu satisfied: 1 OpenCL device fits (pthread-AMD EPYC 7B13, type cpu)"
    ]


def test_verdict_malformed_capability() -> None:
    reason, _ = hardware_verdict(["needs-hw:cuda"], ["hw-device=%7Bnot-json"])
    assert reason is not None
    assert reason.startswith("needs-hw:cuda: testbed advertises a malformed inventory: ")


def test_locate_a_checkout_uses_its_lib_and_changelog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in ("runner", "virt", "lib", "debian"):
        (tmp_path / sub).mkdir()
    (tmp_path / "runner/autopkgtest").write_text("")
    (tmp_path / "lib/testdesc.py").write_text("")
    (tmp_path / "debian/changelog").write_text("autopkgtest (6.1~exp1) experimental; urgency=low\n")
    monkeypatch.setenv(adt_compat.ENV_AUTOPKGTEST, str(tmp_path / "runner/autopkgtest"))
    at = locate()
    assert at.lib_dir == tmp_path / "lib"
    assert at.version == "6.1~exp1"
    (tmp_path / "virt").rmdir()  # not a checkout: the program uses the installed library
    assert locate().lib_dir == adt_compat.SYSTEM_LIB


def test_locate_the_system_autopkgtest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(adt_compat.ENV_AUTOPKGTEST, raising=False)
    at = locate()
    assert at.lib_dir == adt_compat.SYSTEM_LIB
    assert (
        at.version
        == subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "autopkgtest"], capture_output=True, text=True
        ).stdout
    )


def test_locate_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AdtCompatError, match="does not exist"):
        locate(str(tmp_path / "nope"))
    (tmp_path / "virt").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/autopkgtest").write_text("")
    with pytest.raises(AdtCompatError, match=r"no testdesc\.py in its library directory"):
        locate(str(tmp_path / "bin/autopkgtest"))
    monkeypatch.delenv(adt_compat.ENV_AUTOPKGTEST, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AdtCompatError, match="autopkgtest not found on PATH"):
        locate()


# -- Architecture: autopkgtest decides it before our needs-hw: check ------------

#: parse_debian_source of the given autopkgtest on a source tree, with the
#: needs-hw: check installed; every SKIP it reports, and the tests it keeps.
ARCH_PROBE = """
import json, sys
from autopkgtest_hw.source import adt_compat
at = adt_compat.locate(sys.argv[1] or None)
adt_compat.install(at)
import testdesc
skips = {}
testdesc.Unsupported.report = lambda self: skips.__setitem__(self.testname, self.message)
srcdir, caps, arch = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
if at.version.startswith("5."):
    tests, _ = testdesc.parse_debian_source(srcdir, caps, arch)
else:
    tests, _ = testdesc.parse_debian_source(srcdir, caps, arch, False)
ours = {}
for case in json.loads(sys.argv[5]):
    try:
        testdesc._check_architecture("t", arch, case)
        ours[" ".join(case)] = None
    except testdesc.Unsupported as u:
        ours[" ".join(case)] = u.message
print(json.dumps({"run": [t.name for t in tests], "skip": skips, "check": ours}))
"""

ARCH_CONTROL = """\
Tests: arm64-only
Architecture: arm64
Restrictions: needs-hw:cuda
Depends: coreutils

Tests: amd64-rocm
Architecture: amd64
Restrictions: needs-hw:rocm:gfx90a
Depends: coreutils

Tests: not-amd64
Architecture: !amd64
Restrictions: needs-hw:cuda:cc>=7.0
Depends: coreutils

Tests: cuda-anywhere
Architecture: linux-any
Restrictions: needs-hw:cuda:cc>=7.0
Depends: coreutils
"""

ARCH_CASES = [
    ["arm64"],
    ["amd64", "arm64"],
    ["!amd64"],
    ["!arm64"],
    ["any-amd64"],
    ["linux-any"],
    ["any"],
    [],
    ["all"],
    ["amd64", "!arm64"],
    ["!arm64", "amd64"],
    ["!amd64", "arm64"],
    ["kfreebsd-any"],
]


def test_architecture_skips_before_needs_hw_in_run_and_plan_says_the_same(
    tmp_path: Path, autopkgtest_program: Path | None
) -> None:
    from autopkgtest_hw.source import architecture
    from autopkgtest_hw.source.control import read_source_package
    from autopkgtest_hw.source.planner import make_plan

    src = tmp_path / "src"
    (src / "debian" / "tests").mkdir(parents=True)
    (src / "debian" / "control").write_text(
        "Source: archdemo\n\nPackage: archdemo\nArchitecture: all\n", encoding="utf-8"
    )
    (src / "debian" / "tests" / "control").write_text(ARCH_CONTROL, encoding="utf-8")
    caps = caps_of(tmp_path, [TESLA_T4])  # an amd64 host with a T4: no ROCm
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            ARCH_PROBE,
            str(autopkgtest_program or ""),
            str(src),
            json.dumps(caps),
            "amd64",
            json.dumps(ARCH_CASES),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    not_listed = (
        "Test lists explicitly supported architectures, but the current architecture amd64 "
        "isn't listed."
    )
    # autopkgtest's own reason, not a hardware verdict, for the tests of other architectures
    assert out["skip"]["arm64-only"] == not_listed
    assert out["skip"]["not-amd64"] == "Test declares architecture as not supported: amd64"
    # on its own architecture a test meets our needs-hw: check
    assert out["skip"]["amd64-rocm"].startswith("needs-hw:rocm:gfx90a not satisfied: testbed has")
    assert out["run"] == ["cuda-anywhere"]
    # plan says what autopkgtest says, word for word
    inventory = Inventory.from_capabilities(caps)
    assert inventory is not None and inventory.cpu.arch == "amd64"
    plan = {t.name: t for t in make_plan(read_source_package(str(src)), inventory).tests}
    for name, reason in out["skip"].items():
        assert plan[name].runs is False
        # (plan speaks of the machine whose inventory it reads, run of the testbed)
        assert plan[name].reasons[0] == reason.replace("testbed has", "machine has")
    assert plan["cuda-anywhere"].runs is True
    assert plan["arm64-only"].needs_hw == ()  # no hardware looked at
    for case in ARCH_CASES:
        assert architecture.skip_reason("amd64", case) == out["check"][" ".join(case)], case


# -- Which autopkgtest versions adt_compat knows ---------------------------------


def checkout_of_the_system_autopkgtest(root: Path, version: str) -> Path:
    """The installed autopkgtest's library in a checkout layout whose changelog says ``version``."""
    for sub in ("runner", "virt", "debian"):
        (root / sub).mkdir()
    shutil.copytree(adt_compat.SYSTEM_LIB, root / "lib")
    program = root / "runner/autopkgtest"
    program.write_text("")
    (root / "debian/changelog").write_text(f"autopkgtest ({version}) unstable; urgency=low\n")
    return program


def test_an_autopkgtest_older_than_the_oldest_known_is_refused_by_name(tmp_path: Path) -> None:
    at = locate(str(checkout_of_the_system_autopkgtest(tmp_path, "5.20")))
    with pytest.raises(AdtCompatError) as caught:
        adt_compat.install(at)
    message = str(caught.value)
    assert message.startswith("autopkgtest 5.20 (")
    assert "older than 5.28, the oldest this autopkgtest-hw knows" in message
    assert "5.28 (bookworm), 5.49 (trixie), 6.0 (sid)" in message
    assert "install autopkgtest 5.28 or later" in message


def test_a_newer_autopkgtest_is_used_when_its_internals_check_out(tmp_path: Path) -> None:
    program = checkout_of_the_system_autopkgtest(tmp_path, "9.0")
    out = probe(program, ["root-on-testbed"], [("h100", ["needs-hw:cuda:cc>=9.0"], [])])
    assert out["version"] == "9.0"
    assert out["results"]["h100"] == f"SKIP needs-hw:cuda:cc>=9.0: {NO_INVENTORY}"


@pytest.mark.parametrize(
    ("version", "known"),
    [("5.28", True), ("5.49", True), ("6.0", True), ("6.0+deb13u1", True), ("5.50", False)],
)
def test_tested_versions(version: str, known: bool) -> None:
    assert adt_compat.tested(version) is known


def test_a_version_from_the_changelog_is_escaped_and_bounded(tmp_path: Path) -> None:
    program = checkout_of_the_system_autopkgtest(tmp_path, "6.0\x1b[2J" + "9" * 200)
    at = locate(str(program))
    assert "\x1b" not in at.version
    assert len(at.version) <= 64
