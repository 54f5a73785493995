"""Fleet files, archive indexes and routing: the rules of SPEC.md draft 2, on saved inventories."""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.fleet.enqueue import RequestError, request_line
from autopkgtest_hw.fleet.profiles import FleetError, read_fleet
from autopkgtest_hw.fleet.route import route
from autopkgtest_hw.source.archive import arch_matches, read_source_tree, read_sources_index
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

GiB = 1 << 30


def _nvidia(cc: str, model: str) -> Device:
    return Device(
        classes=("gpu", "cuda", "vulkan"),
        vendor="nvidia",
        model=model,
        memory=40 * GiB,
        arch="sm_" + cc.replace(".", ""),
        compute_capability=cc,
        pci_address="0000:3b:00.0",
    )


MI210 = Device(classes=("gpu", "rocm", "opencl"), vendor="amd", model="AMD Instinct MI210",
               arch="gfx90a", memory=64 * GiB, opencl_type="gpu")  # fmt: skip
POCL = Device(classes=("opencl",), model="pthread-cpu", opencl_type="cpu", opencl_version="3.0")


def _inv(path: Path, *devices: Device, arch: str = "amd64", flags: tuple[str, ...] = ()) -> str:
    inv = Inventory(cpu=Cpu(arch=arch, cores=8, flags=flags), devices=devices)
    path.write_text(inv.to_json())
    return path.name


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    names = {
        "h100": _inv(tmp_path / "h100.json", _nvidia("9.0", "NVIDIA H100")),
        "t4": _inv(tmp_path / "t4.json", _nvidia("7.5", "Tesla T4")),
        "mi210": _inv(tmp_path / "mi210.json", MI210),
        "pocl": _inv(tmp_path / "pocl.json", POCL),
        "gh200": _inv(tmp_path / "gh.json", _nvidia("9.0", "NVIDIA GH200"), arch="arm64"),
        "cpu": _inv(tmp_path / "cpu.json", flags=("avx512f",)),
    }
    f = tmp_path / "fleet"
    f.write_text(
        textwrap.dedent(
            f"""\
            # a comment
            Profile: h100
            Architecture: amd64
            Inventory: {names["h100"]}
            Hosts: gpu1 gpu2

            Profile: t4
            Architecture: amd64
            Inventory: {names["t4"]}

            Profile: mi210
            Architecture: amd64
            Inventory: {names["mi210"]}

            Profile: pocl
            Architecture: amd64
            Inventory: {names["pocl"]}

            Profile: gh200
            Architecture: arm64
            Inventory: {names["gh200"]}

            Profile: cpu-amd64
            Architecture: amd64
            Ordinary: yes
            Inventory: {names["cpu"]}

            Profile: cpu-arm64
            Architecture: arm64
            Ordinary: yes
            """
        )
    )
    return f


SOURCES = """\
Package: plain
Version: 1.0-1
Architecture: any
Testsuite: autopkgtest

Package: cudapkg
Version: 2.0-1
Architecture: amd64 arm64
Testsuite: autopkgtest
Requires-Hwspec: cuda:cc>=8.0

Package: rocmpkg
Version: 1.0-1
Architecture: amd64
Testsuite: autopkgtest-pkg-python
Requires-Hwspec: rocm:gfx90a, opencl

Package: gfx942pkg
Version: 1.0-1
Architecture: any
Testsuite: autopkgtest
Requires-Hwspec: rocm:gfx942

Package: notests
Version: 1.0-1
Architecture: any
Requires-Hwspec: cuda

Package: either
Version: 1.0-1
Architecture: all
Testsuite: autopkgtest
Requires-Hwspec: cuda:cc>=9.0|rocm

Package: armonly
Version: 1.0-1
Architecture: arm64
Testsuite: autopkgtest

Package: avx
Version: 1.0-1
Architecture: any
Testsuite: autopkgtest
Requires-Hwspec: cpu:avx512f

Package: badspec
Version: 1.0-1
Architecture: any
Testsuite: autopkgtest
Requires-Hwspec: cdua

Package: Bad_Name
Version: 1.0-1
Architecture: any
Testsuite: autopkgtest

Package: plain
Version: 1.1-1
Architecture: any
Testsuite: autopkgtest
"""


def _jobs(routing: object) -> set[tuple[str, str]]:
    return {(j.package, j.profile) for j in routing.jobs}  # type: ignore[attr-defined]


