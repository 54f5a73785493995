"""Match a parsed spec against an inventory and explain the result.

The verdict's message names what was asked and what the machine (or
testbed) has, e.g. ``needs-hw:cuda:cc>=8.0 not satisfied: testbed has 1 CUDA
device (Tesla T4, cc 7.5)``.

Matching is fast because nothing is worked out twice: an inventory's
devices are sorted into classes once (a view kept for the last few
inventories), each device's value of a key is read and converted once, and a
constraint is compiled once (specs are parsed once, see spec.parse).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from autopkgtest_hw.spec import classes as hw
from autopkgtest_hw.spec import rocm, sizes
from autopkgtest_hw.spec.hardware import POCL_ARCHITECTURES
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory
from autopkgtest_hw.spec.language import Alternative, Constraint, Spec, parse_version
from autopkgtest_hw.spec.render import describe_device, named
from autopkgtest_hw.spec.sizes import format_size

__all__ = ["Verdict", "format_size", "match", "unanswerable"]


@dataclass(frozen=True)
class Verdict:
    spec: str  # the text as the user wrote it (e.g. "needs-hw:cuda:cc>=8.0")
    satisfied: bool
    detail: str
    unknown_key: bool = False
    devices: tuple[Device, ...] = ()  # the devices that satisfied it

    @property
    def message(self) -> str:
        state = "satisfied" if self.satisfied else "not satisfied"
        return f"{self.spec} {state}: {self.detail}"


#: How the matcher names the CPU when it stands for an OpenCL CPU device.
POCL_PLATFORM = "PoCL"


class _Cand:
    """A device (of one class) or the CPU, seen through the keys of the spec language.

    Values are read and converted once per key.  ``virtual`` marks the CPU
    standing for an OpenCL CPU device that no runtime on the host reported.
    """

    __slots__ = ("_features", "_values", "cls", "cpu", "device", "virtual")

    def __init__(self, device: Device | None, cpu: Cpu | None, cls: str, virtual: bool = False):
        self.device = device
        self.cpu = cpu
        self.cls = cls
        self.virtual = virtual
        self._values: dict[str, Any] = {}
        self._features: frozenset[str] | None = None

    def get(self, key: str) -> object:
        """The raw value, as a person reads it; None when unknown."""
        known = hw.KEYS.get(key)
        return known.read(self.device, self.cpu, self.cls) if known is not None else None

    def value(self, key: str) -> Any:
        """The value converted for comparison (int, version tuple, lowercase text, set)."""
        try:
            return self._values[key]
        except KeyError:
            pass
        raw = self.get(key)
        kind = hw.KEYS[key].kind
        out: Any = None
        if raw is not None:
            if kind in (hw.SIZE, hw.INT):
                out = raw if isinstance(raw, int) else None
                if kind == hw.SIZE and out is not None and self.device is not None:
                    out = sizes.nominal(out)  # what the card was sold as (docs: nominal)
            elif kind == hw.VERSION:
                try:
                    out = _version_key(parse_version(str(raw)))
                except ValueError:
                    out = None
            elif kind == hw.SET:
                out = frozenset(str(v).lower() for v in raw)  # type: ignore[attr-defined]
            elif kind == hw.CHOICE:
                out = str(raw).lower()
            else:
                out = _normalise(str(raw))
        self._values[key] = out
        return out

    def features(self) -> frozenset[str]:
        if self._features is None:
            self._features = frozenset(self._read_features())
        return self._features

    def features_known(self) -> bool:
        """Whether a runtime reported the device's feature words (OpenCL extensions)."""
        if self.cpu is not None:
            return True
        d = self.device
        assert d is not None
        if self.virtual:
            return False
        return "opencl" in d.sources or d.opencl_type is not None or bool(d.opencl_extensions)

    def _read_features(self) -> set[str]:
        if self.cpu is not None:
            return {f.lower() for f in self.cpu.flags}
        assert self.device is not None
        out = set()
        for ext in self.device.opencl_extensions:
            ext = ext.lower()
            out.add(ext)
            for prefix in ("cl_khr_", "cl_ext_", "cl_"):
                if ext.startswith(prefix):
                    out.add(ext[len(prefix) :])
                    break
        return out


