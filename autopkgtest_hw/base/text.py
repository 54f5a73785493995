"""Make strings from files, processes and hardware safe to print on a terminal or in a log.

A device's name comes from its driver, an inventory file or a CDI spec; a
test name from a control file.  Printed raw, a newline in one forges a line
of autopkgtest's summary, an escape sequence rewrites the terminal.  Every
such string is escaped on its way to a person (``\\n``, ``\\x1b``,
``\\u2028``); JSON output keeps the exact string (JSON escapes it itself).
"""

from __future__ import annotations


def _escape_char(ch: str) -> str:
    if ch in "\t\n\r":
        return repr(ch)[1:-1]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control or non-printable character escaped (none is cut).

    Lone surrogates (from undecodable bytes) are escaped too.  With
    ``keep_newlines``, ``\\n`` stays (for a message of several lines of ours).
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or (keep_newlines and ch == "\n") else _escape_char(ch)
        for ch in text
    )


def safe(text: object, limit: int = 500) -> str:
    """``text`` with control and non-printable characters escaped, cut at ``limit``."""
    text = str(text)
    out = escape(text[:limit])
    return out + "..." if len(text) > limit else out
