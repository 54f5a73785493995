"""The checks of ``autopkgtest-hw lint``: hardware requirements of a source package.

``lint_source(srcdir)`` returns a :class:`Finding` for every invalid needs-hw:
restriction in debian/tests/control and every invalid X-/XS-Requires-Hwspec
spec in debian/control (FILE:LINE:COLUMN, with the fix where one is clear),
and for what autopkgtest would silently do differently than the maintainer
meant.  The command renders them; a router or an archive check can import them.
"""

from __future__ import annotations

import difflib
import os
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from autopkgtest_hw.source import architecture, migration
from autopkgtest_hw.source.control import (
    DEFAULT_HWSPEC,
    HWSPEC_FIELD_RE,
    KNOWN_RESTRICTIONS,
    KNOWN_TEST_FIELDS,
    ControlError,
    ControlReadError,
    Field,
    SourceControl,
    SourcePackage,
    TestsControl,
    TestStanza,
    Token,
    read_source_control,
    read_tests_control,
)
from autopkgtest_hw.source.hwspec_field import FieldSpec, field_specs
from autopkgtest_hw.source.planner import (
    ALTERNATIVE_SEPARATOR,
    alternatives_of_test,
    hardware_tests,
    suggested_requirement,
)
from autopkgtest_hw.spec import coverage
from autopkgtest_hw.spec.language import (
    NEEDS_HW_PREFIX,
    OPERATORS,
    Alternative,
    Spec,
    SpecError,
    parse,
)
from autopkgtest_hw.spec.matcher import unanswered_constraints

_T = TypeVar("_T")
SEVERITIES = ("error", "warning", "info")
#: Other spellings of the needs-hw: prefix that people write.
_PREFIX_ALIASES = {"needs-gpu", "needs-hardware", "need-hardware", "requires-hw", "needs-hwspec"}


@dataclass(frozen=True)
class Finding:
    severity: str  # error, warning, info
    tag: str
    path: str
    line: int | None
    column: int | None
    message: str
    fix: str | None = None

    def render(self) -> str:
        where = self.path
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        text = f"{where}: {self.severity}: {self.message} [{self.tag}]"
        if self.fix:  # several lines: each under the first
            text += "\n    fix: " + self.fix.replace("\n", "\n         ")
        return text


def lint_source(srcdir: str) -> list[Finding]:
    """Every finding for one unpacked source package, in file order.

    Raises ControlReadError when srcdir is not a readable source package.
    """
    if not os.path.isdir(srcdir):
        raise ControlReadError(srcdir, None, "not a directory")
    control_path = os.path.normpath(os.path.join(srcdir, "debian", "control"))
    if not os.path.exists(control_path):
        raise ControlReadError(srcdir, None, "not a source package: no debian/control")
    tests_path = os.path.normpath(os.path.join(srcdir, "debian", "tests", "control"))

    findings: list[Finding] = []
    source = _read(read_source_control, control_path, findings)
    tests = _read(read_tests_control, tests_path, findings) if os.path.exists(tests_path) else None
    if source is not None:
        findings += _check_source(source)
    if tests is not None:
        findings += _check_tests(tests)
        if source is not None:
            pkg = SourcePackage(srcdir, source, tests)
            findings += _check_routing(pkg)
            findings += _check_migration(pkg)
    return sorted(findings, key=lambda f: (f.path, f.line or 0, f.column or 0))


def _read(read: Callable[[str], _T], path: str, findings: list[Finding]) -> _T | None:
    """The parsed file; None and a finding if it is malformed (unreadable: raised)."""
    try:
        return read(path)
    except ControlReadError:
        raise
    except ControlError as exc:
        findings.append(_control_error(exc))
        return None


def _control_error(exc: ControlError) -> Finding:
    return Finding("error", "malformed-control-file", exc.path, exc.line, None, exc.message)


def _check_deb822(path: str, ignored: tuple[int, ...], stopped_at: int | None) -> Iterator[Finding]:
    for line in ignored:
        if stopped_at and line >= stopped_at:
            continue  # reported below, once
        yield Finding(
            "warning",
            "control-line-ignored",
            path,
            line,
            1,
            "neither a field nor a continuation line: autopkgtest ignores it",
        )
    if stopped_at:
        yield Finding(
            "error",
            "control-stanza-without-fields",
            path,
            stopped_at,
            1,
            "a stanza without fields: autopkgtest (python-debian) reads nothing from here on",
            "start every stanza with a field; indent only continuation lines",
        )