def test_fleet_file_profiles_tags_and_queues(fleet_file: Path) -> None:
    fleet = read_fleet(str(fleet_file))
    h100 = fleet.get("h100")
    assert h100 is not None
    assert (h100.tag, h100.queue) == ("h100", "debci-tests-amd64-hwgpu_h100")
    cpu = fleet.get("cpu-amd64")
    assert cpu is not None and cpu.ordinary
    assert (cpu.tag, cpu.queue) == ("", "debci-tests-amd64-lxc")
    assert [p.name for p in fleet.for_host("gpu2.example.org")] == ["h100"]
    assert h100.inventory_path == str(fleet_file.parent / "h100.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Profile: a_b\nArchitecture: amd64\nInventory: detect\n", "invalid Profile"),
        ("Profile: a\nInventory: detect\n", "no Architecture"),
        ("Profile: a\nArchitecture: amd64\n", "no Inventory"),
        ("Profile: a\nArchitecture: amd64\nInventory: detect\nColour: red\n", "unknown field"),
        ("Profile: a\nArchitecture: amd64\nOrdinary: maybe\n", "Ordinary: is yes or no"),
        (
            "Profile: a\nArchitecture: amd64\nInventory: detect\n\n"
            "Profile: a\nArchitecture: amd64\nInventory: detect\n",
            "already defined at line 1",
        ),
        (
            "Profile: a\nArchitecture: amd64\nOrdinary: yes\n\n"
            "Profile: b\nArchitecture: amd64\nOrdinary: yes\n",
            "share the queue debci-tests-amd64-lxc",
        ),
        ("Architecture: amd64\n", "without Profile"),
        ("", "no profiles"),
    ],
)
def test_bad_fleet_files_say_where(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "fleet"
    f.write_text(text)
    with pytest.raises(FleetError, match=message):
        read_fleet(str(f))


def test_routing_an_index_matrix(fleet_file: Path, tmp_path: Path) -> None:
    index = tmp_path / "Sources.gz"
    index.write_bytes(gzip.compress(SOURCES.encode()))
    fleet = read_fleet(str(fleet_file))
    from autopkgtest_hw.commands._fleet import entries

    r = route(fleet, entries(SimpleNamespace(sources=[str(index)], srcdirs=[])), matrix=True)
    assert _jobs(r) == {
        ("plain", "cpu-amd64"),  # no field: ordinary profiles only, every architecture
        ("plain", "cpu-arm64"),
        ("cudapkg", "h100"),  # cc>=8.0 on amd64 and arm64, not the T4 (7.5)
        ("cudapkg", "gh200"),
        ("rocmpkg", "mi210"),  # both specs hold on the MI210 (rocm and an OpenCL GPU)
        ("either", "h100"),
        ("either", "gh200"),
        ("either", "mi210"),
        ("armonly", "cpu-arm64"),
        ("avx", "cpu-amd64"),  # a cpu-only spec: ordinary profiles, never GPU ones
    }
    assert [j.version for j in r.jobs if j.package == "plain"] == ["1.1-1", "1.1-1"]
    [gfx] = r.unroutable
    assert gfx.package == "gfx942pkg" and gfx.closest == "mi210"
    assert "rocm:gfx942 not satisfied" in gfx.reasons[0] and "gfx90a" in gfx.reasons[0]
    errors = {e.package: e.error for e in r.errors}
    assert "invalid hardware spec" in errors["badspec"] and "cuda" in errors["badspec"]
    assert "invalid package name" in errors["Bad_Name"]
    assert r.without_tests == 1  # notests: no Testsuite, nothing to run


def test_default_policy_one_job_on_the_shortest_queue(fleet_file: Path, tmp_path: Path) -> None:
    index = tmp_path / "Sources"
    index.write_text(SOURCES)
    fleet = read_fleet(str(fleet_file))
    entries = [e for e in read_sources_index(str(index)) if e.package == "cudapkg"]
    r = route(fleet, entries * 3, depths={"debci-tests-amd64-hwgpu_h100": 1})
    # gh200 is empty, h100 has one waiting: gh200, then either (tie: listed first), ...
    assert [j.profile for j in r.jobs] == ["gh200", "h100", "gh200"]


def _tree(parent: Path, name: str, tests: str, control_extra: str = "", arch: str = "all") -> str:
    src = parent / name
    (src / "debian" / "tests").mkdir(parents=True)
    (src / "debian" / "control").write_text(
        f"Source: {name}\n{control_extra}\nPackage: {name}\nArchitecture: {arch}\n"
    )
    (src / "debian" / "tests" / "control").write_text(textwrap.dedent(tests))
    return str(src)


def test_source_trees_route_by_their_needs_hw_tests(fleet_file: Path, tmp_path: Path) -> None:
    fleet = read_fleet(str(fleet_file))
    trees = [
        _tree(
            tmp_path,
            "mixed",
            """\
            Tests: cuda
            Restrictions: needs-hw:cuda:cc>=9.0

            Tests: ocl
            Restrictions: needs-hw:opencl:type=cpu
            Architecture: arm64

            Tests: plain
            """,
        ),
        _tree(tmp_path, "archtest", "Tests: t\nRestrictions: needs-hw:rocm\nArchitecture: arm64\n"),
        _tree(tmp_path, "cputree", "Tests: t\n", arch="any"),
        _tree(tmp_path, "fieldwins", "Tests: t\n", "XS-Requires-Hwspec: rocm\n"),
    ]
    r = route(fleet, (read_source_tree(t) for t in trees), matrix=True)
    assert _jobs(r) == {
        ("mixed", "h100"),  # cuda test; the OpenCL test is arm64-only, so not pocl
        ("mixed", "gh200"),
        ("cputree", "cpu-amd64"),
        ("cputree", "cpu-arm64"),
        ("fieldwins", "mi210"),  # the field, though no test says needs-hw:
    }
    [arch] = r.unroutable
    assert arch.package == "archtest" and arch.closest is not None


def test_arch_wildcards() -> None:
    assert arch_matches("amd64", "any") and arch_matches("arm64", "all")
    assert arch_matches("amd64", "linux-any") and arch_matches("armhf", "any-arm")
    assert arch_matches("hurd-amd64", "hurd-any") and not arch_matches("amd64", "hurd-any")
    assert arch_matches("amd64", "any-amd64") and not arch_matches("arm64", "any-amd64")
    assert not arch_matches("amd64", "arm64")


def test_request_line_checks_every_word() -> None:
    assert (
        request_line("pocl", "unstable", "pocl/6.0-1")
        == "pocl unstable run-id:NEW trigger:pocl%2F6.0-1"
    )
    for bad in (("Bad", "unstable", None), ("ok", "uns table", None), ("ok", "sid", "a b")):
        with pytest.raises(RequestError):
            request_line(*bad)


def test_route_command_json_and_exit_status(
    fleet_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "Sources"
    index.write_text(SOURCES)
    argv = ["route", "--fleet", str(fleet_file), "--sources", str(index), "--matrix", "--json"]
    argv.append("--no-broker")
    assert main(argv) == 1  # gfx942pkg fits nowhere, two in error
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "matrix" and len(out["jobs"]) == 10
    assert out["unroutable"][0]["closest"] == "mi210"
    assert (
        main(
            [
                "route",
                "--fleet",
                str(fleet_file),
                "--sources",
                str(index),
                "--matrix",
                "--no-broker",
            ]
        )
        == 1
    )
    text = capsys.readouterr().out
    assert "gfx942pkg (needs rocm:gfx942): closest: mi210" in text
    assert "10 jobs on" in text


def test_profile_command(fleet_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    debci3 = ["profile", "--fleet", str(fleet_file), "--debci-queues", "tagged"]
    assert main([*debci3, "h100"]) == 0
    assert capsys.readouterr().out == "h100\n"
    assert main([*debci3, "--queue", "h100"]) == 0
    assert capsys.readouterr().out == "debci-tests-amd64-hwgpu_h100\n"
    assert main(["profile", "--fleet", str(fleet_file), "cpu-amd64"]) == 1
    assert "started without --tag" in capsys.readouterr().err
    assert main(["profile", "--fleet", str(fleet_file), "nope"]) == 1
    assert main(["profile", "--fleet", str(fleet_file), "--list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 7


def test_commands_report_unusable_input_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", "--fleet", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    f = tmp_path / "fleet"
    f.write_text("Profile: a\nArchitecture: amd64\nInventory: missing.json\n")
    (tmp_path / "Sources").write_text(SOURCES)
    argv = ["route", "--fleet", str(f), "--no-broker", "--sources", str(tmp_path / "Sources")]
    assert main(argv) == 1
    assert "cannot read inventory" in capsys.readouterr().out
    assert main(["route", "--fleet", str(f), "--sources", str(tmp_path / "nope")]) == 2
    conf = _debci_config(tmp_path, "amqp://127.0.0.1:1/")
    argv = ["enqueue", "--fleet", str(f), "--debci-config", conf, str(tmp_path)]
    assert main(argv) == 2
    assert "cannot connect" in capsys.readouterr().err


def test_profile_check_compares_this_machine_with_the_saved_inventory(
    fleet_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["profile", "--fleet", str(fleet_file), "--check", "h100", "--inventory"]
    same = str(fleet_file.parent / "h100.json")
    assert main([*base, same]) == 0
    assert capsys.readouterr().out == "h100\n"
    t4 = str(fleet_file.parent / "t4.json")  # same PCI address, other facts
    assert main([*base, t4]) == 1
    err = capsys.readouterr().err
    assert "compute_capability is 7.5, the profile says 9.0" in err
    assert "model is Tesla T4, the profile says NVIDIA H100" in err
    empty = tmp_path / "none.json"
    _inv(empty, arch="arm64")
    assert main([*base, str(empty)]) == 1
    err = capsys.readouterr().err
    assert "this machine is arm64, profile h100 is amd64" in err
    assert "NVIDIA H100" in err and "is missing here" in err


def test_matrix_tests_each_distinct_hardware_once(tmp_path: Path) -> None:
    name = _inv(tmp_path / "h100.json", _nvidia("9.0", "NVIDIA H100"))
    other = _inv(tmp_path / "l4.json", _nvidia("8.9", "NVIDIA L4"))
    f = tmp_path / "fleet"
    f.write_text(
        f"Profile: h100-site-a\nArchitecture: amd64\nInventory: {name}\n\n"
        f"Profile: h100-site-b\nArchitecture: amd64\nInventory: {name}\n\n"
        f"Profile: l4\nArchitecture: amd64\nInventory: {other}\n"
    )
    index = tmp_path / "Sources"
    index.write_text(SOURCES)
    [cuda] = [e for e in read_sources_index(str(index)) if e.package == "cudapkg"]
    depths = {"debci-tests-amd64-hwgpu_h100-site-a": 4}
    r = route(read_fleet(str(f)), [cuda, cuda], matrix=True, depths=depths)
    # The same H100s at two sites: one job between them, on the shorter queue.
    assert [j.profile for j in r.jobs] == ["h100-site-b", "l4", "h100-site-b", "l4"]


def test_broker_settings_never_show_the_password() -> None:
    from autopkgtest_hw.fleet.broker import BrokerError, BrokerSettings, check_queue_name

    s = BrokerSettings(url="amqp://debci:s3cret@broker.example.org:5672/%2F")
    assert "s3cret" not in s.display and "debci:*********@broker" in s.display
    assert check_queue_name("debci-tests-amd64-hwgpu_h100") == "debci-tests-amd64-hwgpu_h100"
    with pytest.raises(BrokerError):
        check_queue_name("a queue\n")


def _debci_config(tmp_path: Path, url: str) -> str:
    """A debci configuration directory naming the broker (enqueue reads debci's)."""
    conf = tmp_path / "debci-config"
    conf.mkdir(exist_ok=True)
    (conf / "debci.conf").write_text(f"debci_amqp_server='{url}'\n")
    return str(conf)


def test_enqueue_reports_a_broker_url_it_cannot_use(
    fleet_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path, "cputree", "Tests: t\n")
    conf = _debci_config(tmp_path, "http://user:pw@host/")
    argv = ["enqueue", "--fleet", str(fleet_file), "--debci-config", conf, tree]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "not an AMQP URL" in err and "pw" not in err


def test_test_stanza_architecture_is_read_as_autopkgtest_reads_it(
    fleet_file: Path, tmp_path: Path
) -> None:
    """``!arm64`` is every architecture but arm64; ``all`` is never allowed in a test."""
    fleet = read_fleet(str(fleet_file))
    trees = [
        _tree(tmp_path, "notarm", "Tests: t\nRestrictions: needs-hw:cuda\nArchitecture: !arm64\n"),
        _tree(tmp_path, "allarch", "Tests: t\nRestrictions: needs-hw:cuda\nArchitecture: all\n"),
    ]
    r = route(fleet, (read_source_tree(t) for t in trees), matrix=True)
    assert _jobs(r) == {("notarm", "h100"), ("notarm", "t4")}  # not gh200 (arm64)
    assert [u.package for u in r.unroutable] == ["allarch"]


def test_the_field_as_lint_suggests_it_routes_from_sources_and_trees(
    fleet_file: Path, tmp_path: Path
) -> None:
    """``a | b`` with spaces, and a folded field: read like Depends, as lint and plan read it."""
    index = tmp_path / "Sources"
    index.write_text(
        "Package: spaced\nVersion: 1\nArchitecture: any\nTestsuite: autopkgtest\n"
        "Requires-Hwspec: cuda:cc>=9.0 | rocm:gfx90a,\n cpu:cores>=1\n"
    )
    tree = _tree(
        tmp_path, "folded", "Tests: t\n", "XS-Requires-Hwspec: cuda:cc>=9.0 |\n rocm:gfx90a\n"
    )
    fleet = read_fleet(str(fleet_file))
    [entry] = read_sources_index(str(index))
    assert entry.hwspecs == ("cuda:cc>=9.0|rocm:gfx90a", "cpu:cores>=1")
    r = route(fleet, [entry, read_source_tree(tree)], matrix=True)
    assert not r.errors
    assert _jobs(r) == {
        (pkg, p) for pkg in ("spaced", "folded") for p in ("h100", "gh200", "mi210")
    }
