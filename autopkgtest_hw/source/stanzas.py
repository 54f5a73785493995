"""A streamed reader of archive indexes (``Sources``): one stanza at a time, each bounded.

An index comes from the archive, a mirror or a user: it may be hostile.  It is
read in chunks, never whole: runs of blank lines are skipped at C speed (a
0.5 MB .gz of newlines is 500 MB of nothing), a stanza over
:data:`MAX_STANZA` bytes is one stanza in error (the others still route), and
only the wanted fields are decoded.  Nothing here knows what the fields mean.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

#: Bytes of one stanza (sid's largest Sources stanza, linux, is about 100 KB).
MAX_STANZA = 4 << 20
#: Decompressed bytes of one index (sid's main Sources is about 50 MB: 20 times that).
MAX_INDEX = 1 << 30
#: Stanzas of one index (sid has about 38,000 source packages).
MAX_STANZAS = 1_000_000
CHUNK = 1 << 20

_BLANKS = re.compile(rb"\n*")


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class IndexTooLarge(Exception):
    """The index exceeds a bound that no real index reaches."""


@dataclass
class Stanza:
    number: int  # 1-based
    line: int  # where it starts
    fields: dict[str, str] = field(default_factory=dict)  # the wanted fields, decoded
    error: str | None = None


def read(f: Readable, wanted: Sequence[str]) -> Iterator[Stanza]:
    """Every stanza of ``f``, with the fields named in ``wanted`` (case as given)."""
    names = {w.lower(): w for w in wanted}
    field_re = re.compile(
        rb"^(" + b"|".join(re.escape(w.encode()) for w in wanted) + rb"):[ \t]*(.*(?:\n[ \t].*)*)",
        re.MULTILINE | re.IGNORECASE,
    )
    buf = b""
    pos = 0
    line = 1
    number = 0
    total = 0
    skipping = False  # inside a stanza already reported as too large
    eof = False
    while True:
        blanks = _BLANKS.match(buf, pos)
        start = blanks.end() if blanks else pos  # \n* always matches
        line += start - pos
        pos = start
        end = buf.find(b"\n\n", pos)
        if end < 0 and eof and pos < len(buf):
            end = len(buf)
        if end >= 0:
            body = buf[pos:end]
            if skipping:
                skipping = False
            elif body.strip():
                number += 1
                if number > MAX_STANZAS:
                    raise IndexTooLarge(f"more than {MAX_STANZAS} stanzas")
                if len(body) > MAX_STANZA:
                    yield _too_large(body[: 64 * 1024], number, line, field_re, names)
                else:
                    yield _parse(body, number, line, field_re, names)
            line += body.count(b"\n")
            pos = end
            continue
        if eof:
            return
        if len(buf) - pos > MAX_STANZA:
            if not skipping:
                number += 1
                yield _too_large(buf[pos : pos + 64 * 1024], number, line, field_re, names)
                skipping = True
            line += buf.count(b"\n", pos)
            keep = b"\n" if buf.endswith(b"\n") else b""
            line -= len(keep)  # counted again when it is skipped
            buf, pos = keep, 0
        chunk = f.read(CHUNK)
        total += len(chunk)
        if total > MAX_INDEX:
            raise IndexTooLarge(f"larger than {MAX_INDEX >> 30} GiB decompressed")
        eof = not chunk
        buf = buf[pos:] + chunk
        pos = 0


def _too_large(
    head: bytes, number: int, line: int, field_re: re.Pattern[bytes], names: dict[str, str]
) -> Stanza:
    """A stanza over the bound: its error, and what its first 64 KiB name (its Package)."""
    st = _parse(head, number, line, field_re, names)
    st.error = (
        f"stanza {number} (line {line}) is larger than {MAX_STANZA >> 20} MiB: not read"
        " (a Sources stanza is a few KB)"
    )
    return st


def _parse(
    body: bytes, number: int, line: int, field_re: re.Pattern[bytes], names: dict[str, str]
) -> Stanza:
    st = Stanza(number, line)
    for m in field_re.finditer(body):
        name = names[m.group(1).decode("ascii").lower()]
        if name in st.fields:
            continue  # dpkg refuses a repeated field; the first one is what tools read
        try:
            st.fields[name] = m.group(2).decode("utf-8")
        except UnicodeDecodeError as exc:
            st.error = f"stanza {number} (line {line}): {name} is not UTF-8 (byte {exc.start})"
    return st


class AptCat:
    """apt's own reader (``apt-helper cat-file``) for lists compressed with lz4 or zstd,
    as a stream: its output is never held whole."""

    def __init__(self, helper: str, path: str) -> None:
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, "No such file or directory")
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [helper, "cat-file", path], stdout=subprocess.PIPE, stderr=self._errors
        )
        assert self._proc.stdout is not None
        self._out: IO[bytes] = self._proc.stdout
        self._helper = helper

    def read(self, n: int = -1) -> bytes:
        data = self._out.read(n)
        if not data and self._proc.wait() != 0:
            self._errors.seek(0)
            message = self._errors.read(4096).decode("utf-8", "replace").strip()
            raise OSError(f"{self._helper} exited {self._proc.returncode}: {message}")
        return data

    def close(self) -> None:
        self._out.close()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._errors.close()
