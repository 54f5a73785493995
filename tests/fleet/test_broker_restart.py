"""Persistent requests survive a broker restart between enqueue and consume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .broker_support import RabbitMQ
from .fleet_support import (
    ARCH,
    CentralDebci,
    Worker,
    cli,
    collect_results,
    make_package,
    save_cpu_inventory,
)
from .fleet_support import channel as connection

pytestmark = pytest.mark.usefixtures("root_only")


def test_requests_survive_a_broker_restart(
    own_rabbitmq: RabbitMQ, debci_tree: Path, tmp_path: Path
) -> None:
    cpu = save_cpu_inventory(tmp_path / "cpu.json")
    fleet = tmp_path / "fleet"
    fleet.write_text(
        f"Profile: cpu\nArchitecture: {ARCH}\nOrdinary: yes\nBackend: hwgpu\nInventory: {cpu}\n"
    )
    sources = tmp_path / "sources"
    make_package(sources, "cpu-only", {"plain": ("", "echo cpu test ran")})
    url = own_rabbitmq.url
    debci = CentralDebci(tmp_path / "central", url, [ARCH])
    argv = ["enqueue", "--fleet", str(fleet), "--debci-config", str(debci.config), "--json"]
    # No worker consumes the queue yet: queued on purpose (--allow-idle).
    argv += ["--allow-idle", str(sources / "cpu-only")]
    out = json.loads(cli(*argv).stdout)
    [job] = out["enqueued"]
    own_rabbitmq.restart()
    conn = connection(url)
    try:
        waiting = conn.channel().queue_declare(job["queue"], passive=True).method.message_count
    finally:
        conn.close()
    assert waiting == 1
    worker = Worker(
        debci_tree,
        tmp_path,
        "cpu",
        url,
        tag=None,
        settings={
            "debci_hwgpu_local_sources": str(sources),
            "debci_hwgpu_args": f"--inventory {cpu} --lock-dir {tmp_path}",
            "debci_hwgpu_profile": "cpu",
        },
    )
    try:
        [result] = collect_results(url, 1)
    finally:
        worker.stop()
    assert (result.package, result.profile, result.status) == ("cpu-only", "cpu", "pass")
