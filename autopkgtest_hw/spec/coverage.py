"""Two specs read side by side, without a host: does one imply the other, can both hold?

lint uses it for the package field: a host that the alternative
``cuda:cc>=8.0`` of XS-Requires-Hwspec admits always runs a test that needs
``gpu`` or ``cuda:cc>=7.0`` (:func:`implies`), may run one that needs
``cuda:mem>=40G`` (:func:`compatible`), and never one that needs
``rocm:gfx90a`` on that account.  It reads the classes as SPEC draft 2 means
them: a class is hardware plus a kernel driver, ``opencl:type=cpu`` holds on
any CPU.  Where it cannot tell (a glob against a glob, an unknown key) it
answers "may", never "never".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autopkgtest_hw.spec import classes as hw
from autopkgtest_hw.spec.language import Alternative, Constraint, parse_size, parse_version

#: Any GPU's vendor: the ones a class may name (``HwClass.vendors``), or another.
_ANY_GPU = frozenset({"nvidia", "amd", "intel", "other"})
_CUDA_ARCH_RE = re.compile(r"^sm_(\d)(\d+)$")
_WIDTH = 8  # versions are padded to this many components before they are compared


@dataclass(frozen=True)
class _Range:
    """The values an ordering constraint leaves: lo..hi, each bound open or closed."""

    lo: Any = None
    lo_open: bool = False
    hi: Any = None
    hi_open: bool = False

    def within(self, other: _Range) -> bool:
        if other.lo is not None:
            if self.lo is None or self.lo < other.lo:
                return False
            if self.lo == other.lo and other.lo_open and not self.lo_open:
                return False
        if other.hi is not None:
            if self.hi is None or self.hi > other.hi:
                return False
            if self.hi == other.hi and other.hi_open and not self.hi_open:
                return False
        return True

    def meets(self, other: _Range) -> bool:
        lo, lo_open = _max_lo(self, other)
        hi, hi_open = _min_hi(self, other)
        if lo is None or hi is None:
            return True
        return lo < hi or (lo == hi and not lo_open and not hi_open)


def _max_lo(a: _Range, b: _Range) -> tuple[Any, bool]:
    if a.lo is None:
        return b.lo, b.lo_open
    if b.lo is None or a.lo > b.lo:
        return a.lo, a.lo_open
    if b.lo > a.lo:
        return b.lo, b.lo_open
    return a.lo, a.lo_open or b.lo_open


def _min_hi(a: _Range, b: _Range) -> tuple[Any, bool]:
    if a.hi is None:
        return b.hi, b.hi_open
    if b.hi is None or a.hi < b.hi:
        return a.hi, a.hi_open
    if b.hi < a.hi:
        return b.hi, b.hi_open
    return a.hi, a.hi_open or b.hi_open


def _converter(kind: str) -> Callable[[str], Any] | None:
    if kind == hw.SIZE:
        return parse_size
    if kind == hw.INT:
        return int
    if kind == hw.VERSION:
        return lambda v: parse_version(v) + (0,) * (_WIDTH - len(parse_version(v)))
    return None


def _range(c: Constraint) -> _Range | None:
    """The range of a numeric constraint; None for ``!=`` and several values."""
    known = hw.KEYS.get(c.key)
    conv = _converter(known.kind) if known else None
    if conv is None or len(c.values) != 1 or c.op == "!=":
        return None
    try:
        v = conv(c.values[0])
    except ValueError:
        return None
    return {
        "=": _Range(v, False, v, False),
        ">=": _Range(lo=v),
        ">": _Range(lo=v, lo_open=True),
        "<=": _Range(hi=v),
        "<": _Range(hi=v, hi_open=True),
    }[c.op]


def _normal(alt: Alternative) -> dict[str, list[Constraint]]:
    """Constraints by key; a CUDA ``arch=sm_XY`` read as ``cc=X.Y``; count defaults to >=1."""
    out: dict[str, list[Constraint]] = {}
    for c in alt.constraints:
        key = "feature:" + c.values[0] if c.feature else c.key
        if c.key == "arch" and _cc_words(alt) and c.op == "=" and len(c.values) == 1:
            m = _CUDA_ARCH_RE.match(c.values[0].lower())
            if m:
                c = Constraint("cc", "=", (f"{m.group(1)}.{m.group(2)}",), c.text)
                key = "cc"
        out.setdefault(key, []).append(c)
    out.setdefault(hw.COUNT, [Constraint(hw.COUNT, ">=", ("1",), "count>=1")])
    return out


def _strings(c: Constraint) -> set[str] | None:
    """The exact values of a ``=`` text constraint; None if it holds a glob or is ``!=``."""
    if c.op != "=" or any("*" in v for v in c.values):
        return None
    return {"-".join(v.lower().split()) for v in c.values}


def _constraint_implies(f: Constraint, t: Constraint) -> bool:
    if f.unknown or t.unknown:
        return False
    if f.feature or t.feature:
        return f.feature and t.feature and f.values[0] == t.values[0]
    fr, tr = _range(f), _range(t)
    if fr is not None and tr is not None:
        return fr.within(tr)
    fs = _strings(f)
    if fs is None:
        return False
    if t.op == "=":
        return all(any(fnmatch.fnmatchcase(v, p.lower()) for p in t.values) for v in fs)
    if t.op == "!=":
        return not any(fnmatch.fnmatchcase(v, p.lower()) for v in fs for p in t.values)
    return False


def _constraints_meet(f: Constraint, t: Constraint) -> bool:
    if f.unknown or t.unknown or f.feature or t.feature:
        return True
    fr, tr = _range(f), _range(t)
    if fr is not None and tr is not None:
        return fr.meets(tr)
    fs, ts = _strings(f), _strings(t)
    if fs is not None and t.op == "!=":
        return not fs <= {v.lower() for v in t.values}
    if ts is not None and f.op == "!=":
        return not ts <= {v.lower() for v in f.values}
    if fs is not None and ts is not None:
        return bool(fs & ts)
    return True


def _type(alt: Alternative) -> set[str]:
    """The OpenCL device types an opencl alternative accepts."""
    c = alt.constraint("type")
    if c is None:
        return {"gpu", "accelerator"}
    values = {v.lower() for v in c.values}
    if hw.ANY in values:
        return {"gpu", "accelerator", "cpu"}
    return values if c.op == "=" else {"gpu", "accelerator", "cpu"} - values


def on_cpu(alt: Alternative) -> bool:
    """Whether the alternative asks only for the machine itself (any host has it)."""
    cls = hw.get(alt.device_class)
    return cls.is_machine or (cls.cpu_runtime and _type(alt) == {"cpu"})


def _cc_words(alt: Alternative) -> bool:
    """Whether the class's arch words are CUDA's only (``sm_XY``: compute capability X.Y)."""
    return hw.get(alt.device_class).arch_words == (hw.CUDA_ARCH,)


def _vendors(alt: Alternative) -> frozenset[str]:
    vendors = hw.get(alt.device_class).vendors or _ANY_GPU
    c = alt.constraint("vendor")
    wanted = _strings(c) if c is not None else None
    if wanted is not None:
        vendors = vendors & frozenset(v if v in _ANY_GPU else "other" for v in wanted)
    return vendors


def implies(field: Alternative, test: Alternative) -> bool:
    """Every host that ``field`` admits satisfies ``test``."""
    if on_cpu(test):
        if hw.get(test.device_class).cpu_runtime:  # any CPU; a detail needs the runtime
            return all(k in ("type", hw.COUNT) for k in _normal(test))
        if field.device_class != "cpu":
            return not test.constraints
    elif on_cpu(field) or test.device_class not in (
        hw.get(field.device_class).implies or {field.device_class}
    ):
        return False
    have = _normal(field)
    for key, wanted in _normal(test).items():
        if key == "vendor" and not on_cpu(test):
            if not _vendors(field) <= _vendors(test):
                return False
            continue
        for t in wanted:
            if not any(_constraint_implies(f, t) for f in have.get(key, ())):
                return False
    return True


def compatible(field: Alternative, test: Alternative) -> bool:
    """Some host that ``field`` admits may satisfy ``test``."""
    if on_cpu(test):
        if field.device_class != "cpu" or test.device_class != "cpu":
            return True
    elif on_cpu(field):
        return False  # a host admitted for its CPU need not have any GPU
    elif not _vendors(field) & _vendors(test):
        return False
    if field.device_class != test.device_class and not on_cpu(test):
        # different classes read different detectors: only vendor and count compare
        shared = {"vendor", hw.COUNT}
    else:
        shared = None
    have = _normal(field)
    for key, wanted in _normal(test).items():
        if shared is not None and key not in shared:
            continue
        if any(not _constraints_meet(f, t) for t in wanted for f in have.get(key, ())):
            return False
    return True