class _View:
    """An inventory sorted into classes once, with each class's candidates."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._by_class: dict[str, list[_Cand]] = {}
        #: (id(alternative), subject) -> (the alternative, its result): matching
        #: is a pure function of a frozen inventory and a parsed (cached) spec.
        self.results: dict[tuple[int, str], tuple[Alternative, _Result]] = {}

    def candidates(self, cls: str) -> list[_Cand]:
        found = self._by_class.get(cls)
        if found is None:
            found = self._by_class[cls] = self._classify(cls)
        return found

    def _classify(self, cls: str) -> list[_Cand]:
        inv = self.inventory
        if hw.get(cls).is_machine:
            return [_Cand(None, inv.cpu, cls)]
        out = [_Cand(d, None, cls) for d in inv.devices if cls in hw.current_classes(d)]
        if cls == "opencl":
            cpu_device = _opencl_cpu(inv, out)
            if cpu_device is not None:
                out.append(_Cand(cpu_device, None, cls, virtual=True))
        return out


def _opencl_cpu(inv: Inventory, opencl: list[_Cand]) -> Device | None:
    """The CPU as an OpenCL CPU device, where no runtime on the host reported one.

    ``opencl:type=cpu`` means a CPU that a Debian OpenCL CPU runtime (PoCL)
    supports: the test installs the runtime itself, as it installs any library.
    """
    if any(c.device is not None and c.device.opencl_type == "cpu" for c in opencl):
        return None
    cpu = inv.cpu
    if cpu.arch not in POCL_ARCHITECTURES:
        return None
    return Device(
        classes=("opencl",),
        vendor=cpu.vendor,
        model=cpu.model or f"{cpu.arch} CPU",
        opencl_type="cpu",
        opencl_platform=POCL_PLATFORM,
    )


_VIEWS: dict[int, _View] = {}
_MAX_VIEWS = 8
_MAX_RESULTS = 8192
#: An alternative's outcome: held?, the reason, the fitting devices, unknown key?
_Result = tuple[bool, str, tuple[Device, ...], bool]


def _view(inventory: Inventory) -> _View:
    """The view of ``inventory``, kept for the last few (an inventory is frozen)."""
    view = _VIEWS.get(id(inventory))
    if view is not None and view.inventory is inventory:
        return view
    if len(_VIEWS) >= _MAX_VIEWS:
        _VIEWS.pop(next(iter(_VIEWS)))
    view = _VIEWS[id(inventory)] = _View(inventory)
    return view


def match(
    spec: Spec, inventory: Inventory, *, label: str | None = None, subject: str = "machine"
) -> Verdict:
    """Evaluate ``spec``; ``label`` is how the spec is named in the message."""
    name = label if label is not None else spec.text
    view = _view(inventory)
    verdicts = [_cached_alternative(alt, view, subject) for alt in spec.alternatives]
    for ok, detail, devices, _unknown in verdicts:
        if ok:
            return Verdict(name, True, detail, devices=devices)
    details = [v[1] for v in verdicts]
    if len(spec.alternatives) > 1:
        details = [f"{a.text}: {d}" for a, d in zip(spec.alternatives, details, strict=True)]
    unknown = any(v[3] for v in verdicts)
    return Verdict(name, False, "; ".join(dict.fromkeys(details)), unknown_key=unknown)


def unanswerable(spec: Spec) -> list[str]:
    """The constraints of ``spec`` that no detector can answer, each with why.

    Such a constraint reads as unknown on every host, so the test it guards
    never runs there; ``lint`` warns with these lines.
    """
    out = [f"{cls}:{c.text}: {why}" for cls, c, why in unanswered_constraints(spec)]
    return list(dict.fromkeys(out))


def unanswered_constraints(spec: Spec) -> list[tuple[str, Constraint, str]]:
    """(class, constraint, why) for each constraint of ``spec`` no detector answers."""
    out: list[tuple[str, Constraint, str]] = []
    for alt in spec.alternatives:
        for c in alt.constraints:
            if c.unknown:
                why = f"unknown key {c.key!r} (a newer autopkgtest-hw may know it)"
                out.append((alt.device_class, c, why))
                continue
            if c.feature:
                continue
            known = hw.KEYS[c.key].why_unanswered(alt.device_class) or _by_vendor(alt, c)
            if known:
                out.append((alt.device_class, c, known))
    return out


#: Vendors whose Debian kernel drivers report no version, and the class that says why.
_NO_DRIVER_VERSION = {"amd": "rocm", "intel": "sycl"}


def _by_vendor(alt: Alternative, c: Constraint) -> str | None:
    """``gpu:vendor=amd:driver>=6.0``: the vendor's drivers answer no driver version."""
    vendor = alt.constraint("vendor")
    if c.key != "driver" or vendor is None or vendor.op != "=":
        return None
    wanted = [v.lower() for v in vendor.values]
    if not all(v in _NO_DRIVER_VERSION for v in wanted):
        return None
    whys = [hw.KEYS["driver"].why_unanswered(_NO_DRIVER_VERSION[v]) for v in wanted]
    return "; ".join(dict.fromkeys(w for w in whys if w))


