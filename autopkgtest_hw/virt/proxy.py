"""Forward autopkgtest's virt-server protocol to an inner server, one reply per command.

The protocol (autopkgtest's README.virtualisation-server): the server prints a
banner ``ok``, then reads one command per line and answers each with exactly
one line, ``ok [words...]`` or a failure word; every word is URL-quoted.
``quit`` gets no reply (VirtSubproc exits at once; autopkgtest closes its end
of the pipe before sending it).  The proxy hands each reply to a hook that may
rewrite it, and makes sure the inner server never outlives the proxy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import IO, BinaryIO, Protocol
from urllib.parse import unquote

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit, HwError
from autopkgtest_hw.base.stopping import escalate

#: Seconds the inner server gets to clean up after ``quit`` before SIGTERM, then SIGKILL.
QUIT_TIMEOUT = 120.0
TERM_TIMEOUT = 15.0

_PR_SET_PDEATHSIG = 1


class InnerDied(HwError):
    """The inner server exited (or closed its stdout) while we expected a line."""

    def __init__(self, returncode: int | None, while_doing: str) -> None:
        self.returncode = returncode
        self.while_doing = while_doing
        super().__init__(f"inner server died while {while_doing} ({describe_status(returncode)})")


class Interrupted(BaseException):
    """A terminating signal arrived; raised out of the blocking read."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def describe_status(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def crash_exit_code(returncode: int | None) -> int:
    """What the proxy exits with when the inner server died under it."""
    if returncode is not None and returncode > 0:
        return returncode  # the inner server's own verdict (12 = bomb, 16 = unexpected)
    return Exit.INNER_CRASH


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in this process (the parent) before any fork.

    ``CDLL(None)`` is the process's own symbol table, which has libc's; the
    lookup by name (``ctypes.util.find_library``) runs ``ldconfig -p``, which
    between fork and exec delayed every inner server's start.
    """
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(prctl: Callable[..., int] | None) -> None:  # pragma: no cover - child side
    """The inner server gets SIGTERM if the proxy dies (even by SIGKILL): no orphans."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class InnerServer:
    """The inner ``autopkgtest-virt-*`` process and its two pipes."""

    def __init__(self, argv: Sequence[str], pass_fds: Sequence[int] = ()) -> None:
        self.argv = list(argv)
        self.name = os.path.basename(self.argv[0])
        parent = os.getpid()
        prctl = _prctl()

        def preexec() -> None:  # pragma: no cover - child side
            _die_with_parent(prctl)
            if os.getppid() != parent:  # the proxy died before prctl took effect
                os._exit(Exit.INNER_CRASH)

        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the inner server's messages go to autopkgtest's log
            pass_fds=tuple(pass_fds),
            preexec_fn=preexec,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.quit_sent = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_line(self, while_doing: str) -> str:
        raw = self.stdout.readline()
        if not raw.endswith(b"\n"):
            raise InnerDied(self.reap(), while_doing)
        return raw.decode("utf-8", "surrogateescape").rstrip("\n")

    def send(self, line: str, while_doing: str) -> None:
        try:
            self.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
            self.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise InnerDied(self.reap(), while_doing) from None

    def request(self, line: str) -> str:
        """Send one command line and return its one reply line."""
        what = f"running `{line.split()[0] if line.split() else line}'"
        self.send(line, what)
        return self.read_line(what)

    def print_execute_command(self) -> str:
        """The inner server's reply to ``print-execute-command`` (how to run in the testbed)."""
        return self.request("print-execute-command")

    def reap(self) -> int | None:
        try:
            return self.proc.wait(timeout=TERM_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def shutdown(self, timeout: float = QUIT_TIMEOUT) -> int | None:
        """Send ``quit``, then SIGTERM, then SIGKILL: the inner server is gone afterwards."""
        if self.proc.poll() is None and not self.quit_sent:
            self.quit_sent = True
            with contextlib.suppress(OSError, ValueError):
                self.stdin.write(b"quit\n")
                self.stdin.flush()
        escalate(
            self.proc,
            timeout,
            TERM_TIMEOUT,
            lambda sig: log.warning(f"{self.name} (pid {self.pid}) did not exit; sending {sig}"),
        )
        with contextlib.suppress(OSError, ValueError):
            self.stdout.close()
        return self.proc.returncode


#: ``hook(command, words, reply) -> reply``: words are the command's URL-quoted words.
ReplyHook = Callable[[str, list[str], str], str]


def auxverb_of(word: str) -> list[str]:
    """The command of a ``print-execute-command`` reply word, read as autopkgtest reads it:
    unquote the word, split it at commas, unquote each piece."""
    return [unquote(w) for w in unquote(word).split(",")]


class ExecuteCommandSource(Protocol):
    """What a reply hook may ask the inner server between two replies."""

    def print_execute_command(self) -> str: ...


class Proxy:
    """Reads commands from ``stdin``, forwards them, writes replies to ``stdout``."""

    def __init__(
        self,
        inner: InnerServer,
        on_reply: ReplyHook,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
    ) -> None:
        self.inner = inner
        self.on_reply = on_reply
        self.stdin = stdin if stdin is not None else sys.stdin.buffer
        self.stdout = stdout if stdout is not None else sys.stdout.buffer

    def start(self) -> None:
        """Wait for the inner server's banner; the caller then prints ours."""
        banner = self.inner.read_line("starting up")
        if banner.split()[:1] != ["ok"]:
            raise InnerDied(self.inner.reap(), f"starting up (banner {banner!r})")

    def write(self, line: str) -> None:
        self.stdout.write(line.encode("utf-8", "surrogateescape") + b"\n")
        self.stdout.flush()

    def serve(self) -> int:
        """The main loop; returns our exit code once the inner server is gone."""
        while True:
            raw = self.stdin.readline()
            if not raw:
                log.error("end of file on stdin - caller quit? shutting the testbed down")
                self.inner.shutdown()
                return Exit.PROTOCOL
            line = raw.decode("utf-8", "surrogateescape").strip()
            if not line:
                continue  # VirtSubproc ignores (5.28) or rejects (5.44+) empty lines
            words = line.split()
            command = unquote(words[0])
            if command == "quit":
                rc = self.inner.shutdown()
                if rc:
                    log.error(f"{self.inner.name} {describe_status(rc)} after quit")
                    return crash_exit_code(rc)
                return Exit.OK
            reply = self.inner.request(line)
            reply = self.on_reply(command, words, reply)
            try:
                self.write(reply)
            except (BrokenPipeError, ValueError):
                log.error("stdout closed - caller quit? shutting the testbed down")
                self.inner.shutdown()
                return Exit.PROTOCOL


def install_signal_handlers() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def ignore_signals() -> None:
    """While shutting down, a second signal must not cut the cleanup short."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def die_by(signum: int) -> None:
    """Exit the way VirtSubproc does after a signal: by the signal itself."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
