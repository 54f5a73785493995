"""The debci tag, queue and worker options of a fleet profile.

A GPU worker is started as (after 'autopkgtest-hw profile --check --declare')

  debci-worker $(autopkgtest-hw profile --worker-options)

with debci's backend set to hwgpu: --worker-options prints '--tag PROFILE'
for debci 3, whose worker consumes the tagged queue, and '--arch
ARCH+PROFILE' for debci 4, which ignores tags and consumes the queue of
that architecture, where it publishes the profile's jobs (--debci-queues;
by default as the debci installed here).  Without an option it prints the
tag.  Without NAME the profile is the one whose Hosts: field lists this
machine's host name.  An ordinary profile has no tag: its workers are
debci's own, started without --tag.  --declare makes the profile's queue on
the broker the way debci declares queues (debci 3's worker declares only the
untagged queue, and its consumer needs the queue to exist).
--check detects this machine's hardware and compares it with the profile's
saved inventory: a worker must not take jobs for GPUs it does not have.  It
also fails while the hwgpu backend has stopped this worker (its passthrough
failed debci_hwgpu_max_tmpfails times in a row; the reason is printed),
detects with the backend's PoCL/Mesa cache directory, and says when a device
is there for root but not for this user (node permissions, an unwritable
cache).

Exit status: 0; 1 when the profile has no tag, no profile fits this host, or
--check found a difference; 2 when the fleet file or an inventory cannot be
read or the broker refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
from pathlib import Path

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.commands._common import add_inventory_option, add_json_option, get_inventory
from autopkgtest_hw.commands._fleet import (
    add_broker_options,
    add_fleet_option,
    load_fleet,
    open_broker,
)
from autopkgtest_hw.fleet.broker import BrokerError, debci_config
from autopkgtest_hw.fleet.health import state_dir, stopped, use_caches, user_hints
from autopkgtest_hw.fleet.profiles import Fleet, Profile, check_host
from autopkgtest_hw.virt.backends import availability

HELP = "the debci tag, queue and worker options of a fleet profile (for debci-worker)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", nargs="?", metavar="NAME", help="the profile (default: by host)")
    add_fleet_option(parser)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--queue", action="store_true", help="print the queue, not the tag")
    what.add_argument(
        "--worker-options",
        action="store_true",
        help="print debci-worker's options: --tag PROFILE (debci 3) or --arch ARCH+PROFILE"
        " (debci 4)",
    )
    what.add_argument("--list", action="store_true", help="list every profile of the fleet")
    add_json_option(parser)
    parser.add_argument(
        "--declare",
        action="store_true",
        help="declare the profile's queue on the broker (durable, x-max-priority 10)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check that this machine has the hardware of the profile's saved inventory",
    )
    add_inventory_option(parser)
    add_broker_options(parser)


def _state(args: argparse.Namespace) -> Path | None:
    """The hwgpu backend's state directory, where debci's configuration says."""
    if args.debci_config is None and shutil.which("debci") is None:
        return None
    values = debci_config(["data_basedir"], args.debci_config)
    with contextlib.suppress(BrokerError):  # 'debci config' fails on a key that is not set
        values.update(debci_config(["hwgpu_state_dir"], args.debci_config))
    return state_dir(values)


def _check(fleet: Fleet, profile: Profile, args: argparse.Namespace) -> int:
    state = _state(args)
    if state is not None:
        why = stopped(state)
        if why:
            log.error(f"profile {profile.name}: this worker {why}")
            return Exit.FAILED
        if not args.inventory:
            use_caches(state)  # detect as the backend runs: PoCL's cache where it may write
    saved = fleet.inventory(profile)
    actual = get_inventory(args)
    for name, can in availability(actual):
        (log.info if can.ok else log.warning)(
            f"testbed {name}: {'can' if can.ok else 'cannot'} have devices passed in ({can.reason})"
        )
    if saved is None or profile.inventory_path == "detect":
        return Exit.OK  # nothing promised beyond what is here
    problems = check_host(saved, actual, profile)
    if problems:
        problems += user_hints(saved, actual)
    for p in problems:
        log.error(f"profile {profile.name}: {p}")
    return Exit.FAILED if problems else Exit.OK


def _pick(fleet: Fleet, name: str | None) -> Profile | None:
    if name is not None:
        profile = fleet.get(name)
        if profile is None:
            names = ", ".join(p.name for p in fleet)
            log.error(f"no profile {safe(name)!r} in {fleet.path} (profiles: {names})")
        return profile
    host = socket.gethostname()
    found = fleet.for_host(host)
    if len(found) == 1:
        return found[0]
    if not found:
        log.error(f"no profile of {fleet.path} lists this host ({safe(host)}) in Hosts:")
    else:
        names = ", ".join(p.name for p in found)
        log.error(f"several profiles list this host ({safe(host)}): {names}; name one")
    return None


def run(args: argparse.Namespace) -> int:
    fleet = load_fleet(args)
    if args.list:
        if args.json:
            print(json.dumps([p.to_dict() for p in fleet], indent=2))
        else:
            for p in fleet:
                kind = "ordinary" if p.ordinary else "hardware"
                print(f"{p.name:<20} {p.arch:<8} {kind:<9} {p.queue}")
        return Exit.OK
    profile = _pick(fleet, args.name)
    if profile is None:
        return Exit.FAILED
    if args.check:
        status = _check(fleet, profile, args)
        if status:
            return status
    if args.declare:
        with open_broker(args) as broker:
            broker.declare(profile.queue)
        log.info(f"declared queue {profile.queue}")
    if args.json:
        print(json.dumps(profile.to_dict(), indent=2))
    elif args.queue:
        print(profile.queue)
    elif profile.ordinary:
        log.error(
            f"profile {profile.name} is ordinary: its workers are debci's own, started"
            f" without --tag (queue {profile.queue})"
        )
        return Exit.FAILED
    elif args.worker_options:
        print(" ".join(profile.worker_options))
    else:
        print(profile.tag)
    return Exit.OK
