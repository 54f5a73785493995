"""Route source packages and publish debci test requests to the fitting queues.

Takes the same packages and policies as 'route', then publishes one
persistent request per job, 'PACKAGE SUITE [trigger:T]' with the given
priority, to the profile's queue on the broker (declared first exactly as
debci declares its queues).  The broker and its credentials come from debci's
configuration (debci config amqp_server ...) or --amqp.  Packages that fit no
profile are listed and not published.

Exit status: 0 when every routed job was published and nothing was left
unroutable, 1 when some packages were unroutable or in error (the others were
published), 2 when nothing could be published (fleet, index or broker error).
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
)
from autopkgtest_hw.commands.route import compute
from autopkgtest_hw.fleet.broker import connect
from autopkgtest_hw.fleet.enqueue import (
    DEFAULT_PRIORITY,
    check_priority,
    publish_jobs,
    request_line,
)

HELP = "route source packages and publish debci test requests to the fitting queues"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_package_options(parser)
    add_fleet_option(parser)
    parser.add_argument("--suite", default="unstable", help="the suite (default: %(default)s)")
    parser.add_argument("--trigger", metavar="TRIGGER", help="recorded as the run's trigger")
    parser.add_argument(
        "--priority",
        type=int,
        default=DEFAULT_PRIORITY,
        help="message priority, 0..10 (default: %(default)s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the requests, publish nothing"
    )
    add_json_option(parser)
    add_broker_options(parser)


def run(args: argparse.Namespace) -> int:
    check_priority(args.priority)
    request_line("check", args.suite, args.trigger)
    _fleet, routing = compute(args, need_depths=not args.dry_run)
    if args.dry_run:
        published = [
            {**j.to_dict(), "request": request_line(j.package, args.suite, args.trigger)}
            for j in routing.jobs
        ]
    else:
        with connect(broker_settings(args)) as broker:
            done = publish_jobs(broker, routing.jobs, args.suite, args.trigger, args.priority)
        published = [p.to_dict() for p in done]
    if args.json:
        out = routing.to_dict()
        out["published"] = [] if args.dry_run else published
        out["dry_run"] = args.dry_run
        print(json.dumps(out, indent=2))
    else:
        verb = "would publish" if args.dry_run else "published"
        for p in published:
            print(f"{verb} {safe(p['request'])!s:<40} -> {p['queue']}")
        for u in routing.unroutable:
            closest = f"closest {u.closest}: " if u.closest else ""
            log.warning(
                f"{safe(u.package)} fits no profile ({closest}{safe('; '.join(u.reasons))})"
            )
        for e in routing.errors:
            log.warning(f"{safe(e.package)}: {safe(e.error)}")
    return Exit.FAILED if routing.unroutable or routing.errors else Exit.OK
