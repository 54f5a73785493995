"""A GPU fleet on Debian's debci and a real RabbitMQ: routing, workers, results, faults.

Five real debci-worker processes (debci 3.6's own), each running the real
autopkgtest through our hwgpu backend around null testbeds:

  cpu         ordinary profile (no tag), no devices
  pocl        this machine's real PoCL OpenCL CPU device (Inventory: detect)
  h100 (x2)   two NVIDIA-like device nodes made with mknod, a saved inventory;
              one worker per GPU (--gpu 0 / --gpu 1)
  a100        a saved inventory whose device node is missing: the passthrough
              check fails, which must be a tmpfail and never a fail

Packages are enqueued with 'autopkgtest-hw enqueue --matrix' (debci jobs, made
with debci's own 'debci enqueue' in a central debci configuration); the
results are read back from debci's results queue (test_debci_jobs.py has
debci's collector record them).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import fake_nvidia, make_char_device, save_inventory

from .broker_support import RabbitMQ
from .fleet_support import (
    ARCH,
    CentralDebci,
    Worker,
    cli,
    collect_results,
    consumers,
    make_package,
    publish_raw,
    wait_consumers,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("root_only")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hwdemo"


@dataclass
class Fleet:
    path: Path
    sources: Path
    markers: Path
    broker: RabbitMQ
    workers: dict[str, Worker]
    queues: dict[str, str]
    debci: CentralDebci


def _packages(sources: Path, nodes: list[str], markers: Path) -> None:
    make_package(sources, "cpu-only", {"plain": ("", "echo cpu test ran")})
    make_package(sources, "fail-pkg", {"plain": ("", "echo failing on purpose; exit 1")})
    # opencl:type=cpu holds on any CPU (the test would install PoCL); fp64 is
    # known only where the host's OpenCL runtime reported it: the pocl profile.
    ocl = "needs-hw:opencl:type=cpu:fp64"
    make_package(sources, "ocl-pkg", {"ocl": (ocl, "echo opencl test ran")})
    check_node = " || ".join(f"test -c {n}" for n in nodes)
    make_package(
        sources,
        "cuda-pkg",
        {
            "smoke": ("needs-hw:cuda", f"{check_node}\necho cuda node present"),
            "rocm": ("needs-hw:rocm", "echo never here; exit 1"),
        },
        hwspec="cuda:cc>=8.0",
    )
    make_package(
        sources,
        "mixed-pkg",
        {
            "cuda": ("needs-hw:cuda:sm_90", f"{check_node}"),
            "ocl": (ocl, "echo opencl"),
            "plain": ("", "echo plain"),
        },
    )
    make_package(sources, "rocm-pkg", {"t": ("", "true")}, hwspec="rocm:gfx90a")
    make_package(
        sources,
        "slow-pkg",
        {
            "wait": (
                "",
                f"""\
                touch {markers}/started.$$
                i=0
                while [ ! -e {markers}/release ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
                """,
            )
        },
        hwspec="cuda:sm_90",
    )


@pytest.fixture(scope="module")
def fleet(
    rabbitmq: RabbitMQ, debci_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("fleet")
    nodes = [make_char_device(base / "dev", f"nvidia{i}", i) for i in range(2)]
    h100 = save_inventory(
        base / "h100.json",
        fake_nvidia(nodes[0], 0, "0000:65:00.0"),
        fake_nvidia(nodes[1], 1, "0000:66:00.0"),
    )
    a100_dev = dataclasses.replace(
        fake_nvidia(str(base / "dev" / "missing0"), 0),
        model="NVIDIA A100-PCIE-40GB",
        arch="sm_80",
        compute_capability="8.0",
        uuid="GPU-00000000-0000-0000-0000-0000000000a1",  # its own lock, not h100's GPU 0
    )
    a100 = save_inventory(base / "a100.json", a100_dev)
    cpu = save_inventory(base / "cpu.json")
    fleet_file = base / "fleet"
    fleet_file.write_text(
        f"Profile: cpu\nArchitecture: {ARCH}\nOrdinary: yes\nBackend: hwgpu\nInventory: {cpu}\n\n"
        f"Profile: pocl\nArchitecture: {ARCH}\nInventory: detect\n\n"
        f"Profile: h100\nArchitecture: {ARCH}\nInventory: {h100}\n\n"
        f"Profile: a100\nArchitecture: {ARCH}\nInventory: {a100}\n"
    )
    sources = base / "sources"
    markers = base / "markers"
    markers.mkdir()
    _packages(sources, nodes, markers)
    shutil.copytree(EXAMPLE, sources / "hwdemo")
    url = rabbitmq.url
    debci = CentralDebci(base / "central", url, [ARCH])
    queues = {}
    for name in ("cpu", "pocl", "h100", "a100"):
        info = json.loads(cli("profile", "--fleet", str(fleet_file), "--json", name).stdout)
        queues[name] = info["queue"]
        if name != "cpu":
            argv = ["profile", "--fleet", str(fleet_file), "--declare", "--amqp", url, name]
            if name != "pocl":  # the saved inventory is what this worker has (here: saved)
                argv += ["--check", "--inventory", str(base / f"{name}.json")]
            assert cli(*argv).stdout.strip() == name
    locks = base / "locks"
    locks.mkdir()
    common = {"debci_hwgpu_local_sources": str(sources), "debci_hwgpu_inner": "null"}

    def hw(profile: str, args: str) -> dict[str, str]:
        return {
            **common,
            "debci_hwgpu_profile": profile,
            "debci_hwgpu_args": f"--lock-dir {locks} --lock-timeout 600 {args}",
        }

    workers: dict[str, Worker] = {}
    try:
        for name, tag, settings in (
            ("cpu", None, hw("cpu", f"--inventory {cpu}")),
            ("pocl", "pocl", hw("pocl", "")),
            ("h100-a", "h100", hw("h100", f"--inventory {h100} --gpu 0")),
            ("h100-b", "h100", hw("h100", f"--inventory {h100} --gpu 1")),
            ("a100", "a100", hw("a100", f"--inventory {a100}")),
        ):
            workers[name] = Worker(debci_tree, base, name, url, tag=tag, settings=settings)
        all_workers = list(workers.values())
        for profile, n in (("cpu", 1), ("pocl", 1), ("h100", 2), ("a100", 1)):
            wait_consumers(url, queues[profile], n, all_workers)
        yield Fleet(fleet_file, sources, markers, rabbitmq, workers, queues, debci)
    finally:
        for w in workers.values():
            w.stop()


def _enqueue(f: Fleet, *packages: str, matrix: bool = True) -> dict[str, Any]:
    argv = ["enqueue", "--fleet", str(f.path), "--debci-config", str(f.debci.config), "--json"]
    argv += ["--trigger", "fleet-test/1"] + (["--matrix"] if matrix else [])
    proc = cli(*argv, *(str(f.sources / p) for p in packages), check=False)
    assert proc.returncode in (0, 1), proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_each_job_runs_where_it_fits_and_nowhere_else(fleet: Fleet) -> None:
    out = _enqueue(fleet, "cpu-only", "fail-pkg", "ocl-pkg", "cuda-pkg", "mixed-pkg", "rocm-pkg")
    published = {(p["package"], p["profile"]) for p in out["enqueued"]}
    expected = {
        ("cpu-only", "cpu"),
        ("fail-pkg", "cpu"),
        ("ocl-pkg", "pocl"),
        ("cuda-pkg", "h100"),
        ("cuda-pkg", "a100"),
        ("mixed-pkg", "h100"),
        ("mixed-pkg", "pocl"),
    }
    assert published == expected
    [unroutable] = out["unroutable"]
    assert unroutable["package"] == "rocm-pkg"
    assert unroutable["closest"] is not None
    assert "rocm:gfx90a not satisfied" in unroutable["reasons"][0]
    requests = {p["message"] for p in out["enqueued"]}
    assert "cuda-pkg unstable run-id:NEW trigger:fleet-test%2F1" in requests

    results = collect_results(fleet.broker.url, len(expected))
    got = {(r.package, r.profile): r for r in results}
    assert set(got) == expected
    status = {key: r.status for key, r in got.items()}
    assert status == {
        ("cpu-only", "cpu"): "pass",
        ("fail-pkg", "cpu"): "fail",
        ("ocl-pkg", "pocl"): "pass",
        ("cuda-pkg", "h100"): "pass",
        ("cuda-pkg", "a100"): "tmpfail",  # its device node is missing: never a fail
        ("mixed-pkg", "h100"): "pass",
        ("mixed-pkg", "pocl"): "pass",
    }
    # The skipped needs-hw: tests say why, in the result's log.
    assert "rocm                 SKIP needs-hw:rocm not satisfied" in got[("cuda-pkg", "h100")].log
    assert "SKIP needs-hw:opencl:type=cpu:fp64 not satisfied" in got[("mixed-pkg", "h100")].log
    assert "SKIP needs-hw:cuda:sm_90 not satisfied" in got[("mixed-pkg", "pocl")].log
    assert "cuda node present" in got[("cuda-pkg", "h100")].log
    assert got[("cuda-pkg", "a100")].exitcode == 16
    # What each worker received: the CPU worker never saw a GPU package.
    cpu_log = fleet.workers["cpu"].text()
    for pkg in ("ocl-pkg", "cuda-pkg", "mixed-pkg", "rocm-pkg"):
        assert f"{pkg} unstable" not in cpu_log
    assert "cpu-only unstable" in cpu_log and "fail-pkg unstable" in cpu_log
    gpu_logs = "".join(fleet.workers[w].text() for w in ("pocl", "h100-a", "h100-b", "a100"))
    assert "cpu-only unstable" not in gpu_logs and "fail-pkg unstable" not in gpu_logs
    assert "rocm-pkg" not in gpu_logs


def test_worker_killed_mid_job_the_job_is_redelivered(fleet: Fleet) -> None:
    out = _enqueue(fleet, "slow-pkg")
    assert [p["profile"] for p in out["enqueued"]] == ["h100"]
    wait_for("slow-pkg started", lambda: len(list(fleet.markers.glob("started.*"))) == 1)
    [first] = [
        fleet.workers[w]
        for w in ("h100-a", "h100-b")
        if "slow-pkg unstable" in fleet.workers[w].text()
    ]
    [other] = [fleet.workers[w] for w in ("h100-a", "h100-b") if fleet.workers[w] is not first]
    first.kill()
    # The broker hands the unacknowledged request to the other worker of the profile.
    wait_for("slow-pkg started again", lambda: len(list(fleet.markers.glob("started.*"))) == 2)
    (fleet.markers / "release").touch()
    [result] = collect_results(fleet.broker.url, 1)
    assert (result.package, result.profile, result.status) == ("slow-pkg", "h100", "pass")
    assert _depth(fleet.broker.url, "debci_results") == 0  # one result, not two
    assert "slow-pkg unstable" in other.text()
    assert "slow-pkg unstable/" not in first.text().split("slow-pkg unstable", 1)[1]
    assert consumers(fleet.broker.url, fleet.queues["h100"]) == 1


def test_malformed_requests_are_logged_and_dropped_and_the_worker_goes_on(fleet: Fleet) -> None:
    queue = fleet.queues["cpu"]
    for body in (b"Bad Pkg!", b"../../etc/passwd unstable", b"\x1b[31mred\xff", b""):
        publish_raw(fleet.broker.url, queue, body)
    # debci-worker passes this suite on; the hwgpu backend refuses it (it would
    # reach paths and the testbed's setup commands) and answers with a tmpfail.
    publish_raw(fleet.broker.url, queue, b"cpu-only unst'able$(id)")
    publish_raw(fleet.broker.url, queue, b"cpu-only unstable")
    refused, result = collect_results(fleet.broker.url, 2)
    assert (refused.package, refused.status) == ("cpu-only", "tmpfail")
    assert "refused a malformed request" in refused.log
    assert (result.package, result.status) == ("cpu-only", "pass")
    worker = fleet.workers["cpu"]
    assert worker.alive()
    log = worker.text()
    assert "invalid package name: Bad" in log
    assert "invalid package name: ../../etc/passwd" in log
    wait_for("the queue is empty", lambda: _depth(fleet.broker.url, queue) == 0)


def _depth(url: str, queue: str) -> int:
    from .fleet_support import channel

    conn = channel(url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def test_route_picks_the_shortest_queue_from_the_broker(fleet: Fleet, tmp_path: Path) -> None:
    inv = save_inventory(tmp_path / "inv.json", fake_nvidia("/dev/null"))
    fleet_file = tmp_path / "fleet"
    fleet_file.write_text(
        f"Profile: busy\nArchitecture: {ARCH}\nInventory: {inv}\n\n"
        f"Profile: idle\nArchitecture: {ARCH}\nInventory: {inv}\n"
    )
    busy = cli("profile", "--fleet", str(fleet_file), "--queue", "busy").stdout.strip()
    cli("profile", "--fleet", str(fleet_file), "--declare", "--amqp", fleet.broker.url, "busy")
    for _ in range(3):
        publish_raw(fleet.broker.url, busy, b"placeholder unstable")
    # No worker consumes either queue: --allow-idle lets the depths alone decide.
    argv = ["route", "--fleet", str(fleet_file), "--amqp", fleet.broker.url, "--json"]
    argv.append("--allow-idle")
    out = json.loads(cli(*argv, str(fleet.sources / "cuda-pkg")).stdout)
    assert [j["profile"] for j in out["jobs"]] == ["idle"]
    assert out["queue_depths"][busy] == 3
    # The broker as debci's own configuration names it (debci config amqp_server).
    debci_conf = fleet.workers["cpu"].dir / "config"
    argv2 = ["route", "--fleet", str(fleet_file), "--debci-config", str(debci_conf), "--json"]
    argv2.append("--allow-idle")
    out = json.loads(cli(*argv2, str(fleet.sources / "cuda-pkg")).stdout)
    assert out["queue_depths"][busy] == 3
    # Without the broker's depths, the first profile listed gets it.
    out = json.loads(cli(*argv, "--no-broker", str(fleet.sources / "cuda-pkg")).stdout)
    assert [j["profile"] for j in out["jobs"]] == ["busy"]


def test_the_example_package_runs_its_opencl_test_on_the_pocl_worker(
    fleet: Fleet, tmp_path: Path
) -> None:
    """examples/hwdemo (XS-Requires-Hwspec: opencl:type=cpu|cuda) where PoCL is the hardware.

    With an ordinary profile beside it, a spec any CPU satisfies would go there first
    (docs/spec-language.md); here the pocl profile is the one that fits.
    """
    text = fleet.path.read_text().split("\n\n")
    small = tmp_path / "fleet"
    small.write_text("\n\n".join(s for s in text if s.startswith("Profile: pocl")))
    argv = ["enqueue", "--fleet", str(small), "--debci-config", str(fleet.debci.config)]
    argv.append("--json")
    out = json.loads(cli(*argv, str(fleet.sources / "hwdemo")).stdout)
    assert [(p["package"], p["profile"]) for p in out["enqueued"]] == [("hwdemo", "pocl")]
    [result] = collect_results(fleet.broker.url, 1)
    assert (result.package, result.profile, result.status) == ("hwdemo", "pocl", "pass"), (
        result.log[-3000:]
    )
    summary = dict(line.split(None, 1) for line in result.summary.splitlines())
    assert summary["opencl-cpu"] == "PASS"  # a real OpenCL computation on PoCL
    assert summary["cuda-smoke"].startswith("SKIP needs-hw:cuda:cc>=7.0 not satisfied")
    assert "hwdemo" not in fleet.workers["cpu"].text()
