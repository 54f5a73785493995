"""The specs of an ``XS-Requires-Hwspec`` field, as a maintainer writes them.

The field is a list like ``Depends``: commas separate specs that must all
hold, ``|`` separates alternatives, and whitespace around ``|`` and line
folds mean nothing (``cuda:cc>=7.0 | rocm:gfx90a``).  A ``needs-hw:`` word
cannot hold whitespace, so it is removed here, and every character of the
spec keeps the file line and column it came from, so lint can point into a
folded field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autopkgtest_hw.source.control import Field


@dataclass(frozen=True)
class FieldSpec:
    """One comma-separated item of the field, whitespace taken out."""

    text: str
    #: (line, column) in the file of every character of ``text``.
    places: tuple[tuple[int, int], ...]

    @property
    def line(self) -> int:
        return self.places[0][0]

    @property
    def column(self) -> int:
        return self.places[0][1]

    def place(self, offset: int) -> tuple[int, int]:
        """Where the character at ``offset`` of ``text`` stands in the file."""
        if not self.places:
            return (0, 0)
        return self.places[min(max(offset, 0), len(self.places) - 1)]


def field_specs(field: Field) -> tuple[FieldSpec, ...]:
    """The field's specs, in order; empty items (``a,,b``) are left out."""
    items: list[FieldSpec] = []
    chars: list[str] = []
    places: list[tuple[int, int]] = []

    def close() -> None:
        if chars:
            items.append(FieldSpec("".join(chars), tuple(places)))
        chars.clear()
        places.clear()

    for line, column, text in field.segments:
        for i, ch in enumerate(text):
            if ch == ",":
                close()
            elif not ch.isspace():
                chars.append(ch)
                places.append((line, column + i))
    close()
    return tuple(items)


def field_texts(fields: Iterable[Field]) -> tuple[str, ...]:
    """The spec texts of every Requires-Hwspec field, whitespace and folds taken out."""
    return tuple(s.text for f in fields for s in field_specs(f))


def value_texts(value: str) -> tuple[str, ...]:
    """The spec texts of a field's value as a .dsc or ``Sources`` carries it (no positions)."""
    return tuple(t for t in ("".join(item.split()) for item in value.split(",")) if t)
