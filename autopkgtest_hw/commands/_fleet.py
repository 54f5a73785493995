"""Options and reading shared by profile, route and enqueue."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from autopkgtest_hw.base.errors import UsageError
from autopkgtest_hw.fleet.broker import (
    BrokerSettings,
    Transport,
    connect,
    debci_queue_scheme,
    settings_from_debci,
)
from autopkgtest_hw.fleet.profiles import (
    DEFAULT_FLEET,
    ENV_FLEET,
    PER_ARCH,
    QUEUE_SCHEMES,
    TAGGED,
    Fleet,
    fleet_path,
    read_fleet,
)
from autopkgtest_hw.fleet.route import Routing, route
from autopkgtest_hw.source.archive import SourceEntry, read_source_tree, read_sources_index


def add_fleet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fleet",
        metavar="FILE",
        help=f"the fleet file (default: ${ENV_FLEET}, else {DEFAULT_FLEET})",
    )
    parser.add_argument(
        "--debci-queues",
        choices=QUEUE_SCHEMES,
        help=f"how the fleet's debci workers take a profile's jobs: {TAGGED} (debci 3:"
        " debci-worker --tag PROFILE, queue debci-tests-ARCH-BACKEND_PROFILE) or"
        f" {PER_ARCH} (debci 4: debci-worker --arch ARCH+PROFILE, queue"
        " debci-tests-ARCH+PROFILE-BACKEND); default: as the debci installed here"
        f" (its --debci-config), else {TAGGED}",
    )


def add_broker_options(parser: argparse.ArgumentParser, *, url: bool = True) -> None:
    group = parser.add_argument_group("broker (default: debci's own configuration)")
    if url:
        group.add_argument(
            "--amqp",
            metavar="URL",
            help="the AMQP broker, amqp://[user:password@]host[:port][/vhost]",
        )
    group.add_argument(
        "--debci-config",
        metavar="DIR",
        help="read the broker from this debci configuration directory (debci's -c)",
    )


def add_allow_idle_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-idle",
        action="store_true",
        help="route to profiles whose queue no worker consumes now (default: hold those jobs)",
    )


def add_package_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sources",
        action="append",
        default=[],
        metavar="FILE",
        help="an archive Sources index (plain, .gz, .xz, .bz2, .lz4, .zst); repeatable",
    )
    parser.add_argument(
        "srcdirs",
        nargs="*",
        metavar="SRCDIR",
        help="unpacked source packages (their needs-hw: tests are read too)",
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="one job on every fitting hardware (default: one job, on the shortest queue)",
    )


def load_fleet(args: argparse.Namespace) -> Fleet:
    scheme = args.debci_queues
    if scheme is None:
        scheme = debci_queue_scheme(getattr(args, "debci_config", None)) or TAGGED
    return read_fleet(fleet_path(args.fleet), scheme)


def broker_settings(args: argparse.Namespace) -> BrokerSettings:
    if getattr(args, "amqp", None):
        return BrokerSettings(url=args.amqp)
    return settings_from_debci(args.debci_config)


@contextmanager
def open_broker(args: argparse.Namespace) -> Iterator[Transport]:
    """The command's one broker connection."""
    with connect(broker_settings(args)) as broker:
        yield broker


def compute(args: argparse.Namespace, broker: Transport | None) -> tuple[Fleet, Routing]:
    """The routing the arguments ask for; with ``broker``, by its queue depths and consumers."""
    if not args.sources and not args.srcdirs:
        raise UsageError("no packages: give --sources FILE or source directories")
    fleet = load_fleet(args)
    depths: dict[str, int | None] = {}
    consumers: dict[str, int] | None = None
    if broker is not None:
        states = broker.states(p.queue for p in fleet)
        depths = {q: (s.messages if s else None) for q, s in states.items()}
        consumers = {q: (s.consumers if s else 0) for q, s in states.items()}
    return fleet, route(
        fleet,
        entries(args),
        matrix=args.matrix,
        depths=depths,
        consumers=consumers,
        allow_idle=args.allow_idle,
    )


def entries(args: argparse.Namespace) -> Iterator[SourceEntry]:
    """Every package named: the newest version where an index lists one twice."""
    from debian.debian_support import version_compare

    newest: dict[str, SourceEntry] = {}
    for path in args.sources:
        for entry in read_sources_index(path):
            if entry.error:  # each stanza in error is reported, even without a name
                yield entry
                continue
            old = newest.get(entry.package)
            if old is None or version_compare(entry.version, old.version) > 0:
                newest[entry.package] = entry
    yield from newest.values()
    for srcdir in args.srcdirs:
        yield read_source_tree(srcdir)