def _check_source(source: SourceControl) -> Iterator[Finding]:
    yield from _check_deb822(source.path, source.ignored_lines, source.stopped_at)
    fields = source.hwspec_fields
    for f in fields:
        prefix = f.name.split("-", 1)[0]
        if "s" not in prefix.lower():
            yield Finding(
                "warning",
                "requires-hwspec-not-in-dsc",
                source.path,
                f.line,
                1,
                f"{f.name} reaches neither the .dsc nor the archive's Sources "
                "(only fields with an S in the X prefix do, Policy 5.7), so no CI can route on it",
                f"XS-{f.name.split('-', 1)[1]}",
            )
        if len(fields) > 1 and f is not fields[0]:
            yield Finding(
                "warning",
                "requires-hwspec-duplicate",
                source.path,
                f.line,
                1,
                f"{f.name} repeats {fields[0].name} (line {fields[0].line}): keep one field",
            )
        if not f.value.strip():
            yield Finding(
                "error",
                "requires-hwspec-empty",
                source.path,
                f.line,
                1,
                f"{f.name} is empty; leave the field out to mean cpu",
            )
        for item in field_specs(f):
            token = Token(item.text, item.line, item.column)
            yield from _check_spec(source.path, token, f.name, item)
            if item.text.startswith(NEEDS_HW_PREFIX):
                yield Finding(
                    "warning",
                    "requires-hwspec-with-prefix",
                    source.path,
                    item.line,
                    item.column,
                    f"{f.name} takes specs without the {NEEDS_HW_PREFIX} prefix",
                    item.text[len(NEEDS_HW_PREFIX) :],
                )
    for f in source.paragraph.fields if source.paragraph else ():
        m = re.match(r"^(X[SBC]*)-(.+)$", f.name, re.IGNORECASE)
        if m and not HWSPEC_FIELD_RE.match(f.name):
            rest = m.group(2).lower()
            if difflib.SequenceMatcher(None, rest, "requires-hwspec").ratio() >= 0.8:
                yield Finding(
                    "warning",
                    "misspelt-requires-hwspec",
                    source.path,
                    f.line,
                    1,
                    f"{f.name} looks like a misspelt XS-Requires-Hwspec and is not read",
                    "XS-Requires-Hwspec",
                )
    for f in source.misplaced_hwspec_fields:
        yield Finding(
            "warning",
            "requires-hwspec-in-binary-stanza",
            source.path,
            f.line,
            1,
            f"{f.name} in a binary package stanza is never read: move it to the source stanza",
        )


def _check_tests(tests: TestsControl) -> Iterator[Finding]:
    yield from _check_deb822(tests.path, tests.ignored_lines, tests.stopped_at)
    for stanza in tests.stanzas:
        names = ", ".join(stanza.names)
        for f in stanza.unknown_fields:
            yield _unknown_field(tests.path, f, names)
        for token in stanza.restrictions:
            yield from _check_restriction(tests.path, token, names)
        for field_name, tokens in (("Features", stanza.features), ("Classes", stanza.classes)):
            for token in tokens:
                if token.text.startswith(NEEDS_HW_PREFIX):
                    yield _needs_hw_misplaced(tests.path, token, field_name)
        if stanza.needs_hw and not stanza.has_restriction("skippable"):
            yield _without_skippable(tests.path, stanza, names)
        problem = architecture.field_problem(stanza.architecture)
        arch_field = stanza.paragraph.get("Architecture")
        if problem is not None and arch_field is not None:
            yield Finding(
                "error",
                "test-architecture-invalid",
                tests.path,
                arch_field.line,
                1,
                f"Architecture: {arch_field.value.strip()}: autopkgtest skips {names} on every "
                f"architecture ({problem})",
            )


