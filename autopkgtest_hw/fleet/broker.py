"""The AMQP broker a debci fleet shares (RabbitMQ), through python3-pika.

Where it is and how to log in come from debci's own configuration
(``debci config amqp_server ...``, i.e. /etc/debci/debci.conf and conf.d) or
the command line; never from this code.  Queues are declared exactly as debci
declares them (durable, ``x-max-priority`` 10), so a debci worker and this
module agree on every queue.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe

#: debci's queue arguments (lib/debci/amqp.rb): durable, priorities 0..10.
MAX_PRIORITY = 10
QUEUE_ARGUMENTS = {"x-max-priority": MAX_PRIORITY}
CONNECT_TIMEOUT = 10.0
_DEBCI_KEYS = ("amqp_server", "amqp_ssl", "amqp_cacert", "amqp_cert", "amqp_key")
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,255}$")


class BrokerError(HwError):
    """The broker cannot be reached, or refused what we asked."""


@dataclass(frozen=True)
class BrokerSettings:
    url: str
    ssl: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def display(self) -> str:
        """The URL without its password (debci's own rule)."""
        return safe(re.sub(r":[^/@]*@", ":*********@", self.url))


def _run_debci_config(
    debci: str, keys: Iterable[str], config_dir: str | None
) -> subprocess.CompletedProcess[str]:
    """``debci config KEYS...`` run (with ``config_dir`` as debci_config_dir, if given)."""
    env = dict(os.environ)
    if config_dir:
        env["debci_config_dir"] = config_dir
    try:
        return subprocess.run(
            [debci, "config", *keys],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"cannot run 'debci config': {exc}") from None


def debci_config(keys: Iterable[str], config_dir: str | None = None) -> dict[str, str]:
    """Values of debci's configuration, read with ``debci config`` (its own loading)."""
    debci = shutil.which("debci")
    if debci is None:
        raise BrokerError("debci is not installed: give the broker with --amqp URL")
    proc = _run_debci_config(debci, keys, config_dir)
    if proc.returncode != 0:
        raise BrokerError(f"'debci config' failed: {safe(proc.stderr.strip())}")
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines()[:100]:
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def debci_queue_scheme(config_dir: str | None = None) -> str | None:
    """How this host's debci takes a profile's jobs: ``tagged`` (3.x), ``arch`` (4.x).

    debci up to 3.12 has ``debci_amqp_queue`` (the queue its worker consumes,
    with ``--tag``'s suffix; its enqueue publishes there); 4.x has neither:
    ``debci config amqp_queue`` says ``key amqp_queue not found``.  None when
    debci is not installed here.
    """
    debci = shutil.which("debci")
    if debci is None:
        return None
    proc = _run_debci_config(debci, ["amqp_queue"], config_dir)
    if proc.returncode == 0 and proc.stdout.startswith("amqp_queue="):
        return "tagged"
    if proc.returncode != 0 and "key amqp_queue not found" in proc.stderr:
        return "arch"
    raise BrokerError(
        f"'debci config amqp_queue' failed: {safe((proc.stderr or proc.stdout).strip(), 300)}"
    )


def settings_from_debci(config_dir: str | None = None) -> BrokerSettings:
    """Read debci's AMQP settings with ``debci config`` (its own config loading)."""
    values = debci_config(_DEBCI_KEYS, config_dir)
    url = values.get("amqp_server") or "amqp://localhost"
    return BrokerSettings(
        url=url,
        ssl=values.get("amqp_ssl") == "true",
        cacert=values.get("amqp_cacert") or None,
        cert=values.get("amqp_cert") or None,
        key=values.get("amqp_key") or None,
    )


def check_queue_name(name: str) -> str:
    if not _QUEUE_RE.match(name):
        raise BrokerError(f"invalid queue name {safe(name)!r}")
    return name


def _parameters(settings: BrokerSettings) -> Any:
    import pika

    parts = urlsplit(settings.url)
    if parts.scheme not in ("amqp", "amqps"):
        raise BrokerError(f"not an AMQP URL: {settings.display}")
    try:
        params = pika.URLParameters(settings.url)
    except (ValueError, TypeError) as exc:
        raise BrokerError(f"bad AMQP URL {settings.display}: {exc}") from None
    if settings.ssl and parts.scheme == "amqp":
        context = ssl.create_default_context(cafile=settings.cacert)
        if settings.cert:
            context.load_cert_chain(settings.cert, settings.key)
        params.ssl_options = pika.SSLOptions(context, parts.hostname)
        if parts.port is None:
            params.port = 5671
    params.connection_attempts = 1
    params.socket_timeout = CONNECT_TIMEOUT
    params.blocked_connection_timeout = 60
    params.heartbeat = 0
    return params


@dataclass(frozen=True)
class QueueState:
    """What the broker says of a queue: messages waiting, workers consuming."""

    messages: int
    consumers: int


@dataclass(frozen=True)
class Message:
    """One message taken off a queue, not yet acknowledged."""

    body: bytes
    priority: int
    tag: int


class Transport(Protocol):
    """The fleet's one seam to its broker: every command opens one, once.

    :class:`Broker` (RabbitMQ through pika) is the one implementation; a test
    that needs no broker uses none (``route --no-broker``), never a fake.
    """

    def state(self, queue: str) -> QueueState | None: ...

    def states(self, queues: Iterable[str]) -> dict[str, QueueState | None]: ...

    def declare(self, queue: str) -> None: ...

    def publish(self, queue: str, body: bytes, priority: int) -> None: ...

    def take(self, queue: str) -> Message | None: ...

    def ack(self, message: Message) -> None: ...

    def give_back(self, message: Message) -> None: ...


class Broker:
    """One connection and channel; use as ``with connect(settings) as broker``."""

    def __init__(self, settings: BrokerSettings, connection: Any) -> None:
        self.settings = settings
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_delivery()

    def _reopen(self) -> None:
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()

    def state(self, queue: str) -> QueueState | None:
        """Messages waiting in ``queue`` and its consumers; None when no one has declared it."""
        import pika.exceptions

        check_queue_name(queue)
        try:
            result = self._channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._reopen()
            if exc.reply_code == 404:
                return None
            raise BrokerError(f"queue {queue}: {safe(exc.reply_text)}") from None
        return QueueState(int(result.method.message_count), int(result.method.consumer_count))

    def states(self, queues: Iterable[str]) -> dict[str, QueueState | None]:
        return {q: self.state(q) for q in dict.fromkeys(queues)}

    def take(self, queue: str) -> Message | None:
        """The next message of ``queue`` (unacknowledged), or None when it is empty or absent."""
        if self.state(queue) is None:
            return None
        method, props, body = self._channel.basic_get(queue, auto_ack=False)
        if method is None:
            return None
        return Message(bytes(body), int(props.priority or 0), int(method.delivery_tag))

    def ack(self, message: Message) -> None:
        self._channel.basic_ack(message.tag)

    def give_back(self, message: Message) -> None:
        """Return an unacknowledged message to its queue (it keeps its place)."""
        self._channel.basic_nack(message.tag, requeue=True)

    def declare(self, queue: str) -> None:
        """Declare ``queue`` as debci does; an existing queue must have the same settings."""
        import pika.exceptions

        check_queue_name(queue)
        try:
            self._channel.queue_declare(queue, durable=True, arguments=QUEUE_ARGUMENTS)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._reopen()
            raise BrokerError(
                f"cannot declare queue {queue}: {safe(exc.reply_text)} (it exists with"
                " other settings than debci's: durable, x-max-priority 10)"
            ) from None

    def publish(self, queue: str, body: bytes, priority: int) -> None:
        """A persistent message, confirmed by the broker before this returns."""
        import pika
        import pika.exceptions

        check_queue_name(queue)
        props = pika.BasicProperties(delivery_mode=2, priority=priority)
        try:
            self._channel.basic_publish("", queue, body, props, mandatory=True)
        except pika.exceptions.UnroutableError:
            raise BrokerError(f"the broker has no queue {queue}") from None
        except pika.exceptions.NackError:
            raise BrokerError(f"the broker refused the message for {queue}") from None


@contextmanager
def connect(settings: BrokerSettings) -> Iterator[Broker]:
    import pika
    import pika.exceptions

    try:
        connection = pika.BlockingConnection(_parameters(settings))
    except pika.exceptions.AMQPError as exc:
        raise BrokerError(f"cannot connect to {settings.display}: {safe(repr(exc))}") from None
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"cannot connect to {settings.display}: {exc}") from None
    try:
        yield Broker(settings, connection)
    except pika.exceptions.AMQPError as exc:
        raise BrokerError(f"broker {settings.display}: {safe(repr(exc))}") from None
    finally:
        try:
            if connection.is_open:
                connection.close()
        except pika.exceptions.AMQPError:
            pass
