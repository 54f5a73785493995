"""Which fleet profiles each source package goes to, and why.

Reads packages from archive Sources indexes (--sources; Requires-Hwspec is
the .dsc's copy of XS-Requires-Hwspec) and from unpacked source trees (whose
needs-hw: tests are read too), honours Architecture:, and routes each
package that has autopkgtests:

  Requires-Hwspec    every comma-separated spec holds on the profile ('|':
                     alternatives)
  needs-hw: tests    (no field) a profile where at least one of them can run
  neither            a CPU package: ordinary profiles only, never a GPU one

By default each package gets one job, on the fitting profile whose queue is
shortest now (depths read from the broker; --no-broker counts from zero);
--matrix gives one job on every fitting hardware (profiles with the same
devices count as one).  A package that fits no
profile is listed with the closest profile and why it fell short.

Exit status: 0 when every package with tests was routed, 1 when some were
unroutable or in error (all listed), 2 when the fleet file, an index or the
broker cannot be used.
"""

from __future__ import annotations

import argparse
import json

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.commands._common import add_json_option
from autopkgtest_hw.commands._fleet import (
    add_broker_options,
    add_fleet_option,
    add_package_options,
    broker_settings,
    entries,
    load_fleet,
)
from autopkgtest_hw.fleet.broker import BrokerError, connect
from autopkgtest_hw.fleet.profiles import Fleet, FleetError
from autopkgtest_hw.fleet.route import Routing, route
from autopkgtest_hw.source.archive import ArchiveError

HELP = "route source packages to the fleet profiles whose hardware fits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_package_options(parser)
    add_fleet_option(parser)
    add_json_option(parser)
    parser.add_argument(
        "--no-broker",
        action="store_true",
        help="do not read queue depths from the broker (every queue counts as empty)",
    )
    add_broker_options(parser)


def compute(args: argparse.Namespace, *, need_depths: bool) -> tuple[Fleet, Routing] | int:
    """The routing the arguments ask for, or an exit status after an error message."""
    if not args.sources and not args.srcdirs:
        log.error("no packages: give --sources FILE or source directories")
        return Exit.USAGE
    try:
        fleet = load_fleet(args)
    except FleetError as exc:
        log.error(str(exc))
        return Exit.USAGE
    depths: dict[str, int | None] = {}
    if need_depths and not args.matrix:
        try:
            with connect(broker_settings(args)) as broker:
                depths = broker.depths(p.queue for p in fleet)
        except BrokerError as exc:
            log.error(f"{exc} (--no-broker routes without queue depths)")
            return Exit.USAGE
    try:
        return fleet, route(fleet, entries(args), matrix=args.matrix, depths=depths)
    except (ArchiveError, FleetError) as exc:
        log.error(str(exc))
        return Exit.USAGE


def run(args: argparse.Namespace) -> int:
    result = compute(args, need_depths=not args.no_broker)
    if isinstance(result, int):
        return result
    _fleet, routing = result
    if args.json:
        print(json.dumps(routing.to_dict(), indent=2))
    else:
        print(render(routing))
    return Exit.FAILED if routing.unroutable or routing.errors else Exit.OK


def render(r: Routing) -> str:
    lines = []
    if r.jobs:
        # Every row's width (package names reach 100 characters, profiles 64).
        width = max(len("PACKAGE"), *(len(safe(j.package)) for j in r.jobs)) + 2
        pw = max(len("PROFILE"), *(len(j.profile) for j in r.jobs)) + 2
        qw = max(len("QUEUE"), *(len(j.queue) for j in r.jobs)) + 2
        lines.append(f"{'PACKAGE':<{width}}{'PROFILE':<{pw}}{'QUEUE':<{qw}}WHY")
        for j in r.jobs:
            lines.append(f"{safe(j.package):<{width}}{j.profile:<{pw}}{j.queue:<{qw}}{safe(j.why)}")
    if r.unroutable:
        lines += ["", "Fits no profile:"]
        for u in r.unroutable:
            closest = f"closest: {u.closest}" if u.closest else "no candidate profile"
            lines.append(f"  {safe(u.package)} (needs {safe(u.needs)}): {closest}")
            lines += [f"    {safe(reason)}" for reason in u.reasons]
    if r.errors:
        lines += ["", "Not routed, in error:"]
        lines += [f"  {safe(e.package)} ({safe(e.origin)}): {safe(e.error)}" for e in r.errors]
    profiles = len({j.profile for j in r.jobs})
    lines += [
        "",
        f"{r.packages} packages: {len(r.jobs)} jobs on {profiles} profiles ({r.policy}),"
        f" {len(r.unroutable)} fit no profile, {len(r.errors)} in error,"
        f" {r.without_tests} without autopkgtests.",
    ]
    return "\n".join(lines)
