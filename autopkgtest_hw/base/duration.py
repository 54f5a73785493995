"""Durations as people write them: ``90``, ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d``."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
#: Nobody holds a device for longer than a year.
MAX_SECONDS = 366 * 86400


def parse_duration(text: str) -> float:
    """Seconds; ValueError with a message a person can act on."""
    t = text.strip().lower()
    pos = 0
    total = 0.0
    if not t:
        raise ValueError("empty duration")
    while pos < len(t):
        m = _PART.match(t, pos)
        if not m or (not m.group(2) and m.end() != len(t)):
            raise ValueError(f"not a duration: {text[:40]!r} (write e.g. 90s, 30m, 2h, 1h30m)")
        total += float(m.group(1)) * _UNITS[m.group(2) or "s"]
        pos = m.end()
    if total <= 0 or total > MAX_SECONDS:
        raise ValueError(f"duration out of range: {text[:40]!r}")
    return total


def format_duration(seconds: float) -> str:
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec or not s else ""]
    return "".join(parts)
