"""Which tests of a source package would run on this machine, which would skip, and why.

Reads debian/tests/control like autopkgtest and matches every needs-hw:
restriction against this machine (or a saved inventory).  A test runs when
all its needs-hw: restrictions hold.  The plan ends with the
--ignore-restrictions= argument that makes plain autopkgtest run exactly
those tests: it lists every needs-hw: restriction that holds here, so a test
with one restriction that does not hold keeps that one and is still skipped
as "unknown restriction".  --args-only prints just that argument.

The plan judges hardware and restriction names only; autopkgtest still
checks the testbed's capabilities (needs-root and the like) itself.

Exit status: 0, or 1 when debian/tests/control is malformed, 2 when the
source directory or the inventory cannot be read.
"""

from __future__ import annotations

import argparse
import json
import shlex

from autopkgtest_hw.base.errors import Exit, exit_status
from autopkgtest_hw.base.text import escape
from autopkgtest_hw.commands._common import add_inventory_option, add_json_option, get_inventory
from autopkgtest_hw.source.control import ControlError, ControlReadError, read_source_package
from autopkgtest_hw.source.planner import Plan, make_plan

HELP = "which tests would run here, and the --ignore-restrictions for plain autopkgtest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "srcdir", nargs="?", default=".", metavar="SRCDIR", help="unpacked source package"
    )
    add_inventory_option(parser)
    add_json_option(parser)
    parser.add_argument(
        "--args-only",
        action="store_true",
        help="print only the --ignore-restrictions= argument (its value may be empty)",
    )


def run(args: argparse.Namespace) -> int:
    # Malformed: exit 1; unreadable (the inner, first to see it): exit 2.
    with exit_status(Exit.FAILED, ControlError), exit_status(Exit.USAGE, ControlReadError):
        pkg = read_source_package(args.srcdir)
    plan = make_plan(pkg, get_inventory(args))  # InventoryError: cli exits 2
    if args.args_only:
        print(plan.argument)
    elif args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(escape(render(plan, args.inventory), keep_newlines=True))
    return Exit.OK


def render(plan: Plan, inventory_path: str | None) -> str:
    where = f"the inventory {inventory_path}" if inventory_path else "this machine"
    if plan.arch:
        where += f" ({plan.arch})"
    lines = [f"{plan.source or plan.srcdir}: tests on {where}"]
    label = plan.hwspec_field or "no XS-Requires-Hwspec, so"
    for r in plan.requires_hwspec:
        lines.append(f"  {label}: {escape(r.reason)}")
    lines.append("")
    if not plan.tests:
        lines.append("no tests in debian/tests/control")
        return "\n".join(lines)
    for t in plan.tests:
        verdict = "RUN " if t.runs else "SKIP"
        first, *rest = (escape(r) for r in t.reasons)
        lines.append(f"{escape(t.name):<20} {verdict} {first}")
        lines += [f"{'':<20}      {r}" for r in rest]
    running = sum(t.runs for t in plan.tests)
    lines.append("")
    lines.append(f"{running} of {len(plan.tests)} tests would run.")
    if plan.ignore_restrictions:
        lines.append("Plain autopkgtest runs exactly those with:")
        lines.append(
            f"  autopkgtest {shlex.quote(plan.argument)} {shlex.quote(plan.srcdir)} -- VIRT-SERVER"
        )
    else:
        lines.append("No needs-hw: restriction holds here; plain autopkgtest needs no argument.")
    return "\n".join(lines)
