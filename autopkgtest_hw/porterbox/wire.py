"""How a session and its clients talk: named Unix sockets and framed messages.

A session listens on an abstract Unix socket named after its user and name
(``@autopkgtest-hw/session/UID/NAME``): no file another user could plant or
remove.  Anyone may connect (``status`` lists every user's sessions), so
both sides check the peer's credentials: a client talks only to a socket of
the uid in its name, a session obeys only its own user and root, and tells
others no more than ``status`` shows.

A frame is one type byte, a 4-byte length and at most ``MAX_FRAME`` bytes.
"""

from __future__ import annotations

import array
import re
import socket
import struct
from collections.abc import Iterator

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe

PREFIX = "autopkgtest-hw/session/"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
MAX_FRAME = 1 << 16
#: How much of /proc/net/unix is read to list sessions.
MAX_LISTING = 8 << 20

# client -> session
ATTACH = b"A"  # JSON {"rows", "cols"}: this client is the terminal now
INPUT = b"I"  # bytes for the shell
WINSIZE = b"W"  # JSON {"rows", "cols"}
INFO = b"Q"  # asks for the session's JSON description
COPY = b"C"  # JSON {"direction": "in"|"out", "host", "testbed"}
EXTEND = b"T"  # JSON {"seconds"}
END = b"K"  # ends the session
# session -> client
OUTPUT = b"O"  # bytes from the shell
MESSAGE = b"M"  # a line for the client's stderr
STARTED = b"S"  # the shell runs: go raw
REPLY = b"R"  # JSON answer to INFO, COPY, EXTEND
EXITED = b"X"  # JSON {"status"}: the session is over

_HEAD = struct.Struct("!cI")


class SessionError(HwError):
    """A session cannot be reached or refused a request."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise SessionError(
            f"bad session name {safe(name, 60)!r}: use up to 40 letters, digits, '.', '_', '-'"
        )
    return name


def address(uid: int, name: str) -> str:
    return f"\0{PREFIX}{uid}/{name}"


def peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the other end."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    pid, uid, _gid = array.array("i", creds)
    return pid, uid


def connect(uid: int, name: str, timeout: float = 5.0) -> socket.socket:
    """A connection to the session NAME of ``uid``; SessionError when there is none."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address(uid, name))
    except OSError:
        sock.close()
        raise SessionError(
            f"no session {safe(name, 60)!r} (autopkgtest-hw status lists the sessions)"
        ) from None
    if peer(sock)[1] != uid:
        sock.close()
        raise SessionError(f"the socket of session {safe(name, 60)!r} is not its user's: ignored")
    return sock


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    for start in range(0, max(len(payload), 1), MAX_FRAME):
        chunk = payload[start : start + MAX_FRAME]
        sock.sendall(_HEAD.pack(kind, len(chunk)) + chunk)


class Reader:
    """Frames out of a byte stream; bounded."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        self.buffer += data
        while len(self.buffer) >= _HEAD.size:
            kind, length = _HEAD.unpack_from(self.buffer)
            if length > MAX_FRAME:
                raise SessionError("a frame longer than allowed: not a session client")
            if len(self.buffer) < _HEAD.size + length:
                return
            payload = self.buffer[_HEAD.size : _HEAD.size + length]
            self.buffer = self.buffer[_HEAD.size + length :]
            yield kind, payload


def receive(sock: socket.socket) -> tuple[bytes, bytes]:
    """One frame (blocking); SessionError at end of file."""
    head = _read_exactly(sock, _HEAD.size)
    kind, length = _HEAD.unpack(head)
    if length > MAX_FRAME:
        raise SessionError("a frame longer than allowed: not a session")
    return kind, _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SessionError("the session closed the connection")
        data += chunk
    return data


def listed() -> list[tuple[int, str]]:
    """(uid, name) of every session socket on this host (from /proc/net/unix)."""
    found: set[tuple[int, str]] = set()
    try:
        with open("/proc/net/unix", "rb") as f:
            text = f.read(MAX_LISTING).decode("ascii", "replace")
    except OSError:
        return []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or not fields[-1].startswith("@" + PREFIX):
            continue
        if fields[3] != "00010000":  # listening sockets only
            continue
        uid, _, name = fields[-1][1 + len(PREFIX) :].partition("/")
        if uid.isdigit() and NAME.fullmatch(name):
            found.add((int(uid), name))
    return sorted(found)
