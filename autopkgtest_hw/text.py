"""Make strings from files, processes and hardware safe to print on a terminal or in a log."""

from __future__ import annotations


def safe(text: object, limit: int = 500) -> str:
    """``text`` with control and non-printable characters escaped, cut at ``limit``."""
    text = str(text)
    if len(text) <= limit and text.isprintable():
        return text
    out = []
    for ch in text[:limit]:
        if ch.isprintable():
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(repr(ch)[1:-1])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    if len(text) > limit:
        out.append("...")
    return "".join(out)
