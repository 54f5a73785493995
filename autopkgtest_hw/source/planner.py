"""Which tests of a source package would run on a machine, which would skip, and why.

``make_plan(pkg, inventory)`` matches every needs-hw: restriction of
debian/tests/control (and the XS-Requires-Hwspec specs of debian/control)
against an inventory, the way autopkgtest decides what runs: a test for
another dpkg architecture (``Architecture:``) is skipped first, with
autopkgtest's own reason; otherwise it runs when all its needs-hw:
restrictions hold and autopkgtest knows its other restrictions.
:attr:`Plan.argument` is the ``--ignore-restrictions=`` argument that makes
plain autopkgtest run exactly those tests.

For routing (a CI fleet that picks a host per package):

* :func:`package_requirement` is where the package must be tested: its
  XS-Requires-Hwspec field, else the alternatives of its needs-hw: tests
  (the field lint suggests); None for a package that needs no hardware;
* :func:`package_admits` says whether a host's inventory fits it;
* :func:`tests_admitted` names the tests that would run on that host.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopkgtest_hw.source import architecture
from autopkgtest_hw.source.control import (
    DEFAULT_HWSPEC,
    KNOWN_RESTRICTIONS,
    SourcePackage,
    TestStanza,
)
from autopkgtest_hw.source.hwspec_field import field_texts
from autopkgtest_hw.spec.coverage import implies
from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import Alternative, Spec, SpecError, parse
from autopkgtest_hw.spec.matcher import Verdict, match, unanswered_constraints

IGNORE_OPTION = "--ignore-restrictions="
#: autopkgtest knows it but never runs a test that has it.
_NEVER_RUNS = frozenset({"hint-testsuite-triggers"})
#: How the field's alternatives are written (like Depends): ``cuda:cc>=7.0 | rocm:gfx90a``.
ALTERNATIVE_SEPARATOR = " | "


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
    needs_hw: tuple[SpecResult, ...]  # empty when Architecture: already skips it
    reasons: tuple[str, ...]  # why it runs or why it is skipped
    #: autopkgtest's reason when Architecture: skips the test (no hardware looked at).
    architecture: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "runs": self.runs,
            "architecture": self.architecture,
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
    arch: str | None = None  # the inventory's dpkg architecture

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

    @property
    def admitted(self) -> bool:
        """Whether the package's XS-Requires-Hwspec (or, without it, cpu) holds here."""
        return all(r.satisfied for r in self.requires_hwspec)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "srcdir": self.srcdir,
            "arch": self.arch,
            "hwspec_field": self.hwspec_field,
            "requires_hwspec": [r.to_dict() for r in self.requires_hwspec],
            "tests": [t.to_dict() for t in self.tests],
            "ignore_restrictions": list(self.ignore_restrictions),
            "argument": self.argument,
        }


def evaluate(text: str, inventory: Inventory, subject: str = "machine") -> SpecResult:
    """The verdict on one spec; an invalid spec is never satisfied, and says so.

    ``subject`` names what the inventory is in the message (a fleet "profile").
    """
    try:
        spec = parse(text)
    except SpecError as exc:
        return SpecResult(text, False, str(exc), invalid=True)
    verdict: Verdict = match(spec, inventory, label=text, subject=subject)
    return SpecResult(text, verdict.satisfied, verdict.message)


def plan_test(
    name: str, stanza: TestStanza, inventory: Inventory, subject: str = "machine"
) -> TestPlan:
    skipped = architecture.skip_reason(inventory.cpu.arch, stanza.architecture)
    if skipped is not None:  # autopkgtest checks it first: nothing else is looked at
        return TestPlan(name, False, (), (skipped,), architecture=skipped)
    results = tuple(evaluate(t.text, inventory, subject) for t in stanza.needs_hw)
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


def hwspec_texts(pkg: SourcePackage) -> tuple[str, ...]:
    """The specs of the package's XS-Requires-Hwspec field, whitespace taken out."""
    return field_texts(pkg.control.hwspec_fields)


def make_plan(pkg: SourcePackage, inventory: Inventory, subject: str = "machine") -> Plan:
    specs = hwspec_texts(pkg) or (DEFAULT_HWSPEC,)
    tests: tuple[TestPlan, ...] = ()
    if pkg.tests is not None:
        tests = tuple(
            plan_test(name, stanza, inventory, subject) for name, stanza in pkg.tests.tests()
        )
    return Plan(
        source=pkg.control.source,
        srcdir=pkg.srcdir,
        requires_hwspec=tuple(evaluate(s, inventory, subject) for s in specs),
        tests=tests,
        hwspec_field=pkg.control.hwspec_fields[0].name if pkg.control.hwspec_fields else None,
        arch=inventory.cpu.arch,
    )


