"""Match a parsed spec against an inventory and explain the result.

The verdict's message names what was asked and what the machine (or
testbed) has, e.g. ``needs-hw:cuda:cc>=8.0 not satisfied: testbed has 1 CUDA
device (Tesla T4, cc 7.5)``.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import classes as hw
from .inventory import Cpu, Device, Inventory
from .spec import Alternative, Constraint, Spec, parse_size, parse_version


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


@dataclass(frozen=True)
class _Candidate:
    """A device or the CPU, seen through the keys of the spec language."""

    device: Device | None
    cpu: Cpu | None

    def get(self, key: str) -> object:
        known = hw.KEYS.get(key)
        return known.read(self.device, self.cpu) if known is not None else None

    def features(self) -> set[str]:
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


def match(
    spec: Spec, inventory: Inventory, *, label: str | None = None, subject: str = "machine"
) -> Verdict:
    """Evaluate ``spec``; ``label`` is how the spec is named in the message."""
    name = label if label is not None else spec.text
    verdicts = [_match_alternative(alt, inventory, subject) for alt in spec.alternatives]
    for ok, detail, devices, _unknown in verdicts:
        if ok:
            return Verdict(name, True, detail, devices=devices)
    details = [v[1] for v in verdicts]
    if len(spec.alternatives) > 1:
        details = [f"{a.text}: {d}" for a, d in zip(spec.alternatives, details, strict=True)]
    unknown = any(v[3] for v in verdicts)
    return Verdict(name, False, "; ".join(dict.fromkeys(details)), unknown_key=unknown)


def _match_alternative(
    alt: Alternative, inv: Inventory, subject: str
) -> tuple[bool, str, tuple[Device, ...], bool]:
    unknown = [c for c in alt.constraints if c.unknown]
    if unknown:
        keys = ", ".join(repr(c.key) for c in unknown)
        return (False, f"unknown key {keys} (a newer autopkgtest-hw may know it)", (), True)

    in_class = _candidates(alt, inv)
    count_c = alt.constraint(hw.COUNT)
    others = [c for c in alt.constraints if c.key != hw.COUNT]
    fitting = [cand for cand in in_class if all(_holds(c, cand) for c in others)]
    n = len(fitting)
    if count_c is not None:
        ok = _compare(n, count_c.op, [int(v) for v in count_c.values])
    else:
        ok = n >= 1
    devices = tuple(c.device for c in fitting if c.device is not None)
    hw_class = hw.get(alt.device_class)
    cls_name = hw_class.display
    if ok:
        if hw_class.is_machine:
            return True, f"{subject} has {_describe_cpu(inv.cpu, alt)}", (), False
        if not n:
            return True, f"{subject} has {_count(0, cls_name)}", devices, False
        verb = "fits" if n == 1 else "fit"
        return True, f"{_count(n, cls_name)} {verb} ({_list(fitting, alt)})", devices, False
    return False, _explain(alt, inv, in_class, fitting, count_c, subject), (), False


def _candidates(alt: Alternative, inv: Inventory) -> list[_Candidate]:
    if hw.get(alt.device_class).is_machine:
        return [_Candidate(None, inv.cpu)]
    devices = inv.of_class(alt.device_class)
    for key in hw.defaulted_keys(alt.device_class):
        c = alt.constraint(key.name)
        if c is None:
            devices = tuple(d for d in devices if (key.read(d, None) or "") in key.default)
        elif hw.ANY in [v.lower() for v in c.values] and c.op == "=":
            pass
        else:
            devices = tuple(d for d in devices if _holds(c, _Candidate(d, None)))
    return [_Candidate(d, None) for d in devices]


def _holds(c: Constraint, cand: _Candidate) -> bool:
    if c.feature:
        return c.values[0] in cand.features()
    actual = cand.get(c.key)
    kind = hw.KEYS[c.key].kind
    if kind == hw.CHOICE and any(v.lower() == hw.ANY for v in c.values):
        return c.op == "="
    if actual is None:
        return False
    conv: Callable[[str], Any]
    if kind == hw.SIZE:
        conv = parse_size
    elif kind == hw.INT:
        conv = int
    elif kind == hw.VERSION:
        conv = parse_version
        try:
            actual = parse_version(str(actual))
        except ValueError:
            return False
    else:
        return _string_match(c, str(actual))
    try:
        wanted: list[Any] = [conv(v) for v in c.values]
    except ValueError:
        return False
    if isinstance(actual, tuple):  # versions compare component-wise: 9 == 9.0
        width = max(len(actual), *(len(w) for w in wanted))
        actual = actual + (0,) * (width - len(actual))
        wanted = [w + (0,) * (width - len(w)) for w in wanted]
    return _compare(actual, c.op, wanted)


def _normalise(text: str) -> str:
    return "-".join(text.lower().split())


def _string_match(c: Constraint, actual: str) -> bool:
    actual_n = _normalise(actual)
    hit = any(fnmatch.fnmatchcase(actual_n, _normalise(v)) for v in c.values)
    return hit if c.op == "=" else not hit


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
    inventory: Inventory,
    in_class: list[_Candidate],
    fitting: list[_Candidate],
    count_c: Constraint | None,
    subject: str,
) -> str:
    hw_class = hw.get(alt.device_class)
    cls_name = hw_class.display
    if hw_class.is_machine:
        return f"{subject} has {_describe_cpu(in_class[0].cpu, alt)}"
    if not in_class:
        unseen = _unavailable_sources(alt, inventory)
        defaulted = hw.defaulted_keys(alt.device_class)
        if defaulted:  # "no OpenCL GPU or accelerator device": say which kinds counted
            c = alt.constraint(defaulted[0].name)
            kinds = "/".join(c.values) if c else defaulted[0].default_text
            return f"{subject} has no {cls_name} {kinds} device{unseen}"
        return f"{subject} has {_count(0, cls_name)}{unseen}"
    text = f"{subject} has {_count(len(in_class), cls_name)} ({_list(in_class, alt)})"
    if count_c is not None and len(fitting) and len(fitting) != len(in_class):
        text += f", {len(fitting)} of them fitting"
    if count_c is not None:
        text += f"; asked for count{count_c.op}{count_c.value}"
    return text


def _list(cands: list[_Candidate], alt: Alternative) -> str:
    return "; ".join(_describe_device(c.device, alt) for c in cands if c.device is not None)


def _describe_device(d: Device, alt: Alternative) -> str:
    from .render import describe_device  # render uses format_size from here

    return describe_device(d, "asked", facts=_describe(_Candidate(d, None), alt, ("has", "no")))


def _describe_cpu(cpu: Cpu | None, alt: Alternative) -> str:
    from .render import named  # render uses format_size from here

    cpu = cpu or Cpu()
    facts = _describe(_Candidate(None, cpu), alt, ("with", "without"))
    return named(cpu.model or "a CPU", facts)


def _describe(cand: _Candidate, alt: Alternative, words: tuple[str, str]) -> list[str]:
    """``key value...``, ``has/no feature...``: the facts the alternative asked about."""
    keys = [c.key for c in alt.constraints if not c.feature and c.key not in ("count", "model")]
    facts = [f"{key} {_show(key, cand.get(key))}" for key in dict.fromkeys(keys)]
    features = cand.features()
    for c in alt.constraints:
        if c.feature:
            facts.append(f"{words[0] if c.values[0] in features else words[1]} {c.values[0]}")
    return facts


def _show(key: str, value: object) -> str:
    if value is None:
        return "unknown"
    if key == "mem" and isinstance(value, int):
        return format_size(value)
    return str(value)


def format_size(n: int) -> str:
    for unit, size in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            value = n / size
            return (
                f"{value:.0f}{unit}"
                if value >= 100 or value == int(value)
                else f"{value:.1f}{unit}"
            )
    return f"{n}B"
