"""A porterbox session: an interactive shell in a testbed that has the GPUs, for a while.

The session starts ``autopkgtest-virt-hwgpu`` (which allocates and locks the
devices, with a porterbox holder record) and speaks the virt-server protocol
to it: ``open``, then ``print-execute-command`` for the way into the testbed,
then runs ``bash -i`` through it on the user's terminal, as autopkgtest's own
``--shell`` does.  It ends when the shell exits, the time is up, the terminal
hangs up or a SIGTERM/SIGINT arrives: the shell and everything it started are
killed, the testbed is closed, the virt server quits (releasing the locks),
and any process left over (this process is a child subreaper, so orphans of
the shell come back to it) is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

from autopkgtest_hw.base.duration import format_duration
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.stopping import escalate
from autopkgtest_hw.locks.holders import clock
from autopkgtest_hw.virt.proxy import auxverb_of

EXIT_SETUP = Exit.FAILED  # the testbed could not be set up (devices busy, inner server failed)
EXIT_TIMEOUT = Exit.TIMEOUT  # like timeout(1)
#: Seconds a killed shell gets between SIGHUP and SIGKILL.
HANGUP_GRACE = 5.0
#: Seconds the virt server gets to close the testbed and quit.
QUIT_TIMEOUT = 150.0
_PR_SET_CHILD_SUBREAPER = 36


class Ended(BaseException):
    """A signal that ends the session."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def say(message: str) -> None:
    """A message on the terminal; after a hang-up there is none, and that is fine."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"autopkgtest-hw shell: {message}\n")
        sys.stderr.flush()


def _become_subreaper() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class VirtServer:
    """autopkgtest-virt-hwgpu as a child, in its own session (no terminal signals reach it)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.relay = threading.Thread(target=_relay, args=(self.proc.stderr,), daemon=True)
        self.relay.start()
        self.ready = False  # the banner came: the devices are ours and it reads commands

    def banner(self) -> bool:
        """Wait for the banner (the server waits for the devices first)."""
        self.ready = self.line() == "ok"
        return self.ready

    def line(self) -> str | None:
        raw = self.stdout.readline()
        return raw.decode("utf-8", "replace").rstrip("\n") if raw.endswith(b"\n") else None

    def request(self, command: str) -> str | None:
        try:
            self.stdin.write(command.encode() + b"\n")
            self.stdin.flush()
        except (OSError, ValueError):
            return None
        return self.line()

    def shut_down(self) -> None:
        """close, quit, then SIGTERM and SIGKILL: the server is gone afterwards.

        A server still waiting for the devices reads no commands: it gets SIGTERM at once.
        """
        if not self.ready and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        elif self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.stdin.write(b"close\n")
                self.stdin.flush()
                self.line()
                self.stdin.write(b"quit\n")
                self.stdin.flush()
        escalate(
            self.proc,
            QUIT_TIMEOUT,
            30.0,
            lambda sig: say(f"the virt server did not quit; sending {sig}"),
        )
        self.relay.join(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            self.stdout.close()


def _relay(stream: IO[bytes]) -> None:
    """The virt server's messages to our stderr, which may be a terminal that hung up."""
    for raw in iter(stream.readline, b""):
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.buffer.write(raw)
            sys.stderr.flush()
    stream.close()


def _children_of(pids: set[int]) -> set[int]:
    """Every live process whose parent is in ``pids``, and theirs, recursively."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] != "Z":
            parents[int(name)] = int(fields[1])
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        new = {p for p, pp in parents.items() if pp in frontier and p not in found}
        found |= new
        frontier = new
    return found


def _kill_tree(root: int, grace: float) -> None:
    """SIGHUP to ``root`` and its descendants (a hang-up, as a terminal gives), then SIGKILL."""
    tree = {root} | _children_of({root})
    for pid in tree:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGHUP)
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.1)
    for pid in tree | _children_of(tree):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _sweep_orphans(keep: set[int]) -> None:
    """Kill and reap what was left behind and came back to us as subreaper."""
    for _ in range(50):
        left = _children_of({os.getpid()}) - keep
        if not left:
            break
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        _reap()
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _handle(signum: int, _frame: object) -> None:
    raise Ended(signum)


def _restore_terminal() -> None:
    """Take the terminal back if the shell died holding its foreground."""
    with contextlib.suppress(OSError):
        fd = sys.stdin.fileno()
        if os.isatty(fd) and os.tcgetpgrp(fd) != os.getpgrp():
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(fd, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, old)


def shell_command() -> str:
    cmd = "cd /; "
    term = os.environ.get("TERM")
    if term and term.replace("-", "").replace(".", "").isalnum():
        cmd += f'export TERM="{term}"; '
    return cmd + "exec bash -i"


def run(virt_argv: Sequence[str], duration: float) -> int:
    """The whole session; returns the exit status for the command."""
    _become_subreaper()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _handle)
    server: VirtServer | None = None
    shell: subprocess.Popen[bytes] | None = None
    status: int = EXIT_SETUP
    opened = False  # only an opened session had devices to free
    try:
        server = VirtServer(virt_argv)
        if not server.banner():
            say("the testbed could not be set up (see the messages above)")
            return EXIT_SETUP
        deadline = time.monotonic() + duration
        until = int(time.time() + duration)
        reply = (server.request("open") or "").split()
        if reply[:1] != ["ok"]:
            say(f"cannot open the testbed: {' '.join(reply) or 'the virt server died'}")
            return EXIT_SETUP
        opened = True
        reply = (server.request("print-execute-command") or "").split()
        if reply[:1] != ["ok"] or len(reply) < 2:
            say("the virt server cannot say how to run commands in the testbed")
            return EXIT_SETUP
        auxverb = auxverb_of(reply[1])
        say(
            f"session open until {clock(until)} ({format_duration(duration)});"
            " exit the shell to end it sooner"
        )
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the shell
        shell = subprocess.Popen([*auxverb, "sh", "-c", shell_command()])
        try:
            status = shell.wait(timeout=max(0.0, deadline - time.monotonic()))
            status = 128 - status if status < 0 else status
        except subprocess.TimeoutExpired:
            say(f"time is up ({format_duration(duration)}): ending the session")
            status = EXIT_TIMEOUT
    except Ended as exc:
        say(f"got {exc}: ending the session")
        status = 128 + exc.signum
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # nothing may cut the teardown short
        if shell is not None:
            _kill_tree(shell.pid, HANGUP_GRACE)
            with contextlib.suppress(subprocess.TimeoutExpired):
                shell.wait(timeout=HANGUP_GRACE)
            _restore_terminal()
        if server is not None:
            server.shut_down()
        _sweep_orphans(set())
        if opened:
            say("session ended; the testbed is gone and the devices are free")
        else:
            say("no session was opened")
    return status
