"""Options and reading shared by profile, route and enqueue."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from autopkgtest_hw.fleet.broker import BrokerSettings, settings_from_debci
from autopkgtest_hw.fleet.profiles import DEFAULT_FLEET, ENV_FLEET, Fleet, fleet_path, read_fleet
from autopkgtest_hw.source.archive import SourceEntry, read_source_tree, read_sources_index


def add_fleet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fleet",
        metavar="FILE",
        help=f"the fleet file (default: ${ENV_FLEET}, else {DEFAULT_FLEET})",
    )


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker (default: debci's own configuration)")
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
    return read_fleet(fleet_path(args.fleet))


def broker_settings(args: argparse.Namespace) -> BrokerSettings:
    if args.amqp:
        return BrokerSettings(url=args.amqp)
    return settings_from_debci(args.debci_config)


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
