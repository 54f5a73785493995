"""Which tests of a source package would run on a machine, which would skip, and why.

``make_plan(pkg, inventory)`` matches every needs-hw: restriction of
debian/tests/control (and the XS-Requires-Hwspec specs of debian/control)
against an inventory, the way autopkgtest decides what runs: a test runs when
all its needs-hw: restrictions hold and autopkgtest knows its other
restrictions.  :attr:`Plan.argument` is the ``--ignore-restrictions=``
argument that makes plain autopkgtest run exactly those tests.  Used by
``autopkgtest-hw plan``; a router can import it to decide where a package goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .control import DEFAULT_HWSPEC, KNOWN_RESTRICTIONS, SourcePackage, TestStanza
from .inventory import Inventory
from .matcher import Verdict, match
from .spec import SpecError, parse

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