def _cached_alternative(alt: Alternative, view: _View, subject: str) -> _Result:
    key = (id(alt), subject)
    hit = view.results.get(key)
    if hit is not None and hit[0] is alt:
        return hit[1]
    result = _match_alternative(alt, view, subject)
    if len(view.results) >= _MAX_RESULTS:
        view.results.clear()
    view.results[key] = (alt, result)
    return result


def _match_alternative(alt: Alternative, view: _View, subject: str) -> _Result:
    unknown = [c for c in alt.constraints if c.unknown]
    if unknown:
        keys = ", ".join(repr(c.key) for c in unknown)
        return (False, f"unknown key {keys} (a newer autopkgtest-hw may know it)", (), True)

    in_class, fitting, count_c, ok = _fitting(alt, view)
    n = len(fitting)
    devices = tuple(c.device for c in fitting if c.device is not None)
    hw_class = hw.get(alt.device_class)
    cls_name = hw_class.display
    if ok:
        if hw_class.is_machine:
            return True, f"{subject} has {_describe_cpu(in_class[0], alt)}", (), False
        if not n:
            return True, f"{subject} has {_count(0, cls_name)}", devices, False
        verb = "fits" if n == 1 else "fit"
        return True, f"{_count(n, cls_name)} {verb} ({_list(fitting, alt)})", devices, False
    return False, _explain(alt, view, in_class, fitting, count_c, subject), (), False


def holds(spec: Spec, inventory: Inventory) -> bool:
    """Whether ``spec`` holds on ``inventory``, as :func:`match` decides, without its message.

    Routing decides thousands of specs against every profile and needs the
    message only for the profile it reports as closest.
    """
    view = _view(inventory)
    return any(
        not any(c.unknown for c in alt.constraints) and _fitting(alt, view)[3]
        for alt in spec.alternatives
    )


def _fitting(
    alt: Alternative, view: _View
) -> tuple[list[_Cand], list[_Cand], Constraint | None, bool]:
    """The alternative's class members, those that fit, its count constraint, whether it holds."""
    in_class = _candidates(alt, view)
    count_c = alt.constraint(hw.COUNT)
    tests = [_test(c) for c in alt.constraints if c.key != hw.COUNT]
    fitting = [cand for cand in in_class if all(t(cand) for t in tests)]
    if count_c is not None:
        ok = _compare(len(fitting), count_c.op, [int(v) for v in count_c.values])
    else:
        ok = len(fitting) >= 1
    return in_class, fitting, count_c, ok


def _candidates(alt: Alternative, view: _View) -> list[_Cand]:
    cands = view.candidates(alt.device_class)
    for key in hw.defaulted_keys(alt.device_class):
        c = alt.constraint(key.name)
        if c is None:
            cands = [d for d in cands if (d.value(key.name) or "") in key.default]
        elif hw.ANY in [v.lower() for v in c.values] and c.op == "=":
            pass
        else:
            test = _test(c)
            cands = [d for d in cands if test(d)]
    return cands


# -- compiled constraints ---------------------------------------------------


