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
from dataclasses import dataclass

from .. import log
from ..control import (
    DEFAULT_HWSPEC,
    KNOWN_RESTRICTIONS,
    ControlError,
    ControlReadError,
    SourcePackage,
    TestStanza,
    read_source_package,
)
from ..inventory import Inventory, InventoryError
from ..matcher import Verdict, match
from ..spec import SpecError, parse
from ._common import add_inventory_option, add_json_option, get_inventory

HELP = "which tests would run here, and the --ignore-restrictions for plain autopkgtest"

IGNORE_OPTION = "--ignore-restrictions="
#: autopkgtest knows it but never runs a test that has it.
_NEVER_RUNS = frozenset({"hint-testsuite-triggers"})


@dataclass(frozen=True)
class SpecResult:
    """One needs-hw: restriction (or one XS-Requires-Hwspec spec) and its verdict."""

    spec: str  # as written
    satisfied: bool
    reason: str
    invalid: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "spec": self.spec,
            "satisfied": self.satisfied,
            "invalid": self.invalid,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class TestPlan:
    name: str
    runs: bool
    needs_hw: tuple[SpecResult, ...]
    reasons: tuple[str, ...]  # why it runs or why it is skipped

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "runs": self.runs,
            "needs_hw": [r.to_dict() for r in self.needs_hw],
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Plan:
    source: str | None
    srcdir: str
    requires_hwspec: tuple[SpecResult, ...]
    tests: tuple[TestPlan, ...]
    hwspec_field: str | None = None  # the field name as written; None: absent (means cpu)

    @property
    def ignore_restrictions(self) -> tuple[str, ...]:
        """The needs-hw: restrictions that hold here, in the order they first appear."""
        tokens = (r.spec for t in self.tests for r in t.needs_hw if r.satisfied)
        return tuple(dict.fromkeys(tokens))

    @property
    def argument(self) -> str:
        """``--ignore-restrictions=A,B``; with nothing to ignore the value is empty,
        which autopkgtest accepts, so scripts can always pass the one word."""
        return IGNORE_OPTION + ",".join(self.ignore_restrictions)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "srcdir": self.srcdir,
            "hwspec_field": self.hwspec_field,
            "requires_hwspec": [r.to_dict() for r in self.requires_hwspec],
            "tests": [t.to_dict() for t in self.tests],
            "ignore_restrictions": list(self.ignore_restrictions),
            "argument": self.argument,
        }


def evaluate(text: str, inventory: Inventory) -> SpecResult:
    """The verdict on one spec; an invalid spec is never satisfied, and says so."""
    try:
        spec = parse(text)
    except SpecError as exc:
        return SpecResult(text, False, str(exc), invalid=True)
    verdict: Verdict = match(spec, inventory, label=text)
    return SpecResult(text, verdict.satisfied, verdict.message)


def plan_test(name: str, stanza: TestStanza, inventory: Inventory) -> TestPlan:
    results = tuple(evaluate(t.text, inventory) for t in stanza.needs_hw)
    blockers = [f"unknown field {f.name}" for f in stanza.unknown_fields]
    for t in stanza.restrictions:
        if t.text.startswith("needs-hw:"):
            continue
        if t.text not in KNOWN_RESTRICTIONS or t.text in _NEVER_RUNS:
            blockers.append(f"unknown restriction {t.text}")
    failed = [r.reason for r in results if not r.satisfied]
    if failed or blockers:
        return TestPlan(name, False, results, tuple(failed + blockers))
    reasons = [r.reason for r in results] or ["needs no hardware"]
    if stanza.has_restriction("skippable"):
        reasons.append("skippable: it may still skip itself (exit 77)")
    return TestPlan(name, True, results, tuple(reasons))


def make_plan(pkg: SourcePackage, inventory: Inventory) -> Plan:
    specs = [t.text for t in pkg.control.hwspecs] or [DEFAULT_HWSPEC]
    tests: tuple[TestPlan, ...] = ()
    if pkg.tests is not None:
        tests = tuple(plan_test(name, stanza, inventory) for name, stanza in pkg.tests.tests())
    return Plan(
        source=pkg.control.source,
        srcdir=pkg.srcdir,
        requires_hwspec=tuple(evaluate(s, inventory) for s in specs),
        tests=tests,
        hwspec_field=pkg.control.hwspec_fields[0].name if pkg.control.hwspec_fields else None,
    )


# -- the command ---------------------------------------------------------------


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
    try:
        pkg = read_source_package(args.srcdir)
    except ControlReadError as exc:
        log.error(str(exc))
        return 2
    except ControlError as exc:
        log.error(str(exc))
        return 1
    try:
        inventory = get_inventory(args)
    except InventoryError as exc:
        log.error(str(exc))
        return 2
    plan = make_plan(pkg, inventory)
    if args.args_only:
        print(plan.argument)
    elif args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(render(plan, args.inventory))
    return 0


def render(plan: Plan, inventory_path: str | None) -> str:
    where = f"the inventory {inventory_path}" if inventory_path else "this machine"
    lines = [f"{plan.source or plan.srcdir}: tests on {where}"]
    label = plan.hwspec_field or "no XS-Requires-Hwspec, so"
    for r in plan.requires_hwspec:
        lines.append(f"  {label}: {r.reason}")
    lines.append("")
    if not plan.tests:
        lines.append("no tests in debian/tests/control")
        return "\n".join(lines)
    for t in plan.tests:
        verdict = "RUN " if t.runs else "SKIP"
        first, *rest = t.reasons
        lines.append(f"{t.name:<20} {verdict} {first}")
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
