"""Parse and validate the hardware spec language (docs/spec-language.md).

``parse("cuda:cc>=8.0|rocm:gfx90a")`` returns a :class:`Spec` or raises
:class:`SpecError`, which names the token, its column and, for a near miss,
a suggestion.  Nothing else is ever raised, whatever the input.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.spec import classes as hw
from autopkgtest_hw.spec import sizes
from autopkgtest_hw.spec.rocm import GENERIC_TARGETS, TARGET_FEATURE_RE, generic_name

NEEDS_HW_PREFIX = "needs-hw:"
OPERATORS = (">=", "<=", "!=", "=", ">", "<")  # longest first
ORDERING_OPS = frozenset({">=", "<=", ">", "<"})

_VALUE_RE = re.compile(r"^[A-Za-z0-9._\-+*/]+$")
_PCI_VALUE_RE = re.compile(r"^[A-Za-z0-9._\-+*/:]+$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
#: Bounds: a spec is one word of debian/tests/control, not a document.  A
#: longer one is an error long before matching it could cost anything.
MAX_SPEC_LENGTH = 1000
MAX_INT_DIGITS = 9  # count>=, cores>=
MAX_VERSION_PARTS = 8  # 535.104.05
MAX_VERSION_DIGITS = 9  # per part
_VERSION_RE = re.compile(
    rf"^\d{{1,{MAX_VERSION_DIGITS}}}(\.\d{{1,{MAX_VERSION_DIGITS}}}){{0,{MAX_VERSION_PARTS - 1}}}$"
)
_INT_RE = re.compile(rf"^\d{{1,{MAX_INT_DIGITS}}}$")
_DIGITS_RE = re.compile(r"^\d+$")
_CUDA_ARCH_RE = re.compile(r"^sm_(\d)(\d+)$")
_ROCM_ARCH_RE = re.compile(r"^gfx[0-9a-f]{3,5}$")
_SUBSTVAR_RE = re.compile(r"\$\{[^}]*\}?")
_SPLIT_RE = re.compile(r"[\s,]")  # what autopkgtest splits Restrictions: on

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
    """Parse one spec (``needs-hw:`` prefix allowed); raise SpecError if invalid.

    A spec is parsed once: the same text again returns the same Spec (a
    cache; ``plan`` and routing read the same few specs thousands of times).
    """
    if not isinstance(text, str):
        raise SpecError(repr(text)[:80], "a spec is a string", repr(text)[:80], 0)
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Spec:
    return _parse(text)


def _parse(text: str) -> Spec:
    spec_text = text.removeprefix(NEEDS_HW_PREFIX)
    offset = len(text) - len(spec_text)
    if not spec_text:
        raise SpecError(text, "empty spec", "", offset, "cpu")
    if len(spec_text) > MAX_SPEC_LENGTH:
        shown = text[:40] + "..."
        raise SpecError(
            shown,
            f"a spec is at most {MAX_SPEC_LENGTH} characters; this one has {len(spec_text)}",
            shown,
            offset + MAX_SPEC_LENGTH,
        )
    substvar = _SUBSTVAR_RE.search(spec_text)
    if substvar:
        raise _substvar_error(text, substvar.group(), offset + substvar.start())
    split_on = _SPLIT_RE.search(spec_text)
    if split_on:
        ch = split_on.group()
        what = "whitespace" if ch.isspace() else "a comma"
        raise SpecError(
            text,
            f"{what} is not allowed in a spec (autopkgtest splits restrictions on it)",
            ch,
            offset + split_on.start(),
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
        message = f"unknown class {_short(cls)!r} (classes: {', '.join(hw.NAMES)})"
        raise _not_one_of(spec, message, cls, pos, hw.NAMES)
    constraints = []
    seen_keys: set[str] = set()
    cpos = pos + len(cls) + 1
    for part in _join_pci_ids(parts[1:]):
        if cls == "rocm" and TARGET_FEATURE_RE.match(part.lower()):
            raise _target_feature_error(spec, alt_text, part, cpos)
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
        raise SpecError(spec, f"constraint {_short(part)!r} has no key before {op!r}", part, pos)
    if not value:
        raise SpecError(
            spec, f"constraint {_short(part)!r} has no value after {op!r}", part, pos + op_at
        )
    vpos = pos + op_at + len(op)
    if value[0] in "<>=!":
        raise SpecError(spec, f"malformed operator in {_short(part)!r}", part, pos + op_at)
    value_re = _PCI_VALUE_RE if key == "pci" else _VALUE_RE
    if not value_re.match(value):
        bad = next(ch for ch in value if not value_re.match(ch))
        raise SpecError(spec, f"character {bad!r} is not allowed in a value", value, vpos)
    if not _KEY_RE.match(key):
        raise SpecError(spec, f"malformed key {_short(key)!r}", key, pos)
    if key not in hw.KEYS:
        near = KEY_SYNONYMS.get(key) or _closest(key, hw.KEYS)
        if near:
            raise SpecError(spec, f"unknown key {_short(key)!r}", key, pos, f"{near}{op}{value}")
        # A well-formed key a newer version may know: unsatisfiable, not an error.
        return Constraint(key, op, tuple(value.split("/")), part, unknown=True)
    known = hw.KEYS[key]
    kind = known.kind
    if not known.applies(cls):
        applies = ", ".join(known.classes)
        raise SpecError(
            spec,
            f"key {_short(key)!r} does not apply to class {_short(cls)!r} (only to {applies})",
            key,
            pos,
        )
    values = tuple(value.split("/"))
    if len(values) > 1 and op not in ("=", "!="):
        raise SpecError(spec, f"'/' alternatives need '=' or '!=', not {op!r}", part, pos + op_at)
    if op in ORDERING_OPS and kind in (hw.STRING, hw.CHOICE, hw.SET):
        hint = _ordering_hint(key, value, op)
        raise SpecError(
            spec, f"key {_short(key)!r} cannot be compared with {op!r}", part, pos, hint
        )
    for v in values:
        _check_value(spec, known, v, vpos)
    return Constraint(key, op, values, part)


def _parse_word(spec: str, cls: str, word: str, pos: int) -> Constraint:
    if "/" in word and all(_is_arch_word(w) for w in word.split("/")):
        raise SpecError(
            spec,
            f"{_short(word)!r}: several architectures are written as one 'arch=' constraint",
            word,
            pos,
            f"arch={word.lower()}",
        )
    if not _VALUE_RE.match(word) or "/" in word or "*" in word:
        bad = next((ch for ch in word if not _VALUE_RE.match(ch) or ch in "/*"), word[0])
        raise SpecError(spec, f"character {bad!r} is not allowed in {_short(word)!r}", word, pos)
    lower = word.lower()
    hw_class = hw.get(cls)
    if _CUDA_ARCH_RE.match(lower):
        if hw.CUDA_ARCH not in hw_class.arch_words:
            raise SpecError(
                spec, f"{_short(word)!r} is a CUDA architecture; it needs class cuda", word, pos
            )
        return Constraint("arch", "=", (lower,), word)
    if _ROCM_ARCH_RE.match(lower) or lower.endswith("-generic"):
        if hw.ROCM_ARCH not in hw_class.arch_words:
            raise SpecError(
                spec, f"{_short(word)!r} is a ROCm gfx target; it needs class rocm", word, pos
            )
        _check_rocm_target(spec, lower, word, pos)
        return Constraint("arch", "=", (lower,), word)
    if hw_class.features:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", word):
            raise SpecError(spec, f"malformed feature flag {_short(word)!r}", word, pos)
        return Constraint("feature", "=", (lower,), word, feature=True)
    near = _closest(lower, hw.KEYS)
    hint = f"{near}=..." if near else None
    raise SpecError(
        spec,
        f"{_short(word)!r} is neither a constraint (key op value)"
        f" nor a known word for class {_short(cls)!r}",
        word,
        pos,
        hint,
    )


def _check_value(spec: str, known: hw.Key, value: str, pos: int) -> None:
    key, kind = known.name, known.kind
    if "*" in value and kind != hw.STRING:
        raise SpecError(spec, f"'*' globs only work for text keys, not {key}", value, pos)
    if kind == hw.INT:
        if _DIGITS_RE.match(value) and not _INT_RE.match(value):
            message = f"{key} needs a whole number of at most {MAX_INT_DIGITS} digits"
            raise SpecError(spec, message, _short(value), pos)
        if not _INT_RE.match(value):
            raise SpecError(spec, f"{key} needs a whole number, not {_short(value)!r}", value, pos)
    elif kind == hw.VERSION:
        if not _VERSION_RE.match(value):
            message = f"{key} needs a version like 8.0, not {_short(value)!r}"
            if re.match(r"^[\d.]+$", value):
                message += (
                    f" (at most {MAX_VERSION_PARTS} numbers of at most"
                    f" {MAX_VERSION_DIGITS} digits, separated by dots)"
                )
            raise SpecError(spec, message, _short(value), pos)
    elif kind == hw.SIZE:
        if _DIGITS_RE.match(value) and len(value) <= 15:
            message = f"{key} needs a unit ({sizes.SIZE_FORMS})"
            raise SpecError(spec, message, value, pos, f"{value}G")
        if not sizes.SIZE_RE.match(value):
            message = f"{key} needs a size like 16G or 16Gi, not {_short(value)!r}"
            if re.match(r"^[\d.]+", value):
                message += " (at most 15 digits and 6 decimals, then a unit)"
            raise SpecError(spec, message, _short(value), pos)
    elif kind in (hw.CHOICE, hw.SET) and value.lower() not in known.choices:
        message = f"{key} must be one of {', '.join(known.choices)}, not {_short(value)!r}"
        raise _not_one_of(spec, message, value, pos, known.choices)
    elif key == "arch" and (_ROCM_ARCH_RE.match(value.lower()) or "generic" in value.lower()):
        _check_rocm_target(spec, value.lower(), value, pos)


def _short(value: str) -> str:
    """A value for a message: a runaway one is cut."""
    return value if len(value) <= 40 else f"{value[:20]}...({len(value)} characters)"


def _is_arch_word(word: str) -> bool:
    lower = word.lower()
    return bool(_CUDA_ARCH_RE.match(lower) or _ROCM_ARCH_RE.match(lower)) or (
        lower.endswith("-generic")
    )


def _check_rocm_target(spec: str, lower: str, word: str, pos: int) -> None:
    """A ``-generic`` target must be one LLVM defines."""
    if lower.endswith("-generic") and lower not in GENERIC_TARGETS:
        message = (
            f"{_short(word)!r} is not an LLVM generic target"
            f" (generic targets: {', '.join(GENERIC_TARGETS)})"
        )
        raise SpecError(spec, message, word, pos, generic_name(lower))


def _target_feature_error(spec: str, alt_text: str, part: str, pos: int) -> SpecError:
    """``rocm:gfx90a:xnack+``: LLVM's feature suffix, which no detector reads."""
    rest = [p for p in alt_text.split(":") if not TARGET_FEATURE_RE.match(p.lower())]
    return SpecError(
        spec,
        f"target feature {_short(part)!r} is not a constraint: whether a GPU runs with XNACK or"
        " SRAMECC on is a boot-time setting that no detector reads; name the target alone"
        " (and build the code object for both settings, which is LLVM's default)",
        part,
        pos,
        ":".join(rest),
    )


def _substvar_error(text: str, var: str, pos: int) -> SpecError:
    """``${rocm:GPU-Architecture}``: debian/tests/control is never substituted."""
    rocm = "rocm" in var.lower()
    instead = (
        "the targets themselves, e.g. 'needs-hw:rocm:arch=gfx90a/gfx1030', or 'needs-hw:rocm'"
        " for any ROCm GPU"
        if rocm
        else "the value itself"
    )
    return SpecError(
        text,
        f"substitution variable {_short(var)!r}: debian/tests/control is never substituted"
        f" (only debian/control is, by dh_gencontrol); write {instead}",
        _short(var),
        pos,
    )


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
    """Bytes of a size value: ``16G`` = 16e9, ``16Gi`` = 16 * 2^30."""
    return sizes.parse_size(value)


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
