"""Make text from files, packages or the broker safe for a terminal or a log line."""

from __future__ import annotations

#: Longest string we print from outside input (package names, reasons, paths).
MAX_SHOWN = 300


def safe(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` with control characters (escape sequences, newlines) shown as ``\\xNN``."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "..."
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
