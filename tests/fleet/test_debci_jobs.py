"""Routed jobs are debci's own jobs: recorded, shown, retried; only live workers get them.

A real debci central host (its database, ``debci collector`` and its web app
on loopback, all the installed debci's own: 3.6 here, 3.12 and 4.4 in the
release roots of test_debci_releases.py) beside real debci-worker processes,
started with what ``autopkgtest-hw profile --worker-options`` says for that
debci (``--tag PROFILE``, or ``--arch ARCH+PROFILE`` on debci 4):

  h100     one worker; a saved inventory whose device node exists
  a100     no worker at all (stopped): listed first, so only liveness keeps it out
  broken   one worker whose passthrough always fails (its node is missing),
           stopping after 2 failures in a row

Jobs are created with ``autopkgtest-hw enqueue`` (``debci enqueue`` inside) and
read back through debci's API and pages, as an operator would.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import fake_nvidia, make_char_device, save_inventory

from .broker_support import RabbitMQ
from .fleet_support import (
    ARCH,
    WITHIN,
    CentralDebci,
    Worker,
    cli,
    consumers,
    make_package,
    wait_consumers,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("root_only")

PROFILES = ("a100", "h100", "broken")


@dataclass
class Site:
    fleet: Path
    sources: Path
    broker: RabbitMQ
    debci: CentralDebci
    workers: dict[str, Worker]
    queues: dict[str, str]
    key: str

    def enqueue(self, *args: str, packages: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
        argv = ["enqueue", "--fleet", str(self.fleet), "--debci-config", str(self.debci.config)]
        argv += ["--json", "--trigger", "gpu-test/1", *args]
        proc = cli(*argv, *(str(self.sources / p) for p in packages), check=False)
        assert proc.returncode in (0, 1), proc.stderr
        out: dict[str, Any] = json.loads(proc.stdout)
        return proc.returncode, out

    def results(self) -> list[dict[str, Any]]:
        """The jobs autopkgtest-hw requested, as debci's API reports them."""
        # (debci 4.4 wants "since"; it lists only the jobs received since then)
        status, body = self.debci.http("/api/v1/test?since=0", key=self.key)
        assert status == 200, body
        results: list[dict[str, Any]] = json.loads(body)["results"]
        return results

    def finished(self, package: str, n: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def done() -> bool:
            found[:] = [r for r in self.results() if r["package"] == package]
            return len(found) >= n and all(r["status"] for r in found)

        wait_for(f"{n} recorded result(s) of {package}", done)
        return found


@pytest.fixture(scope="module")
def site(
    rabbitmq: RabbitMQ, debci_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("site")
    node = make_char_device(base / "dev", "nvidia0", 0)
    h100 = save_inventory(base / "h100.json", fake_nvidia(node, 0))
    a100 = save_inventory(
        base / "a100.json",
        dataclasses.replace(
            fake_nvidia(node, 1),
            model="NVIDIA A100-PCIE-40GB",
            arch="sm_80",
            compute_capability="8.0",
        ),
    )
    broken = save_inventory(
        base / "broken.json",
        dataclasses.replace(
            fake_nvidia(str(base / "dev" / "gone0"), 2),
            model="Tesla T4",
            arch="sm_75",
            compute_capability="7.5",
        ),
    )
    inventories = {"a100": a100, "h100": h100, "broken": broken}
    fleet = base / "fleet"
    fleet.write_text(
        "\n".join(
            f"Profile: {p}\nArchitecture: {ARCH}\nInventory: {inventories[p]}\n" for p in PROFILES
        )
    )
    sources = base / "sources"
    make_package(sources, "h100-pkg", {"t": ("needs-hw:cuda", "echo ran")}, hwspec="cuda:sm_90")
    make_package(sources, "a100-pkg", {"t": ("", "true")}, hwspec="cuda:sm_80")
    make_package(sources, "any-cuda", {"t": ("", "true")}, hwspec="cuda:cc>=8.0")
    for i in (1, 2, 3):
        make_package(sources, f"t4-pkg{i}", {"t": ("", "true")}, hwspec="cuda:sm_75")
    debci = CentralDebci(base / "central", rabbitmq.url, [ARCH] + [f"{ARCH}+{p}" for p in PROFILES])
    key = debci.run("api", "setkey", "autopkgtest-hw").strip()
    queues = {}
    options: dict[str, list[str]] = {}
    for p in PROFILES:
        # The queue and debci-worker's options for the debci installed here:
        # --tag (debci 3) or --arch ARCH+PROFILE (debci 4, which ignores tags).
        info = json.loads(cli("profile", "--fleet", str(fleet), "--json", p).stdout)
        queues[p] = info["queue"]
        options[p] = info["worker_options"]
        cli("profile", "--fleet", str(fleet), "--declare", "--amqp", rabbitmq.url, p)
    locks = base / "locks"
    locks.mkdir()
    workers: dict[str, Worker] = {}
    try:
        debci.start_collector()
        debci.start_web()
        for name, settings in (
            ("h100", {}),
            ("broken", {"debci_hwgpu_max_tmpfails": "2"}),
        ):
            conf = {
                "debci_hwgpu_local_sources": str(sources),
                "debci_hwgpu_inner": "null",
                "debci_hwgpu_profile": name,
                "debci_hwgpu_args": f"--lock-dir {locks} --inventory {inventories[name]}",
                **settings,
            }
            workers[name] = Worker(
                debci_tree, base, name, rabbitmq.url, tag=name, settings=conf, options=options[name]
            )
        for name in workers:
            wait_consumers(rabbitmq.url, queues[name], 1, list(workers.values()))
        yield Site(fleet, sources, rabbitmq, debci, workers, queues, key)
    finally:
        for w in workers.values():
            w.stop()
        debci.stop()


def _decisions(entries: object) -> list[tuple[object, ...]]:
    assert isinstance(entries, list)
    return sorted((e["package"], e["profile"], e["queue"], e["debci_arch"]) for e in entries)


def test_jobs_are_debci_jobs_on_live_workers_shown_and_retried(site: Site) -> None:
    packages = ("h100-pkg", "any-cuda", "a100-pkg")
    rc_dry, dry = site.enqueue("--dry-run", packages=packages)
    rc, real = site.enqueue(packages=packages)
    # The dry run decided exactly what the real run did, and showed debci's message.
    assert (rc_dry, rc) == (1, 1)  # a100-pkg is held
    assert _decisions(dry["would_enqueue"]) == _decisions(real["enqueued"])
    assert dry["held"] == real["held"]
    messages = {e["package"]: e["message"] for e in dry["would_enqueue"]}
    assert messages["h100-pkg"] == "h100-pkg unstable run-id:NEW trigger:gpu-test%2F1"
    # a100 has no worker: listed first and with the emptiest queue, it still gets nothing.
    assert _decisions(real["enqueued"]) == [
        ("any-cuda", "h100", site.queues["h100"], f"{ARCH}+h100"),
        ("h100-pkg", "h100", site.queues["h100"], f"{ARCH}+h100"),
    ]
    [held] = real["held"]
    assert held["package"] == "a100-pkg" and held["profiles"] == ["a100"]
    assert f"no consumer on {site.queues['a100']}" in held["reason"]
    assert "--allow-idle" in held["reason"]

    # The collector recorded each result; debci's API shows status and profile.
    [job] = site.finished("h100-pkg", 1)
    assert (job["arch"], job["status"], job["trigger"]) == (f"{ARCH}+h100", "pass", "gpu-test/1")
    # debci's own page for the package, on its own row per profile.
    status, page = site.debci.http(f"/packages/h/h100-pkg/unstable/{ARCH}+h100/")
    assert status == 200 and "pass" in page.lower(), page[-2000:]
    # The worker's log names the outcome.
    assert f"hwgpu: h100-pkg unstable/{ARCH} pass" in site.workers["h100"].text()

    # debci's retry (its API) goes back through routing to a live worker.
    status, body = site.debci.http(f"/api/v1/retry/{job['run_id']}", key=site.key, post=True)
    assert status == 200, body
    intake = f"debci-tests-{ARCH}+h100-hwgpu"
    moved = json.loads(cli(*_retries(site)).stdout)["moved"]
    if site.queues["h100"] == intake:
        # debci 4: the profile's workers consume the queue debci retries to.
        assert moved == []
    else:
        assert [(m["from"], m["queue"]) for m in moved] == [(intake, site.queues["h100"])]
        assert moved[0]["request"].startswith("h100-pkg unstable run-id:")
    jobs = site.finished("h100-pkg", 2)
    assert {(j["arch"], j["status"]) for j in jobs} == {(f"{ARCH}+h100", "pass")}
    assert len({j["run_id"] for j in jobs}) == 2

    # Queued anyway on request: the held package goes to the idle profile's queue.
    _rc, idle = site.enqueue("--allow-idle", packages=("a100-pkg",))
    assert _decisions(idle["enqueued"]) == [
        ("a100-pkg", "a100", site.queues["a100"], f"{ARCH}+a100")
    ]


def _retries(site: Site) -> list[str]:
    return [
        "enqueue",
        "--retries",
        "--fleet",
        str(site.fleet),
        "--debci-config",
        str(site.debci.config),
        "--json",
    ]


def test_a_worker_whose_passthrough_keeps_failing_stops_and_says_why(site: Site) -> None:
    worker = site.workers["broken"]
    queue = site.queues["broken"]
    _rc, out = site.enqueue(packages=("t4-pkg1", "t4-pkg2", "t4-pkg3"))
    assert [e["profile"] for e in out["enqueued"]] == ["broken"] * 3
    wait_for("the broken worker stops", lambda: not worker.alive(), WITHIN)
    log = worker.text()
    assert f"hwgpu: t4-pkg1 unstable/{ARCH} tmpfail (exit 16): " in log
    assert "gone0 (missing)" in log  # the one-line reason: what is wrong
    assert "stopping this worker: 2 passthrough failures in a row" in log
    # The first failure is recorded as debci's tmpfail; the job that found the
    # device broken the second time, and the one after it, wait for a working worker.
    [first] = site.finished("t4-pkg1", 1)
    assert first["status"] == "tmpfail"
    time.sleep(1)
    assert consumers(site.broker.url, queue) == 0
    # Nor is the job in hand answered (debci 4's worker would make up a tmpfail).
    waiting = [r for r in site.results() if r["package"] in ("t4-pkg2", "t4-pkg3")]
    assert all(r["status"] is None for r in waiting), waiting
    from .fleet_support import channel

    conn = channel(site.broker.url)
    try:
        assert conn.channel().queue_declare(queue, passive=True).method.message_count == 2
    finally:
        conn.close()
    # It does not start again: profile --check (its ExecStartPre) says why.
    argv = ["profile", "--fleet", str(site.fleet), "--check", "broken"]
    argv += [
        "--debci-config",
        str(worker.dir / "config"),
        "--inventory",
        str(site.fleet.parent / "broken.json"),
    ]
    check = cli(*argv, check=False)
    assert check.returncode == 1
    assert "stopped taking jobs: 2 passthrough failures in a row" in check.stderr
    # Nothing more is routed to it, and the reason is given.
    rc, again = site.enqueue(packages=("t4-pkg1",))
    assert rc == 1 and again["enqueued"] == []
    [held] = again["held"]
    assert held["profiles"] == ["broken"]
