"""A real RabbitMQ broker for tests: its own data directory, loopback ports, stopped after.

rabbitmq-server runs as a plain process (no systemd): RABBITMQ_MNESIA_BASE,
RABBITMQ_LOG_BASE, HOME (the Erlang cookie), a node name and free loopback
ports for AMQP, Erlang distribution and a private epmd, so several test runs
can share the machine.  Nothing listens beyond 127.0.0.1, and stop() ends
the broker and its epmd.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: Bound for the broker to come up or go away (it takes about 5 s here).
BROKER_WITHIN = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RabbitMQ:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.node = f"autopkgtest-hw-{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        for d in ("home", "mnesia", "log"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e.update(
            HOME=str(self.base / "home"),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE="/dev/null",
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return e

    def start(self) -> None:
        self.starts += 1
        out = open(self.base / f"server-{self.starts}.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + BROKER_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.server_output()}")
            if self.answers():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not answer: {self.server_output()}")

    def server_output(self) -> str:
        return (self.base / f"server-{self.starts}.out").read_text(errors="replace")[-3000:]

    def answers(self) -> bool:
        import pika
        import pika.exceptions

        # Refused connections while the broker starts are expected: not errors.
        logging.getLogger("pika").setLevel(logging.CRITICAL)

        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 2
        try:
            pika.BlockingConnection(params).close()
        except pika.exceptions.AMQPError:
            return False
        return True

    def stop(self) -> None:
        """A clean shutdown (messages on disk stay), then the private epmd."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=BROKER_WITHIN)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # The beam process may outlive the wrapper script for a moment.
        deadline = time.monotonic() + BROKER_WITHIN
        while proc is not None and time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        self.proc = None
        subprocess.run(
            ["epmd", "-kill"],
            env=self.env(),
            capture_output=True,
            check=False,
            timeout=30,
        )

    def restart(self) -> None:
        self.stop()
        self.start()