# -- routing ------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """Where a package must be tested: every spec holds (the field's commas).

    ``origin`` is ``field`` when XS-Requires-Hwspec says it, ``tests`` when it
    is derived from the needs-hw: tests (one spec: any of their alternatives).
    """

    specs: tuple[Spec, ...]
    origin: str

    @property
    def text(self) -> str:
        """As the field is written: ``cuda:cc>=7.0 | rocm:gfx90a, cpu:mem>=64G``."""
        return ", ".join(
            ALTERNATIVE_SEPARATOR.join(a.text for a in s.alternatives) for s in self.specs
        )

    def verdicts(self, inventory: Inventory) -> tuple[Verdict, ...]:
        return tuple(match(s, inventory, label=s.text) for s in self.specs)

    def admits(self, inventory: Inventory) -> bool:
        return all(v.satisfied for v in self.verdicts(inventory))


def hardware_tests(pkg: SourcePackage) -> list[tuple[str, TestStanza, tuple[Spec, ...]]]:
    """Every test with needs-hw: restrictions, and those that parse."""
    out = []
    if pkg.tests is not None:
        for name, stanza in pkg.tests.tests():
            if stanza.needs_hw:
                out.append((name, stanza, tuple(_parsed(t.text) for t in stanza.needs_hw)))
    return [(n, s, tuple(p for p in specs if p is not None)) for n, s, specs in out]


def _parsed(text: str) -> Spec | None:
    try:
        return parse(text)
    except SpecError:
        return None


def alternatives_of_test(specs: tuple[Spec, ...]) -> tuple[Alternative, ...]:
    """The alternatives that stand for one test where the field is suggested: those of its
    first needs-hw: spec that asks for a device (not only ``cpu``), else of its first."""
    if not specs:
        return ()
    device = [s for s in specs if any(a.device_class != "cpu" for a in s.alternatives)]
    return (device or list(specs))[0].alternatives


def suggested_requirement(pkg: SourcePackage) -> Requirement | None:
    """The field lint suggests: the alternatives of the hardware tests, each once."""
    alternatives: dict[str, Alternative] = {}
    for _name, _stanza, specs in hardware_tests(pkg):
        for alt in alternatives_of_test(specs):
            alternatives.setdefault(alt.text, alt)
    kept = _useful(list(alternatives.values()))
    if not kept:
        return None
    text = "|".join(a.text for a in kept)
    return Requirement((Spec(text, tuple(kept)),), "tests")


def _useful(alternatives: list[Alternative]) -> list[Alternative]:
    """The alternatives worth writing: none that can never hold (a constraint no detector
    answers), none subsumed by another (``cuda:cc>=7.0`` beside ``cuda``)."""
    answerable = [
        a for a in alternatives if not unanswered_constraints(Spec(a.text, (a,)))
    ] or alternatives  # all unanswerable: lint says so about each test; keep the field whole
    out = []
    for i, a in enumerate(answerable):
        wider = [
            b
            for j, b in enumerate(answerable)
            if j != i and implies(a, b) and (not implies(b, a) or j < i)
        ]
        if not wider:
            out.append(a)
    return out


def package_requirement(pkg: SourcePackage) -> Requirement | None:
    """Where the package must be tested: its XS-Requires-Hwspec, else what its needs-hw:
    tests need; None when neither asks for anything (ordinary workers).  Specs of the field
    that do not parse are left out (lint reports them)."""
    if pkg.control.hwspec_fields:
        parsed = [_parsed(t) for t in hwspec_texts(pkg)]
        specs = tuple(p for p in parsed if p is not None)
        return Requirement(specs, "field") if specs else None
    return suggested_requirement(pkg)


def package_admits(pkg: SourcePackage, inventory: Inventory) -> bool:
    """Whether a host with this inventory is a place to test the package.

    With XS-Requires-Hwspec: the field holds there.  Without it: one of the
    needs-hw: tests runs there (its needs-hw: hold, its Architecture: fits).
    Either way a package whose every test is for other architectures
    (``Architecture:``) is not admitted: nothing would run.
    """
    requirement = package_requirement(pkg)
    if requirement is not None and requirement.origin == "tests":
        hardware = {name for name, _stanza, _specs in hardware_tests(pkg)}
        return any(t.runs and t.name in hardware for t in make_plan(pkg, inventory).tests)
    if requirement is not None and not requirement.admits(inventory):
        return False
    if pkg.tests is None or not pkg.tests.stanzas:
        return True
    arch = inventory.cpu.arch
    return any(
        architecture.skip_reason(arch, stanza.architecture) is None for stanza in pkg.tests.stanzas
    )


def tests_admitted(pkg: SourcePackage, inventory: Inventory) -> tuple[str, ...]:
    """The tests that would run on a host with this inventory (Architecture: included)."""
    return tuple(t.name for t in make_plan(pkg, inventory).tests if t.runs)