@functools.lru_cache(maxsize=8192)
def _test(c: Constraint) -> Callable[[_Cand], bool]:
    """``c`` as a predicate on a candidate, built once per constraint."""
    if c.feature:
        word = c.values[0]
        return lambda cand: word in cand.features()
    kind = hw.KEYS[c.key].kind
    key, op = c.key, c.op
    if kind == hw.CHOICE and any(v.lower() == hw.ANY for v in c.values):
        return lambda cand: op == "="
    if kind == hw.STRING:
        values = c.values
        if key == "arch":
            values = tuple(t for v in values for t in rocm.expand(v))
        patterns = tuple(_Glob(_normalise(v)) for v in values)
        want = op == "="

        def string_test(cand: _Cand) -> bool:
            actual = cand.value(key)
            if actual is None:
                return False
            return any(p.matches(actual) for p in patterns) is want

        return string_test
    wanted: list[Any]
    if kind == hw.SIZE:
        wanted = [sizes.parse_size(v) for v in c.values]
    elif kind == hw.INT:
        wanted = [int(v) for v in c.values]
    elif kind == hw.VERSION:
        wanted = [_version_key(parse_version(v)) for v in c.values]
    else:  # CHOICE, SET
        wanted = [v.lower() for v in c.values]

    if kind == hw.SET:
        want_hit = op == "="

        def set_test(cand: _Cand) -> bool:
            actual = cand.value(key)
            if actual is None:
                return False
            return any(w in actual for w in wanted) is want_hit

        return set_test
    if op in _ORDERING:
        compare, (bound,) = _ORDERING[op], wanted
        return lambda cand: (a := cand.value(key)) is not None and bool(compare(a, bound))
    members = frozenset(wanted)
    if op == "=":
        return lambda cand: (a := cand.value(key)) is not None and a in members
    return lambda cand: (a := cand.value(key)) is not None and a not in members


def _version_key(version: tuple[int, ...]) -> tuple[int, ...]:
    """A version without trailing zeros: 9 == 9.0, and tuples then compare as versions do."""
    end = len(version)
    while end > 1 and version[end - 1] == 0:
        end -= 1
    return version[:end]


class _Glob:
    """A ``*`` glob matched in linear time: no backtracking, whatever the pattern."""

    __slots__ = ("pieces",)

    def __init__(self, pattern: str) -> None:
        self.pieces = pattern.split("*")

    def matches(self, text: str) -> bool:
        pieces = self.pieces
        if len(pieces) == 1:
            return text == pieces[0]
        first, *middle, last = pieces
        if len(first) + len(last) > len(text):
            return False
        if not text.startswith(first) or not text.endswith(last):
            return False
        at, end = len(first), len(text) - len(last)
        for piece in middle:  # leftmost-first is optimal when '*' is the only wildcard
            found = text.find(piece, at, end)
            if found < 0:
                return False
            at = found + len(piece)
        return True


def _normalise(text: str) -> str:
    return "-".join(text.lower().split())


def _compare(actual: Any, op: str, wanted: list[Any]) -> bool:
    if op == "=":
        return actual in wanted
    if op == "!=":
        return actual not in wanted
    (w,) = wanted
    return bool(_ORDERING[op](actual, w))


_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


# -- explanations -----------------------------------------------------------


def _count(n: int, cls_name: str) -> str:
    if n == 0:
        return f"no {cls_name} device"
    return f"{n} {cls_name} device{'s' if n != 1 else ''}"


def _unavailable_sources(alt: Alternative, inventory: Inventory) -> str:
    """`` (nvml detector unavailable: NVML Shared Library Not Found)`` or nothing."""
    notes = [
        f"{r.name} detector {r.status}: {r.detail}" if r.detail else f"{r.name} detector {r.status}"
        for r in inventory.detectors
        if r.name in hw.get(alt.device_class).detectors and r.status != "ok"
    ]
    return f" ({'; '.join(notes)})" if notes else ""


