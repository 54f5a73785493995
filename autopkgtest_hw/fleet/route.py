"""Decide which fleet profiles each source package goes to.

The rules (SPEC.md draft 2, "Where a spec appears"):

* ``Requires-Hwspec`` (``XS-Requires-Hwspec`` in debian/control): every
  comma-separated spec must hold on the profile's inventory, ``|`` gives
  alternatives.  Specs that a CPU can satisfy (``cpu``, ``cpu:avx2``,
  ``opencl:type=cpu``: each has an alternative of the machine itself) go to
  the ordinary profiles where they hold, and to hardware profiles only where
  no ordinary profile fits; anything else to hardware profiles.  An ordinary
  profile without ``Inventory:`` is any CPU of its architecture: ``cpu`` and
  ``opencl:type=cpu`` (where PoCL is built for it) hold there, a CPU feature
  or size needs an inventory that shows it.
* no such field, but ``needs-hw:`` tests (known from a source tree): the
  profiles where at least one ``needs-hw:`` test can run (all its
  restrictions hold and its ``Architecture:`` fits); ordinary profiles first
  where every ``needs-hw:`` test asks only for the machine itself.
* neither: a CPU package, for the ordinary profiles, never a hardware one.
* the package's ``Architecture:`` must fit the profile's in every case.

Policies: ``matrix`` makes one job per distinct fitting hardware (profiles
with the same devices share, shortest queue first); the default makes one
job on the fitting profile whose queue is shortest (broker depth plus what
this run has already given it; ties go to the profile listed first).  A
package that fits nowhere is reported with the closest profile and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autopkgtest_hw.base.text import safe
from autopkgtest_hw.fleet.profiles import Fleet, FleetError, Profile
from autopkgtest_hw.source import architecture
from autopkgtest_hw.source.archive import SourceEntry, fits_arch
from autopkgtest_hw.source.control import DEFAULT_HWSPEC
from autopkgtest_hw.source.planner import make_plan
from autopkgtest_hw.spec.coverage import on_cpu
from autopkgtest_hw.spec.inventory import Cpu, Inventory
from autopkgtest_hw.spec.language import NEEDS_HW_PREFIX, Spec, SpecError, parse
from autopkgtest_hw.spec.matcher import holds, match

#: Entries each cache of the router keeps (a hostile index has 100,000 distinct specs).
MAX_CACHED = 1 << 14
POLICY_SHORTEST = "shortest-queue"
POLICY_MATRIX = "matrix"
#: The device facts that make two profiles different hardware for --matrix.
_SIGNATURE = ("classes", "vendor", "model", "arch", "compute_capability", "memory", "opencl_type")


@dataclass(frozen=True)
class Job:
    package: str
    version: str
    profile: str
    queue: str
    arch: str
    why: str

    def to_dict(self) -> dict[str, object]:
        return {
            "package": self.package,
            "version": self.version,
            "profile": self.profile,
            "queue": self.queue,
            "architecture": self.arch,
            "why": self.why,
        }


@dataclass(frozen=True)
class Unroutable:
    package: str
    origin: str
    needs: str
    closest: str | None
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "package": self.package,
            "origin": self.origin,
            "needs": self.needs,
            "closest": self.closest,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Problem:
    package: str
    origin: str
    error: str

    def to_dict(self) -> dict[str, object]:
        return {"package": self.package, "origin": self.origin, "error": self.error}


@dataclass
class Routing:
    policy: str
    depths: dict[str, int | None]
    jobs: list[Job] = field(default_factory=list)
    unroutable: list[Unroutable] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    without_tests: int = 0
    packages: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "packages": self.packages,
            "without_tests": self.without_tests,
            "queue_depths": self.depths,
            "jobs": [j.to_dict() for j in self.jobs],
            "unroutable": [u.to_dict() for u in self.unroutable],
            "errors": [e.to_dict() for e in self.errors],
        }


@dataclass(frozen=True)
class _Verdict:
    ok: bool
    reason: str


class Router:
    """Routes packages one by one; keeps the queue lengths it has handed out."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        matrix: bool = False,
        depths: Mapping[str, int | None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.matrix = matrix
        self.routing = Routing(
            POLICY_MATRIX if matrix else POLICY_SHORTEST,
            dict(depths) if depths else {},
        )
        self._load = {p.queue: (self.routing.depths.get(p.queue) or 0) for p in fleet}
        self._order = {p.name: i for i, p in enumerate(fleet)}
        self._specs: dict[str, Spec | SpecError] = {}
        self._verdicts: dict[tuple[str, str], _Verdict] = {}
        self._held: dict[tuple[str, str], bool] = {}
        self._any_cpu: dict[str, Inventory] = {}
        self._arch_fit: dict[tuple[str, tuple[str, ...]], bool] = {}
        self._signatures: dict[str, tuple[object, ...]] = {}
        self.ordinary = tuple(p for p in fleet if p.ordinary)
        self.hardware = tuple(p for p in fleet if not p.ordinary)

    # -- verdicts, cached: a big index repeats the same few specs ---------------

    def _spec(self, text: str) -> Spec | SpecError:
        found = self._specs.get(text)
        if found is None:
            try:
                found = parse(text)
            except SpecError as exc:
                found = exc
            _bounded(self._specs)[text] = found
        return found

    def _inventory(self, profile: Profile) -> Inventory:
        """The profile's inventory; an ordinary profile without one is any CPU of its arch."""
        found = self.fleet.inventory(profile)
        if found is None:
            found = self._any_cpu.setdefault(profile.arch, Inventory(cpu=Cpu(arch=profile.arch)))
        return found

    def _holds(self, text: str, profile: Profile) -> bool:
        """Whether ``text`` holds on the profile: the decision, without a message."""
        key = (text, profile.name)
        found = self._held.get(key)
        if found is None:
            spec = self._spec(text)
            found = not isinstance(spec, SpecError) and holds(spec, self._inventory(profile))
            _bounded(self._held)[key] = found
        return found

    def _verdict(self, text: str, profile: Profile) -> _Verdict:
        """The verdict with its message: only for what is reported (the closest profile)."""
        key = (text, profile.name)
        if key not in self._verdicts:
            spec = self._spec(text)
            if isinstance(spec, SpecError):
                v = _Verdict(False, str(spec))
            else:
                m = match(spec, self._inventory(profile), label=text, subject="profile")
                v = _Verdict(m.satisfied, m.message)
            _bounded(self._verdicts)[key] = v
        return self._verdicts[key]

    def _closeness(self, specs: Iterable[str], profile: Profile) -> int:
        """2 for each spec that holds, 1 for one whose class the profile at least has."""
        classes = set(self._inventory(profile).classes())
        score = 0
        for text in specs:
            spec = self._spec(text)
            if self._holds(text, profile):
                score += 2
            elif not isinstance(spec, SpecError) and any(
                a.device_class in classes for a in spec.alternatives
            ):
                score += 1
        return score

    def _fits(self, profile: Profile, arches: tuple[str, ...]) -> bool:
        key = (profile.arch, arches)
        if key not in self._arch_fit:
            _bounded(self._arch_fit)[key] = fits_arch(profile.arch, arches)
        return self._arch_fit[key]

    # -- routing ------------------------------------------------------------------

    def add(self, entry: SourceEntry) -> None:
        r = self.routing
        r.packages += 1
        if entry.error:
            r.errors.append(Problem(entry.package, entry.origin, entry.error))
            return
        if not entry.has_tests:
            r.without_tests += 1
            return
        try:
            self._route(entry)
        except FleetError as exc:
            r.errors.append(Problem(entry.package, entry.origin, str(exc)))

    def _route(self, entry: SourceEntry) -> None:
        specs = tuple(s for s in entry.hwspecs if s != DEFAULT_HWSPEC)
        for s in specs:
            parsed = self._spec(s)
            if isinstance(parsed, SpecError):
                self.routing.errors.append(Problem(entry.package, entry.origin, str(parsed)))
                return
        tests_arch = self._test_arches(entry)
        if specs:
            machine = all(any(on_cpu(alt) for alt in self._parsed(s).alternatives) for s in specs)
            pool = self.ordinary + self.hardware if machine else self.hardware
            self._by_specs(entry, specs, pool, tests_arch)
        elif (
            entry.tree is not None
            and entry.tree.tests is not None
            and any(stanza.needs_hw for _, stanza in entry.tree.tests.tests())
        ):
            self._by_tests(entry)
        else:
            fitting = [p for p in self.ordinary if self._arch_ok(entry, p, tests_arch)]
            if not fitting:
                arches = " ".join(entry.architectures) or "any"
                self._unroutable(
                    entry,
                    "no hardware",
                    None,
                    (f"no ordinary profile for Architecture: {safe(arches)}",),
                )
                return
            self._choose(entry, fitting, "needs no hardware")

    def _parsed(self, text: str) -> Spec:
        spec = self._spec(text)
        assert not isinstance(spec, SpecError)
        return spec

    def _test_arches(self, entry: SourceEntry) -> list[tuple[str, ...]] | None:
        """Each test's Architecture: (a source tree only); None where unknown."""
        if entry.tree is None or entry.tree.tests is None:
            return None
        return [stanza.architecture for _, stanza in entry.tree.tests.tests()]

    def _arch_ok(
        self, entry: SourceEntry, p: Profile, tests_arch: list[tuple[str, ...]] | None
    ) -> bool:
        if not self._fits(p, entry.architectures):
            return False
        return tests_arch is None or any(self._test_fits(p, a) for a in tests_arch)

    @staticmethod
    def _test_fits(profile: Profile, arches: tuple[str, ...]) -> bool:
        """A test stanza's ``Architecture:``, decided as autopkgtest decides it (``!arch`` too)."""
        return architecture.skip_reason(profile.arch, arches) is None

    def _by_specs(
        self,
        entry: SourceEntry,
        specs: tuple[str, ...],
        pool: tuple[Profile, ...],
        tests_arch: list[tuple[str, ...]] | None,
    ) -> None:
        candidates = [p for p in pool if self._arch_ok(entry, p, tests_arch)]
        fitting = [p for p in candidates if all(self._holds(s, p) for s in specs)]
        needs = ", ".join(specs)
        if fitting:
            ordinary = [p for p in fitting if p.ordinary]
            self._choose(entry, ordinary or fitting, f"Requires-Hwspec: {needs}")
            return
        if not candidates:
            arches = " ".join(entry.architectures) or "any"
            kind = "hardware" if pool is self.hardware else "ordinary or hardware"
            self._unroutable(
                entry, needs, None, (f"no {kind} profile for Architecture: {safe(arches)}",)
            )
            return
        best = max(candidates, key=lambda p: (self._closeness(specs, p), -self._order[p.name]))
        reasons = tuple(
            self._verdict(s, best).reason for s in specs if not self._verdict(s, best).ok
        )
        self._unroutable(entry, needs, best.name, reasons)

    def _by_tests(self, entry: SourceEntry) -> None:
        assert entry.tree is not None and entry.tree.tests is not None
        stanzas = dict(entry.tree.tests.tests())
        machine = all(
            any(on_cpu(alt) for alt in spec.alternatives)
            for st in stanzas.values()
            for spec in _needs_specs(st.needs_hw)
        )
        pool = self.ordinary + self.hardware if machine else self.hardware
        candidates = [p for p in pool if self._fits(p, entry.architectures)]
        fitting: list[Profile] = []
        score: dict[str, tuple[int, list[str]]] = {}
        for p in candidates:
            plan = make_plan(entry.tree, self._inventory(p), subject="profile")
            runnable = []
            best = (-1, ["no needs-hw: test can run"])
            for t in plan.tests:
                stanza = stanzas[t.name]
                if not stanza.needs_hw:
                    continue
                if not self._test_fits(p, stanza.architecture):
                    reason = f"{t.name}: Architecture: {' '.join(stanza.architecture)}"
                    best = max(best, (0, [reason]), key=lambda b: b[0])
                    continue
                if t.runs:
                    runnable.append(t.name)
                    continue
                held = self._closeness(
                    (r.spec.removeprefix(NEEDS_HW_PREFIX) for r in t.needs_hw), p
                )
                if held > best[0]:
                    best = (held, [f"{t.name}: {r}" for r in t.reasons])
            if runnable:
                fitting.append(p)
            score[p.name] = best
        needs = ", ".join(dict.fromkeys(tok.text for st in stanzas.values() for tok in st.needs_hw))
        if fitting:
            ordinary = [p for p in fitting if p.ordinary]
            self._choose(entry, ordinary or fitting, f"needs-hw: tests ({needs})")
            return
        if not candidates:
            arches = " ".join(entry.architectures) or "any"
            self._unroutable(
                entry, needs, None, (f"no hardware profile for Architecture: {safe(arches)}",)
            )
            return
        best_p = max(candidates, key=lambda p: (score[p.name][0], -self._order[p.name]))
        self._unroutable(entry, needs, best_p.name, tuple(score[best_p.name][1]))

    def _hardware(self, profile: Profile) -> tuple[object, ...]:
        """What a test can tell apart: profiles that agree here are the same hardware."""
        if profile.name not in self._signatures:
            inventory = self.fleet.inventory(profile)
            devices = inventory.devices if inventory else ()
            self._signatures[profile.name] = (
                profile.arch,
                profile.ordinary,
                tuple(sorted(tuple(str(getattr(d, k)) for k in _SIGNATURE) for d in devices)),
            )
        return self._signatures[profile.name]

    def _choose(self, entry: SourceEntry, fitting: list[Profile], why: str) -> None:
        if self.matrix:
            # One job per distinct hardware: two profiles of the same GPUs (two
            # sites, say) share the work instead of testing it twice.
            groups: dict[tuple[object, ...], list[Profile]] = {}
            for p in fitting:
                groups.setdefault(self._hardware(p), []).append(p)
            chosen = [min(g, key=lambda p: self._load[p.queue]) for g in groups.values()]
        else:
            chosen = [min(fitting, key=lambda p: self._load[p.queue])]
        for p in chosen:
            self._load[p.queue] += 1
            self.routing.jobs.append(
                Job(entry.package, entry.version, p.name, p.queue, p.arch, why)
            )

    def _unroutable(
        self, entry: SourceEntry, needs: str, closest: str | None, reasons: tuple[str, ...]
    ) -> None:
        self.routing.unroutable.append(
            Unroutable(entry.package, entry.origin, needs, closest, reasons)
        )


def _needs_specs(tokens: Iterable[Any]) -> list[Spec]:
    """The parsed specs of ``needs-hw:`` tokens (an invalid one counts as hardware)."""
    out = []
    for token in tokens:
        try:
            out.append(parse(token.text.removeprefix(NEEDS_HW_PREFIX)))
        except SpecError:
            out.append(parse("gpu"))
    return out


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    """``cache``, emptied first when it is full: memory stays bounded whatever the index."""
    if len(cache) >= MAX_CACHED:
        cache.clear()
    return cache


def route(
    fleet: Fleet,
    entries: Iterable[SourceEntry],
    *,
    matrix: bool = False,
    depths: Mapping[str, int | None] | None = None,
) -> Routing:
    router = Router(fleet, matrix=matrix, depths=depths)
    for entry in entries:
        router.add(entry)
    return router.routing
