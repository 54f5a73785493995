"""Route source packages and create their debci jobs on the fitting live queues.

Takes the same packages and policies as 'route' (queue depths and live
workers read from the broker), then creates each job with debci's own
'debci enqueue': debci records it in its database (it gets a run id, the
collector records its result, debci's pages and API show it) under the
architecture ARCH+PROFILE, and publishes debci's request 'PACKAGE SUITE
run-id:N [trigger:T]' with the priority to the queue routing chose.  Run it
where debci's database is (the debci-collector host); the broker is the one
debci's configuration names (--debci-config DIR).  Packages that fit no
profile, or whose profiles have no live worker (unless --allow-idle), are
listed and not enqueued.  --dry-run makes the same decision from the same
broker and prints each message it would have debci publish.

--retries routes debci's own retries again: debci's retry publishes to
debci-tests-ARCH+PROFILE-BACKEND, which debci 3's workers do not consume;
each request there is moved, unchanged, to the shortest live queue of a
profile with the same hardware (run it from a timer, or after a retry).
debci 4's workers consume that very queue (--debci-queues arch): nothing is
moved.

Exit status: 0 when every routed job was enqueued and nothing was held or
unroutable, 1 when some packages were held, unroutable or in error (the
others were enqueued), 2 when nothing could be enqueued (fleet, index,
broker or debci error).
"""

from __future__ import annotations

import argparse
import json

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit, UsageError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.commands._common import add_json_option
from autopkgtest_hw.commands._fleet import (
    add_allow_idle_option,
    add_broker_options,
    add_fleet_option,
    add_package_options,
    compute,
    load_fleet,
    open_broker,
)
from autopkgtest_hw.fleet.broker import debci_config
from autopkgtest_hw.fleet.enqueue import (
    DEFAULT_PRIORITY,
    DEFAULT_REQUESTOR,
    check_priority,
    check_requestor,
    create_jobs,
    request_line,
    requests_for,
)
from autopkgtest_hw.fleet.retries import Moved, relay
from autopkgtest_hw.fleet.route import Routing

HELP = "route source packages and create their debci jobs on the fitting live queues"


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
        "--requestor",
        default=DEFAULT_REQUESTOR,
        help="the debci user the jobs are requested by (default: %(default)s)",
    )
    add_allow_idle_option(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="decide as the real run does and print the messages, create nothing",
    )
    parser.add_argument(
        "--retries",
        action="store_true",
        help="route debci's own retries again (no packages)",
    )
    add_json_option(parser)
    add_broker_options(parser, url=False)


def run(args: argparse.Namespace) -> int:
    check_priority(args.priority)
    check_requestor(args.requestor)
    request_line("check", args.suite, args.trigger)
    if args.retries:
        return _retries(args)
    with open_broker(args) as broker:
        fleet, routing = compute(args, broker)
        requests = requests_for(routing.jobs, args.suite, args.trigger, args.priority)
        moved: list[Moved] = []
        if not args.dry_run:
            create_jobs(
                broker,
                requests,
                args.suite,
                args.trigger,
                requestor=args.requestor,
                config_dir=args.debci_config,
            )
            # debci 4.x published to the queue of ARCH+PROFILE: that is the routed
            # one where its workers consume it (--debci-queues arch), else on to it.
            moved, _waiting = relay(broker, fleet, _backend(args), allow_idle=args.allow_idle)
    done = [r.to_dict() for r in requests]
    if args.json:
        out = routing.to_dict()
        out["enqueued"] = [] if args.dry_run else done
        out["would_enqueue"] = done if args.dry_run else []
        out["dry_run"] = args.dry_run
        out["relayed"] = [m.to_dict() for m in moved]
        print(json.dumps(out, indent=2))
    else:
        verb = "would enqueue" if args.dry_run else "enqueued"
        for r in requests:
            print(
                f"{verb} {safe(r.message)!s:<48} -> {r.job.queue} as {r.job.debci_arch}"
                f" (priority {r.priority})"
            )
        _report(routing)
    failed = routing.unroutable or routing.errors or routing.held
    return Exit.FAILED if failed else Exit.OK


def _report(routing: Routing) -> None:
    for h in routing.held:
        log.warning(f"{safe(h.package)} held: {h.reason}")
    for u in routing.unroutable:
        closest = f"closest {u.closest}: " if u.closest else ""
        log.warning(f"{safe(u.package)} fits no profile ({closest}{safe('; '.join(u.reasons))})")
    for e in routing.errors:
        log.warning(f"{safe(e.package)}: {safe(e.error)}")


def _backend(args: argparse.Namespace) -> str:
    """debci's configured backend on this host (where its retries are published)."""
    return debci_config(["backend"], args.debci_config).get("backend") or "lxc"


def _retries(args: argparse.Namespace) -> int:
    if args.sources or args.srcdirs:
        raise UsageError("--retries takes no packages: it routes the retries debci queued")
    fleet = load_fleet(args)
    backend = _backend(args)
    with open_broker(args) as broker:
        if args.dry_run:
            raise UsageError("--retries moves messages; there is no dry run of it")
        moved, waiting = relay(broker, fleet, backend, allow_idle=args.allow_idle)
    if args.json:
        out = {"moved": [m.to_dict() for m in moved], "waiting": [w.to_dict() for w in waiting]}
        print(json.dumps(out, indent=2))
    else:
        for m in moved:
            print(f"retry {m.request} -> {m.queue} ({m.profile})")
    for w in waiting:
        log.warning(f"{w.messages} retries held: {w.reason}")
    return Exit.FAILED if waiting else Exit.OK