def _explain(
    alt: Alternative,
    view: _View,
    in_class: list[_Cand],
    fitting: list[_Cand],
    count_c: Constraint | None,
    subject: str,
) -> str:
    hw_class = hw.get(alt.device_class)
    cls_name = hw_class.display
    inventory = view.inventory
    if hw_class.is_machine:
        return f"{subject} has {_describe_cpu(in_class[0], alt)}"
    if not in_class:
        unseen = _unavailable_sources(alt, inventory)
        defaulted = hw.defaulted_keys(alt.device_class)
        if defaulted:  # "no OpenCL GPU or accelerator device": say which kinds counted
            c = alt.constraint(defaulted[0].name)
            kinds = "/".join(c.values) if c else defaulted[0].default_text
            return f"{subject} has no {cls_name} {kinds} device{unseen}"
        return f"{subject} has {_count(0, cls_name)}{unseen}"
    hints: dict[str, None] = {}
    text = f"{subject} has {_count(len(in_class), cls_name)} ({_list(in_class, alt, hints)})"
    if count_c is not None and len(fitting) and len(fitting) != len(in_class):
        text += f", {len(fitting)} of them fitting"
    if count_c is not None:
        text += f"; asked for count{count_c.op}{count_c.value}"
    for hint in hints:
        text += f"; {hint}"
    return text


def _list(cands: list[_Cand], alt: Alternative, hints: dict[str, None] | None = None) -> str:
    hints = {} if hints is None else hints
    return "; ".join(_describe_device(c, alt, hints) for c in cands if c.device is not None)


def _describe_device(cand: _Cand, alt: Alternative, hints: dict[str, None]) -> str:
    assert cand.device is not None
    d = cand.device
    if cand.virtual:
        d = dataclasses.replace(d, model=f"{d.model} via {POCL_PLATFORM}")
    facts = _describe(cand, alt, ("has", "no"), hints)
    return describe_device(d, "asked", facts=facts)


def _describe_cpu(cand: _Cand, alt: Alternative) -> str:
    facts = _describe(cand, alt, ("with", "without"), {})
    return named((cand.cpu.model if cand.cpu else None) or "a CPU", facts)


def _describe(
    cand: _Cand, alt: Alternative, words: tuple[str, str], hints: dict[str, None]
) -> list[str]:
    """``key value...``, ``has/no feature...``: the facts the alternative asked about.

    A value nobody could read is ``unknown``; ``hints`` collects what to
    install on the host to know it.
    """
    asked: dict[str, list[Constraint]] = {}
    for c in alt.constraints:
        if not c.feature and c.key not in ("count", "model"):
            asked.setdefault(c.key, []).append(c)
    facts = []
    for key, constraints in asked.items():
        value = cand.get(key)
        if value is None:
            facts.append(f"{key} unknown")
            _hint(cand, key, hints)
        else:
            fact = f"{key} {_show(key, value, constraints)}"
            if key == "mem" and cand.device is not None and cand.value(key) != value:
                fact += f" (nominal {_show(key, cand.value(key), constraints)})"
            facts.append(fact)
    features = cand.features()
    known = cand.features_known()
    for c in alt.constraints:
        if c.feature:
            word = c.values[0]
            if word in features:
                facts.append(f"{words[0]} {word}")
            elif known:
                facts.append(f"{words[1]} {word}")
            else:
                facts.append(f"{word} unknown")
                _hint(cand, "feature", hints)
    return facts


def _hint(cand: _Cand, key: str, hints: dict[str, None]) -> None:
    if cand.virtual:
        hints[f"{_OPENCL_HINT} to know the CPU's OpenCL details"] = None
        return
    known = hw.KEYS.get(key)
    if known is None:  # a feature word
        how = hw.FEATURES_TO_KNOW.get(cand.cls)
    else:
        how = known.how_to_know(cand.cls)
        why = known.why_unanswered(cand.cls)
        if why and not how:
            hints[why] = None
            return
    if how:
        hints[f"{how} to know the unknown values"] = None


_OPENCL_HINT = hw.FEATURES_TO_KNOW["opencl"]


def _show(key: str, value: object, constraints: list[Constraint]) -> str:
    if isinstance(value, frozenset):
        return "/".join(sorted(value)) or "none"
    if key == "mem" and isinstance(value, int):
        asked = [v for c in constraints for v in c.values]
        if not asked:
            return format_size(value)
        unit = sizes.unit_of(asked[0])
        return sizes.format_in(value, unit, _in_unit(unit, asked))
    return str(value)


def _in_unit(unit: str, asked: list[str]) -> tuple[Decimal, ...]:
    """The asked sizes in ``unit``: figures a shown size must never equal unless it is one."""
    factor = Decimal(sizes.unit_factor(unit))
    return tuple(Decimal(sizes.parse_size(v)) / factor for v in asked)
