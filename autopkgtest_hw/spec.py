"""Parse and validate the hardware spec language (docs/spec-language.md).

``parse("cuda:cc>=8.0|rocm:gfx90a")`` returns a :class:`Spec` or raises
:class:`SpecError`, which names the token, its column and, for a near miss,
a suggestion.  Nothing else is ever raised, whatever the input.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from . import classes as hw
from .errors import HwError

NEEDS_HW_PREFIX = "needs-hw:"
OPERATORS = (">=", "<=", "!=", "=", ">", "<")  # longest first
ORDERING_OPS = frozenset({">=", "<=", ">", "<"})

_VALUE_RE = re.compile(r"^[A-Za-z0-9._\-+*/]+$")
_PCI_VALUE_RE = re.compile(r"^[A-Za-z0-9._\-+*/:]+$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")
_INT_RE = re.compile(r"^\d+$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT])(?:i?B)?$", re.IGNORECASE)
_CUDA_ARCH_RE = re.compile(r"^sm_(\d)(\d+)$")
_ROCM_ARCH_RE = re.compile(r"^gfx[0-9a-f]{3,5}$")

_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

#: Names people reach for that mean a known key.
KEY_SYNONYMS = {
    "vram": "mem",
    "memory": "mem",
    "ram": "mem",
    "compute_capability": "cc",
    "compute-capability": "cc",
    "sm": "arch",
    "gfx": "arch",
    "cpus": "cores",
    "threads": "cores",
    "gpus": "count",
    "devices": "count",
}


class SpecError(HwError):
    """An invalid spec: what is wrong, where, and what was probably meant."""

    def __init__(
        self, spec: str, message: str, token: str, position: int, suggestion: str | None = None
    ) -> None:
        self.spec = spec
        self.message = message
        self.token = token
        self.position = position  # 0-based offset of the token in the spec text
        self.suggestion = suggestion
        super().__init__(str(self))

    @property
    def column(self) -> int:
        return self.position + 1

    def __str__(self) -> str:
        text = f"invalid hardware spec {self.spec!r}: {self.message} (column {self.column})"
        if self.suggestion:
            text += f"; did you mean {self.suggestion!r}?"
        return text


@dataclass(frozen=True)
class Constraint:
    """``key op value``; a bare word is stored as its expanded form.

    ``values`` holds the ``/``-separated alternatives.  ``feature`` is set for
    a bare feature flag, ``unknown`` for a key this version does not know.
    """

    key: str
    op: str
    values: tuple[str, ...]
    text: str
    feature: bool = False
    unknown: bool = False

    @property
    def value(self) -> str:
        return "/".join(self.values)


@dataclass(frozen=True)
class Alternative:
    device_class: str
    constraints: tuple[Constraint, ...]
    text: str

    def constraint(self, key: str) -> Constraint | None:
        for c in self.constraints:
            if c.key == key and not c.feature:
                return c
        return None


@dataclass(frozen=True)
class Spec:
    text: str
    alternatives: tuple[Alternative, ...]

    @property
    def unknown_keys(self) -> tuple[str, ...]:
        return tuple(c.key for a in self.alternatives for c in a.constraints if c.unknown)

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Spec:
    """Parse one spec (``needs-hw:`` prefix allowed); raise SpecError if invalid."""
    if not isinstance(text, str):
        raise SpecError(repr(text), "a spec is a string", repr(text), 0)
    spec_text = text.removeprefix(NEEDS_HW_PREFIX)
    offset = len(text) - len(spec_text)
    if not spec_text:
        raise SpecError(text, "empty spec", "", offset, "cpu")
    for i, ch in enumerate(spec_text):
        if ch.isspace() or ch == ",":
            what = "whitespace" if ch.isspace() else "a comma"
            raise SpecError(
                text,
                f"{what} is not allowed in a spec (autopkgtest splits restrictions on it)",
                ch,
                offset + i,
            )
    alternatives = []
    pos = offset
    for alt_text in spec_text.split("|"):
        alternatives.append(_parse_alternative(text, alt_text, pos))
        pos += len(alt_text) + 1
    return Spec(spec_text, tuple(alternatives))


def _parse_alternative(spec: str, alt_text: str, pos: int) -> Alternative:
    if not alt_text:
        raise SpecError(spec, "empty alternative around '|'", "|", max(pos - 1, 0))
    parts = alt_text.split(":")
    cls = parts[0]
    if cls not in hw.BY_NAME:
        message = f"unknown class {cls!r} (classes: {', '.join(hw.NAMES)})"
        raise _not_one_of(spec, message, cls, pos, hw.NAMES)
    constraints = []
    seen_keys: set[str] = set()
    cpos = pos + len(cls) + 1
    for part in _join_pci_ids(parts[1:]):
        c = _parse_constraint(spec, cls, part, cpos)
        if not c.feature and c.key in seen_keys and c.op == "=":
            raise SpecError(spec, f"key {c.key!r} given twice with '='", part, cpos)
        seen_keys.add(c.key)
        constraints.append(c)
        cpos += len(part) + 1
    return Alternative(cls, tuple(constraints), alt_text)


_PCI_PART_RE = re.compile(r"^pci!?=(?:.*/)?[0-9A-Fa-f]{4}$")
_PCI_DEVICE_RE = re.compile(r"^(?:[0-9A-Fa-f]{4}|\*)(?:/|$)")


def _join_pci_ids(parts: list[str]) -> list[str]:
    """``pci=10de:2330`` holds the separator ':'; glue its halves back together."""
    out: list[str] = []
    for part in parts:
        if out and _PCI_PART_RE.match(out[-1]) and _PCI_DEVICE_RE.match(part):
            out[-1] += ":" + part
        else:
            out.append(part)
    return out


def _parse_constraint(spec: str, cls: str, part: str, pos: int) -> Constraint:
    if not part:
        raise SpecError(spec, "empty constraint after ':'", ":", max(pos - 1, 0))
    op_at, op = _find_operator(part)
    if op is None:
        return _parse_word(spec, cls, part, pos)
    key, value = part[:op_at], part[op_at + len(op) :]
    if not key:
        raise SpecError(spec, f"constraint {part!r} has no key before {op!r}", part, pos)
    if not value:
        raise SpecError(spec, f"constraint {part!r} has no value after {op!r}", part, pos + op_at)
    vpos = pos + op_at + len(op)
    if any(value.startswith(o) for o in OPERATORS):
        raise SpecError(spec, f"malformed operator in {part!r}", part, pos + op_at)
    value_re = _PCI_VALUE_RE if key == "pci" else _VALUE_RE
    if not value_re.match(value):
        bad = next(ch for ch in value if not value_re.match(ch))
        raise SpecError(spec, f"character {bad!r} is not allowed in a value", value, vpos)
    if not _KEY_RE.match(key):
        raise SpecError(spec, f"malformed key {key!r}", key, pos)
    if key not in hw.KEYS:
        near = KEY_SYNONYMS.get(key) or _closest(key, hw.KEYS)
        if near:
            raise SpecError(spec, f"unknown key {key!r}", key, pos, f"{near}{op}{value}")
        # A well-formed key a newer version may know: unsatisfiable, not an error.
        return Constraint(key, op, tuple(value.split("/")), part, unknown=True)
    known = hw.KEYS[key]
    kind = known.kind
    if not known.applies(cls):
        applies = ", ".join(known.classes)
        raise SpecError(
            spec, f"key {key!r} does not apply to class {cls!r} (only to {applies})", key, pos
        )
    values = tuple(value.split("/"))
    if len(values) > 1 and op not in ("=", "!="):
        raise SpecError(spec, f"'/' alternatives need '=' or '!=', not {op!r}", part, pos + op_at)
    if op in ORDERING_OPS and kind in (hw.STRING, hw.CHOICE):
        hint = _ordering_hint(key, value, op)
        raise SpecError(spec, f"key {key!r} cannot be compared with {op!r}", part, pos, hint)
    for v in values:
        _check_value(spec, known, v, vpos)
    return Constraint(key, op, values, part)


def _parse_word(spec: str, cls: str, word: str, pos: int) -> Constraint:
    if not _VALUE_RE.match(word) or "/" in word or "*" in word:
        bad = next((ch for ch in word if not _VALUE_RE.match(ch) or ch in "/*"), word[0])
        raise SpecError(spec, f"character {bad!r} is not allowed in {word!r}", word, pos)
    lower = word.lower()
    hw_class = hw.get(cls)
    if _CUDA_ARCH_RE.match(lower):
        if hw.CUDA_ARCH not in hw_class.arch_words:
            raise SpecError(
                spec, f"{word!r} is a CUDA architecture; it needs class cuda", word, pos
            )
        return Constraint("arch", "=", (lower,), word)
    if _ROCM_ARCH_RE.match(lower):
        if hw.ROCM_ARCH not in hw_class.arch_words:
            raise SpecError(spec, f"{word!r} is a ROCm gfx target; it needs class rocm", word, pos)
        return Constraint("arch", "=", (lower,), word)
    if hw_class.features:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", word):
            raise SpecError(spec, f"malformed feature flag {word!r}", word, pos)
        return Constraint("feature", "=", (lower,), word, feature=True)
    near = _closest(lower, hw.KEYS)
    hint = f"{near}=..." if near else None
    raise SpecError(
        spec,
        f"{word!r} is neither a constraint (key op value) nor a known word for class {cls!r}",
        word,
        pos,
        hint,
    )


def _check_value(spec: str, known: hw.Key, value: str, pos: int) -> None:
    key, kind = known.name, known.kind
    if "*" in value and kind != hw.STRING:
        raise SpecError(spec, f"'*' globs only work for text keys, not {key}", value, pos)
    if kind == hw.INT:
        if not _INT_RE.match(value):
            raise SpecError(spec, f"{key} needs a whole number, not {value!r}", value, pos)
    elif kind == hw.VERSION:
        if not _VERSION_RE.match(value):
            raise SpecError(spec, f"{key} needs a version like 8.0, not {value!r}", value, pos)
    elif kind == hw.SIZE:
        if _INT_RE.match(value):
            raise SpecError(spec, f"{key} needs a unit (K, M, G or T)", value, pos, f"{value}G")
        if not _SIZE_RE.match(value):
            raise SpecError(spec, f"{key} needs a size like 16G, not {value!r}", value, pos)
    elif kind == hw.CHOICE and value.lower() not in known.choices:
        message = f"{key} must be one of {', '.join(known.choices)}, not {value!r}"
        raise _not_one_of(spec, message, value, pos, known.choices)


def _not_one_of(
    spec: str, message: str, word: str, pos: int, choices: tuple[str, ...]
) -> SpecError:
    """An error for ``word`` outside ``choices``, suggesting the closest choice."""
    return SpecError(spec, message, word, pos, _closest(word.lower(), choices))


def _find_operator(part: str) -> tuple[int, str | None]:
    best: tuple[int, str | None] = (len(part), None)
    for op in OPERATORS:
        i = part.find(op)
        if i != -1 and (i < best[0] or (i == best[0] and len(op) > len(best[1] or ""))):
            best = (i, op)
    return best


def _ordering_hint(key: str, value: str, op: str) -> str | None:
    m = _CUDA_ARCH_RE.match(value.lower())
    if key == "arch" and m:
        return f"cc{op}{m.group(1)}.{m.group(2)}"
    return None


def _closest(word: str, choices: object) -> str | None:
    options = [str(c) for c in choices]  # type: ignore[attr-defined]
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return found[0] if found else None


# -- value helpers shared with the matcher ----------------------------------


def parse_size(value: str) -> int:
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(value)
    try:
        return int(Decimal(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise ValueError(value) from None


def parse_version(value: str) -> tuple[int, ...]:
    """``"535.104.05"`` -> ``(535, 104, 5)``; trailing non-numeric text is dropped."""
    parts = []
    for piece in value.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    if not parts:
        raise ValueError(value)
    return tuple(parts)