def _check_routing(pkg: SourcePackage) -> Iterator[Finding]:
    """The package field against the tests: suggested, covering, and what runs where."""
    source = pkg.control
    tests = hardware_tests(pkg)
    if not source.hwspec_fields:
        suggested = suggested_requirement(pkg)
        if suggested is not None and suggested.text != DEFAULT_HWSPEC:  # absent means cpu
            names = ", ".join(n for n, _s, specs in tests if specs)
            yield Finding(
                "info",
                "needs-hw-without-requires-hwspec",
                source.path,
                source.line,
                None,
                f"tests need hardware ({names}) but the source stanza has no "
                "XS-Requires-Hwspec, which says where the package must be tested: a CI that "
                "reads only the .dsc or Sources sends it to ordinary (cpu) workers",
                f"XS-Requires-Hwspec: {suggested.text}",
            )
        return
    field = source.hwspec_fields[0]
    items: list[Spec] = []
    for item in field_specs(field):
        try:
            items.append(parse(item.text))
        except SpecError:
            return  # reported as invalid-requires-hwspec
    alternatives = [a for s in items for a in s.alternatives]
    runs: dict[str, list[str]] = {a.text: [] for a in alternatives}
    maybe: list[str] = []
    for name, stanza, specs in tests:
        if not specs or len(specs) != len(stanza.needs_hw):
            continue  # an invalid needs-hw: is reported on its own
        if architecture.field_problem(stanza.architecture) is not None:
            continue  # it runs nowhere: test-architecture-invalid says why
        if not any(all(_may(a, s, items) for s in specs) for a in alternatives):
            token = stanza.needs_hw[0]
            wanted = ALTERNATIVE_SEPARATOR.join(_alts(specs))
            fix = None
            if len(items) == 1:
                fix = f"{field.name}: {_field_text(items[0])}{ALTERNATIVE_SEPARATOR}{wanted}"
            yield Finding(
                "warning",
                "needs-hw-test-not-covered",
                pkg.tests.path if pkg.tests else source.path,
                token.line,
                token.column,
                f"{name} ({', '.join(t.text for t in stanza.needs_hw)}) can run on no host that "
                f"{field.name} ({_field_text_all(items)}) admits, so CI never runs it: "
                "add an alternative for it",
                fix,
            )
            continue
        sure = [a.text for a in alternatives if all(_sure(a, s, items) for s in specs)]
        for a in sure:
            runs[a].append(name)
        if not sure:
            maybe.append(name)
    if any(runs.values()) or maybe:
        parts = [f"{a} runs {', '.join(n) if n else 'no test'}" for a, n in runs.items()]
        if maybe:
            parts.append(f"{', '.join(maybe)} only where the host has more than the field asks")
        yield Finding(
            "info",
            "requires-hwspec-admits",
            source.path,
            field.line,
            1,
            f"on a host that {field.name} admits: " + "; ".join(parts),
        )


def _check_migration(pkg: SourcePackage) -> Iterator[Finding]:
    """One hint per package for today's self-skipping GPU tests, with the line to write."""
    found = migration.find(pkg)
    if not found or pkg.tests is None:
        return
    first = found[0].stanza.paragraph.get("Restrictions")
    tests = "; ".join(f"{t.name} ({t.evidence})" for t in found)
    lines = list(dict.fromkeys(t.restrictions_line for t in found))
    specs = list(dict.fromkeys(f"needs-hw:{t.spec}" for t in found))
    yield Finding(
        "info",
        "skippable-gpu-test",
        pkg.tests.path,
        first.line if first else found[0].stanza.line,
        1,
        f"skippable tests that look for the GPU themselves and exit 77 without it: {tests}. "
        f"Say it with {' or '.join(specs)} in Restrictions: autopkgtest-hw then runs them only "
        "where the hardware is, CI can route them, and the launcher or check may stay",
        "\n".join(lines),
    )


def _alts(specs: tuple[Spec, ...]) -> list[str]:
    return [a.text for a in alternatives_of_test(specs)]


def _field_text(spec: Spec) -> str:
    return ALTERNATIVE_SEPARATOR.join(a.text for a in spec.alternatives)


def _field_text_all(items: list[Spec]) -> str:
    return ", ".join(_field_text(s) for s in items)


def _may(alt: Alternative, spec: Spec, items: list[Spec]) -> bool:
    """A host admitted through ``alt`` may satisfy ``spec``."""
    if all(coverage.on_cpu(t) for t in spec.alternatives):
        return True  # every host has a CPU; its details are the CPU's own
    return any(coverage.compatible(alt, t) for t in spec.alternatives)


def _sure(alt: Alternative, spec: Spec, items: list[Spec]) -> bool:
    """Every host admitted through ``alt`` satisfies ``spec``: ``alt`` implies it, or an
    item of the field all of whose alternatives imply it."""
    if any(coverage.implies(alt, t) for t in spec.alternatives):
        return True
    return any(
        all(any(coverage.implies(f, t) for t in spec.alternatives) for f in item.alternatives)
        for item in items
    )


def _unknown_field(path: str, f: Field, names: str) -> Finding:
    near = difflib.get_close_matches(
        string.capwords(f.name), [string.capwords(n) for n in KNOWN_TEST_FIELDS], n=1
    )
    fix = None
    if near:
        fix = next(n for n in KNOWN_TEST_FIELDS if string.capwords(n) == near[0]) + ":"
    return Finding(
        "warning",
        "unknown-test-field",
        path,
        f.line,
        1,
        f"unknown field {f.name!r}: autopkgtest skips the whole stanza ({names})",
        fix,
    )


