"""The user's side of a session: this terminal relayed to the session's, and requests.

While the testbed is set up the terminal stays as it is, so Ctrl-C reaches
this client, which cancels the session (the devices were not ours yet).
Once the shell runs the terminal is raw: every key, Ctrl-C and Ctrl-\\
included, goes to the shell's own terminal, whose line discipline signals
the shell's foreground job.  Ctrl-] detaches: the session goes on, and
``autopkgtest-hw attach NAME`` comes back.  A terminal that hangs up
detaches the same way; SIGTERM ends the session.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty
from typing import Any

from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.porterbox import wire

DETACH_KEY = b"\x1d"  # Ctrl-]
DETACHED = -1


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise(signum: int, _frame: object) -> None:
    raise _Signalled(signum)


def window_size() -> dict[str, int]:
    with contextlib.suppress(OSError):
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        if rows and cols:
            return {"rows": rows, "cols": cols}
    return {"rows": 24, "cols": 80}


class Terminal:
    """This process's terminal, raw while the shell runs; restored on the way out."""

    def __init__(self) -> None:
        self.fd = 0
        self.saved: list[Any] | None = None
        self.raw = False
        self.started = False  # the shell runs: input goes to it

    def go_raw(self) -> None:
        if self.saved is None and os.isatty(self.fd):
            with contextlib.suppress(termios.error):
                self.saved = termios.tcgetattr(self.fd)
                tty.setraw(self.fd, termios.TCSANOW)  # keep what was typed meanwhile
                self.raw = True

    def restore(self) -> None:
        if self.saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None
            self.raw = False

    def message(self, text: str) -> None:
        end = "\r\n" if self.raw else "\n"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(("\r\n" if self.raw else "") + text.replace("\n", end) + end)
            sys.stderr.flush()


def wait_started(sock: socket.socket, name: str) -> int:
    """The setup's messages until the shell runs (0), or the session's failure status."""
    return attach(sock, name, until_started=True)


def attach(sock: socket.socket, name: str, until_started: bool = False) -> int:
    """Relay until the session ends (its exit status) or this client detaches (0)."""
    term = Terminal()
    old = {s: signal.signal(s, _raise) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    winch = signal.signal(
        signal.SIGWINCH, lambda *_: _send_quietly(sock, wire.WINSIZE, window_size())
    )
    reader = wire.Reader()
    stdin_open = True
    try:
        sock.settimeout(None)
        wire.send(sock, wire.ATTACH, json.dumps(window_size()).encode())
        while True:
            try:
                watch = [sock] + ([sys.stdin.fileno()] if stdin_open and term.started else [])
                ready, _, _ = select.select(watch, [], [])
                if sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        term.restore()
                        term.message("autopkgtest-hw: the session went away")
                        return Exit.FAILED
                    for kind, payload in reader.feed(data):
                        if until_started and kind == wire.STARTED:
                            term.message(detached_message(name))
                            return Exit.OK
                        result = _frame(term, kind, payload)
                        if result is not None:
                            term.restore()
                            return result
                if stdin_open and sys.stdin.fileno() in ready:
                    data = os.read(sys.stdin.fileno(), 65536)
                    if not data:
                        stdin_open = False
                        wire.send(sock, wire.INPUT, b"\x04")
                    elif term.raw and DETACH_KEY in data:
                        before = data.split(DETACH_KEY, 1)[0]
                        if before:
                            wire.send(sock, wire.INPUT, before)
                        term.restore()
                        term.message(detached_message(name))
                        return Exit.OK
                    else:
                        wire.send(sock, wire.INPUT, data)
            except _Signalled as exc:
                if exc.signum == signal.SIGHUP:
                    return 128 + signal.SIGHUP  # the terminal is gone: the session goes on
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(s, signal.SIG_IGN)
                why = "interrupted (Ctrl-C)" if exc.signum == signal.SIGINT else "got SIGTERM"
                end = {"status": 128 + exc.signum, "why": why}
                _send_quietly(sock, wire.END, end)
            except (OSError, wire.SessionError):
                term.restore()
                term.message("autopkgtest-hw: lost the connection to the session")
                return Exit.FAILED
    finally:
        term.restore()
        signal.signal(signal.SIGWINCH, winch)
        for s, h in old.items():
            signal.signal(s, h)


def _frame(term: Terminal, kind: bytes, payload: bytes) -> int | None:
    if kind == wire.OUTPUT:
        with contextlib.suppress(OSError):
            os.write(sys.stdout.fileno(), payload)
    elif kind == wire.MESSAGE:
        term.message(payload.decode("utf-8", "replace"))
    elif kind == wire.STARTED:
        term.started = True
        term.go_raw()
    elif kind == wire.EXITED:
        result = json.loads(payload)
        return Exit.OK if result.get("detached") else int(result.get("status", Exit.FAILED))
    return None


def _send_quietly(sock: socket.socket, kind: bytes, value: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        wire.send(sock, kind, json.dumps(value).encode())


def detached_message(name: str) -> str:
    return f"autopkgtest-hw: detached from session {name}; autopkgtest-hw attach {name} comes back"


def request(sock: socket.socket, kind: bytes, value: dict[str, Any]) -> dict[str, Any]:
    """One request, one JSON reply."""
    sock.settimeout(None)
    wire.send(sock, kind, json.dumps(value).encode())
    while True:
        got, payload = wire.receive(sock)
        if got == wire.REPLY:
            reply = json.loads(payload)
            return reply if isinstance(reply, dict) else {}
