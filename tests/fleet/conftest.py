"""Fixtures of the fleet tests: a real RabbitMQ broker and a copy of debci's tree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .broker_support import RABBITMQ_SERVER, RabbitMQ
from .fleet_support import DEBCI, make_debci_tree


def _need_tools() -> None:
    missing = [
        name
        for name, there in (
            ("rabbitmq-server", RABBITMQ_SERVER.exists()),
            ("debci", (DEBCI / "bin" / "debci-worker").exists()),
            ("debci-collector", (DEBCI / "bin" / "debci-enqueue").exists()),
            ("amqp-tools", shutil.which("amqp-consume") is not None),
            ("autopkgtest", shutil.which("autopkgtest") is not None),
        )
        if not there
    ]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (tools/setup.sh installs them)")


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    """A broker of this test module's own, stopped (with its epmd) afterwards."""
    _need_tools()
    broker = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_rabbitmq(tmp_path: Path) -> Iterator[RabbitMQ]:
    """A broker for one test (one that restarts it)."""
    _need_tools()
    broker = RabbitMQ(tmp_path / "rabbitmq")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def debci_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_tools()
    return make_debci_tree(tmp_path_factory.mktemp("debci") / "debci")


@pytest.fixture(scope="module")
def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("debci workers with null testbeds and device nodes need root")