def _check_restriction(path: str, token: Token, names: str) -> Iterator[Finding]:
    text = token.text
    if text.startswith(NEEDS_HW_PREFIX):
        yield from _check_spec(path, token, "needs-hw:")
        return
    if text in KNOWN_RESTRICTIONS:
        return
    if text == "needs-hw":
        yield Finding(
            "error",
            "needs-hw-without-spec",
            path,
            token.line,
            token.column,
            "needs-hw needs a spec after a colon, e.g. needs-hw:cuda or needs-hw:opencl; "
            f"autopkgtest skips the test ({names}) as an unknown restriction",
        )
        return
    misspelt = _misspelt_prefix(text)
    if misspelt is not None:
        fix = misspelt
        try:
            parse(misspelt)
        except SpecError as exc:
            fix = _fixed_spec(misspelt, exc) or misspelt
        yield Finding(
            "error",
            "misspelt-needs-hw",
            path,
            token.line,
            token.column,
            f"unknown restriction {text!r} looks like a misspelt {NEEDS_HW_PREFIX} restriction; "
            f"autopkgtest skips the test ({names}) as unknown",
            fix,
        )
        return
    near = difflib.get_close_matches(text, sorted(KNOWN_RESTRICTIONS), n=1, cutoff=0.75)
    yield Finding(
        "warning",
        "unknown-restriction",
        path,
        token.line,
        token.column,
        f"autopkgtest does not know the restriction {text!r} and skips the test ({names})",
        near[0] if near else None,
    )


def _misspelt_prefix(text: str) -> str | None:
    """``need-hw:cuda``, ``needs_hw=cuda``, ``needs-gpu:cuda`` -> ``needs-hw:cuda``."""
    m = re.match(r"^([A-Za-z_-]+)[:=](.+)$", text)
    if not m:
        return None
    head, rest = m.group(1).lower(), m.group(2)
    close = difflib.SequenceMatcher(None, head, "needs-hw").ratio() >= 0.75
    if head == "needs-hw" or close or head in _PREFIX_ALIASES:
        return NEEDS_HW_PREFIX + rest
    return None


def _check_spec(
    path: str, token: Token, where: str, item: FieldSpec | None = None
) -> Iterator[Finding]:
    def place(offset: int) -> tuple[int, int]:
        if item is not None:  # a field's spec may be folded over lines
            return item.place(offset)
        return token.line, token.column + offset

    try:
        spec = parse(token.text)
    except SpecError as exc:
        yield Finding(
            "error",
            "invalid-needs-hw-spec" if where == "needs-hw:" else "invalid-requires-hwspec",
            path,
            *place(exc.position),
            f"invalid hardware spec {token.text!r}: {exc.message}",
            _fixed_spec(token.text, exc),
        )
        return
    unknown = [c for a in spec.alternatives for c in a.constraints if c.unknown]
    for key in dict.fromkeys(c.key for c in unknown):
        first = next(c for c in unknown if c.key == key)
        at = token.text.find(first.text)
        yield Finding(
            "warning",
            "needs-hw-unknown-key",
            path,
            *place(max(at, 0)),
            f"{token.text!r}: key {key!r} is unknown to this version of autopkgtest-hw; "
            "it reads as never satisfied, so the test is skipped (a newer version may know it)",
        )
    for _cls, constraint, why in unanswered_constraints(spec):
        if constraint.unknown:  # reported above, as needs-hw-unknown-key
            continue
        at = token.text.find(constraint.text)
        yield Finding(
            "warning",
            "needs-hw-unanswerable",
            path,
            *place(max(at, 0)),
            f"{token.text!r}: no detector can answer {constraint.text!r} ({why}), "
            "so it is never satisfied",
        )


def _fixed_spec(text: str, exc: SpecError) -> str | None:
    """Apply the suggestions of successive SpecErrors until the spec parses."""
    for _ in range(5):
        if not exc.suggestion or "..." in exc.suggestion or not exc.token:
            return None
        start = exc.position
        end = start + len(exc.token)
        whole_constraint = any(op in exc.suggestion for op in OPERATORS) and not any(
            op in exc.token for op in OPERATORS
        )
        if whole_constraint:  # the suggestion replaces key, operator and value
            m = re.compile(r"[:|]").search(text, start)
            end = m.start() if m else len(text)
        text = text[:start] + exc.suggestion + text[end:]
        try:
            parse(text)
        except SpecError as again:
            exc = again
            continue
        return text
    return None


def _needs_hw_misplaced(path: str, token: Token, field_name: str) -> Finding:
    if field_name == "Features":
        why = "autopkgtest ignores unknown features, so the test runs on every testbed"
    else:
        why = "Classes: is informational and ignored, so the test runs on every testbed"
    return Finding(
        "warning",
        f"needs-hw-in-{field_name.lower()}",
        path,
        token.line,
        token.column,
        f"{token.text} in {field_name}: {why}",
        f"Restrictions: {token.text}",
    )


def _without_skippable(path: str, stanza: TestStanza, names: str) -> Finding:
    first = stanza.needs_hw[0]
    return Finding(
        "info",
        "needs-hw-without-skippable",
        path,
        first.line,
        first.column,
        f"{names}: not skippable; plain autopkgtest skips it as an unknown restriction, "
        "which is fine on ci.debian.net. If it may be forced to run without the hardware "
        "(--ignore-restrictions), add skippable and a self-check that exits 77",
    )
