"""Sizes of the spec language: ``16G`` is decimal (16e9 bytes), ``16Gi`` binary (16 * 2^30).

Decimal is the default because cards and machines are sold in decimal sizes
and drivers report a little less than the label: a "16 GB" Tesla T4 reports
15,360 MiB (16.1e9 bytes), a 16 GB RX 6800 17.16e9 bytes, and ``mem>=16G``
holds on both.  A verdict shows a device's size in the unit the spec used, with
as many decimals as it takes never to print the asked figure for a size that
is not it (``mem 15.99G`` against ``mem>=16G``, never ``mem 16.0G``).

A device's ``mem`` is compared by its *nominal* size (:func:`nominal`): cards
with ECC or firmware-reserved memory report less than they are sold with (a
"8 GB" Tesla P4 reports 7,611 MiB, 7.98e9 bytes; a "12 GB" K80 GPU 11,441
MiB; an "80 GB" H100 81,559 MiB).
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_FLOOR, Decimal, localcontext

#: A size value: a number (at most 15 digits, 6 decimals) and a unit.
SIZE_RE = re.compile(r"^(\d{1,15}(?:\.\d{1,6})?)([KMGT])(i?)(B?)$", re.IGNORECASE)
#: What SIZE_RE admits, for messages.
SIZE_FORMS = "decimal K M G T or binary Ki Mi Gi Ti, B optional"

_POWERS = {"K": 1, "M": 2, "G": 3, "T": 4}
#: The most decimals a shown size ever needs (2^-40 has 40; 1e-12 has 12).
_MAX_DECIMALS = 40


#: A reported total at least this fraction of the next whole GiB is that GiB.
#: ECC takes 1/16 of an NVIDIA card's memory and the driver a little more (a P4
#: reports 92.9% of 8 GiB, a K80 GPU 93.1% of 12 GiB); 11/12 (91.7%) admits
#: them and leaves a card that reports 7.3 GiB at 7.3 GiB.
NOMINAL_FRACTION = (11, 12)
_GiB = 1 << 30


def nominal(reported: int) -> int:
    """The size a device was sold as: ``reported`` rounded up to the next whole GiB
    when it is at least 11/12 of it, else ``reported`` itself.

    It never exceeds the whole GiB just above the reported total, so an 8 GB
    card (at most 8 GiB = 8.59e9 bytes) never satisfies ``mem>=10G``.
    """
    if reported <= 0:
        return reported
    whole = -(-reported // _GiB) * _GiB
    num, den = NOMINAL_FRACTION
    return whole if reported * den >= whole * num else reported


def unit_factor(unit: str) -> int:
    """``G`` -> 10^9, ``Gi`` / ``GiB`` -> 2^30, ``GB`` -> 10^9."""
    letter = unit[:1].upper()
    power = _POWERS[letter]
    binary = unit[1:2].lower() == "i"
    return (1 << (10 * power)) if binary else 10 ** (3 * power)


@functools.lru_cache(maxsize=1024)
def split(value: str) -> tuple[Decimal, str]:
    """``"1.5Gi"`` -> ``(Decimal("1.5"), "Gi")``; ValueError if not a size."""
    m = SIZE_RE.match(value)
    if not m:
        raise ValueError(value)
    return Decimal(m.group(1)), m.group(2) + m.group(3) + m.group(4)


@functools.lru_cache(maxsize=1024)
def parse_size(value: str) -> int:
    """Bytes of a size value (rounded down to a whole byte)."""
    number, unit = split(value)
    return int(number * unit_factor(unit))


def unit_of(value: str) -> str:
    """The unit a size value was written in, as it was written (``G``, ``GiB``)."""
    return split(value)[1]


def format_in(n: int, unit: str, avoid: tuple[Decimal, ...] = ()) -> str:
    """``n`` bytes in ``unit`` (``G``, ``Gi``, ``GB``...), rounded down.

    Up to two decimals as a rule, more while the figure shown would equal one
    of ``avoid`` (the sizes a spec asked for) although ``n`` is not that size.
    """
    factor = unit_factor(unit)
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(n) / Decimal(factor)
        decimals = 0 if exact == exact.to_integral_value() else 2
        while True:
            shown = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_FLOOR)
            clash = any(shown == a and exact != a for a in avoid)
            if not clash or decimals >= _MAX_DECIMALS:
                break
            decimals += 1
        text = f"{shown:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}{unit}"


def format_size(n: int) -> str:
    """A size for people, in binary units (``79.6GiB``, ``512GiB``): what ``detect`` prints."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = unit_factor(unit)
        if n >= factor:
            value = n / factor
            if value >= 100 or value == int(value):
                return f"{value:.0f}{unit}"
            return f"{int(value * 10) / 10:.1f}{unit}"
    return f"{n}B"
