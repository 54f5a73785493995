"""The session process: the virt server, the shell in a pseudo-terminal, the clock, the clients.

``autopkgtest-hw shell`` starts it in a session of its own, so that nothing
on the user's terminal (Ctrl-C, a hang-up, a script's process group) reaches
it.  It starts ``autopkgtest-virt-hwgpu`` (which allocates and locks the
devices), opens the testbed, and runs ``bash -i`` through the virt server's
``print-execute-command`` on a pseudo-terminal of its own.  Clients (the
``shell`` that started it, ``attach``) relay that terminal to the user's;
the shell's terminal signals (Ctrl-C, Ctrl-\\, Ctrl-Z) come from its own line
discipline, so they reach its foreground job and never this process.  A
client that goes away (an ssh connection lost) leaves the session running
until its time is up.

In the testbed the shell is the first process of a PID namespace of its own
(``unshare --pid --fork --kill-child``): when it ends, the kernel kills
everything it started, daemons that fork away included.  Where the testbed
shares this host's processes (null, unshare), a pipe from this process is
its lifeline: if this process dies, even by SIGKILL, the pipe's end hangs
the shell up, and the namespace goes with it.

The session ends when the shell exits, the time is up (with warnings
before), on ``autopkgtest-hw attach NAME --end`` or SIGTERM: the shell and
what it started are killed, the testbed is closed, the virt server quits
(releasing the locks) and what escaped is killed (this process is a child
subreaper).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import selectors
import shlex
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from autopkgtest_hw.base.duration import format_duration
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.locks.holders import clock, user_name
from autopkgtest_hw.porterbox import reap, transfer, wire
from autopkgtest_hw.porterbox.virtserver import VirtServer
from autopkgtest_hw.virt.proxy import auxverb_of

EXIT_SETUP = Exit.FAILED  # the testbed could not be set up (devices busy, inner server failed)
EXIT_TIMEOUT = Exit.TIMEOUT  # like timeout(1)
#: Seconds a killed shell gets between SIGHUP and SIGKILL.
HANGUP_GRACE = 5.0
#: Messages kept for a client that is not attached now.
MAX_PENDING = 50
#: Connections served at once, and of them at most this many of other users.
MAX_CLIENTS = 16
MAX_OTHERS = 4
#: The file in the testbed's scratch directory that the prompt reads the end from.
UNTIL_FILE = "autopkgtest-hw-until"


@dataclass
class Spec:
    name: str
    virt_argv: list[str]
    duration: float
    max_for: float
    warn_before: list[float]
    inner: str
    lock_dir: str
    workdir: str | None = None
    term: str | None = None
    devices: list[str] = field(default_factory=list)


@dataclass
class Client:
    sock: socket.socket
    uid: int
    reader: wire.Reader = field(default_factory=wire.Reader)
    terminal: bool = False


def _safe_word(text: str) -> str:
    kept = "".join(c if c.isalnum() or c in "._:-" else "-" for c in text)
    return kept.strip("-")[:32] or "gpu"


class Session:
    def __init__(self, spec: Spec, listener: socket.socket) -> None:
        self.spec = spec
        self.listener = listener
        self.uid = os.getuid()
        self.user = user_name(self.uid)
        self.sel = selectors.DefaultSelector()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.clients: dict[int, Client] = {}
        self.terminal: Client | None = None
        self.pending: list[str] = []
        self.state = "setup"
        self.since = int(time.time())
        self.started = time.monotonic()
        self.deadline = self.started + spec.duration
        self.warned: set[float] = {b for b in spec.warn_before if b >= spec.duration}
        self.server: VirtServer | None = None
        self.shell: subprocess.Popen[bytes] | None = None
        self.master: int | None = None
        self.lifeline: int | None = None
        self.auxverb: list[str] = []
        self.downtmp = ""
        self.status: int = EXIT_SETUP
        self.winsize = (24, 80)
        self.cancelled = False

    # -- plumbing -------------------------------------------------------------------

    def post(self, kind: str, value: Any = None) -> None:
        self.events.put((kind, value))
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"x")

    def message(self, text: str) -> None:
        """A line for the user: to the attached client, or kept for the next one."""
        if self.terminal is not None and self._send(self.terminal, wire.MESSAGE, text.encode()):
            return
        self.pending = [*self.pending, text][-MAX_PENDING:]

    def say(self, text: str) -> None:
        self.message(f"autopkgtest-hw shell: {text}")

    def _send(self, client: Client, kind: bytes, payload: bytes = b"") -> bool:
        try:
            client.sock.settimeout(10)
            wire.send(client.sock, kind, payload)
            return True
        except OSError:
            self._drop(client)
            return False

    def _drop(self, client: Client) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(client.sock)
        if self.terminal is client:
            self.terminal = None
        with contextlib.suppress(OSError):
            client.sock.close()

    def info(self) -> dict[str, Any]:
        left = max(0, int(self.deadline - time.monotonic()))
        return {
            "name": self.spec.name,
            "user": self.user,
            "uid": self.uid,
            "pid": os.getpid(),
            "inner": self.spec.inner,
            "devices": self.spec.devices,
            "since": self.since,
            "until": int(time.time()) + left,
            "state": self.state,
            "attached": self.terminal is not None,
            "lock_dir": self.spec.lock_dir,
            "workdir": self.spec.workdir,
        }

    # -- the main loop ---------------------------------------------------------------

    def run(self) -> int:
        reap.become_subreaper()
        signal.signal(signal.SIGTERM, lambda *_: self.post("end", (128 + 15, "got SIGTERM")))
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
            # Caught, not ignored: an ignored signal stays ignored in the shell we start.
            signal.signal(sig, lambda *_: None)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.server = VirtServer(self.spec.virt_argv, self._virt_message)
        threading.Thread(target=self._set_up, daemon=True).start()
        try:
            while self.state != "over":
                self._tick()
        except Exception as exc:  # said to the user, then torn down as usual
            self.say(
                f"internal error ({safe(type(exc).__name__)}: {safe(exc)}): ending the session"
            )
            self.status = Exit.FAILED
        finally:
            self._teardown()
        return self.status

    def _tick(self) -> None:
        timeout = self._timers()
        for key, _ in self.sel.select(timeout):
            if key.data == "listen":
                self._accept()
            elif key.data == "wake":
                os.read(self.wake_r, 4096)
            elif key.data == "pty":
                self._from_pty()
            elif key.data == "shell":
                self._shell_exited()
            elif isinstance(key.data, Client):
                self._from_client(key.data)
        while not self.events.empty():
            kind, value = self.events.get()
            self._event(kind, value)

    def _timers(self) -> float | None:
        if self.state != "running":
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._end(
                EXIT_TIMEOUT, f"time is up ({format_duration(self._length())}): ending the session"
            )
            return 0
        for before in sorted(self.spec.warn_before):
            if left <= before and before not in self.warned:
                self.warned |= {b for b in self.spec.warn_before if b >= before}
                self.say(
                    f"session {self.spec.name} ends in {format_duration(left + 0.5)}"
                    f" (at {clock(int(time.time() + left))}); for more time:"
                    f" autopkgtest-hw extend {self.spec.name} --for 1h"
                )
        upcoming = [left - b for b in self.spec.warn_before if b not in self.warned and b < left]
        return min([left, *upcoming])

    def _length(self) -> float:
        return self.deadline - self.started

    def _event(self, kind: str, value: Any) -> None:
        if kind == "message":
            self.message(value)
        elif kind == "ready":
            self._start_shell()
        elif kind == "failed":
            if not self.cancelled:
                self.say(f"{value}: no session was opened")
            self.status = EXIT_SETUP
            self.state = "over"
        elif kind == "end":
            status, why = value
            self._end(status, why)
        elif kind == "reply":
            client, payload = value
            self._send(client, wire.REPLY, json.dumps(payload).encode())
            self._drop(client)

    def _virt_message(self, line: str) -> None:
        if "allocated: " in line:
            kind, _, rest = line.split("allocated: ", 1)[1].partition(" ")
            label = rest.split("'")[1] if rest.count("'") >= 2 else rest
            self.spec.devices.append(f"{_safe_word(kind)}:{_safe_word(label)}")
        self.post("message", safe(line, 2000))

    # -- setting up (a thread: the virt server may wait long for the devices) ----------

    def _set_up(self) -> None:
        server = self.server
        assert server is not None
        if not server.banner():
            self.post("failed", "the testbed could not be set up (see the messages above)")
            return
        reply = (server.request("open") or "").split()
        if reply[:1] != ["ok"]:
            self.post(
                "failed",
                f"cannot open the testbed: {safe(' '.join(reply)) or 'the virt server died'}",
            )
            return
        self.downtmp = reply[1] if len(reply) > 1 else ""
        reply = (server.request("print-execute-command") or "").split()
        if reply[:1] != ["ok"] or len(reply) < 2:
            self.post("failed", "the virt server cannot say how to run commands in the testbed")
            return
        self.auxverb = auxverb_of(reply[1])
        self._write_until()
        self.post("ready")

    def _write_until(self) -> None:
        """The end of the session, for the prompt in the testbed."""
        if not self.downtmp:
            return
        until = int(time.time() + self.deadline - time.monotonic())
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [*self.auxverb, "sh", "-c", 'cat > "$1"', "sh", f"{self.downtmp}/{UNTIL_FILE}"],
                input=f"{until}\n".encode(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )

    # -- the shell ---------------------------------------------------------------------

    def _start_shell(self) -> None:
        if self.state != "setup":
            return
        master, slave = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *self.winsize, 0, 0))
        lifeline_r, self.lifeline = os.pipe()
        script = shell_script(self.spec, self.downtmp, lifeline_r)
        try:
            self.shell = subprocess.Popen(
                ["setsid", "--ctty", *self.auxverb, "bash", "-c", script],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                pass_fds=(lifeline_r,),
            )
        except OSError as exc:
            self.say(f"cannot start the shell: {safe(exc.strerror)}")
            self.state = "over"
            return
        finally:
            os.close(slave)
            os.close(lifeline_r)
        self.master = master
        os.set_blocking(master, False)
        self.sel.register(master, selectors.EVENT_READ, "pty")
        pidfd = os.pidfd_open(self.shell.pid)
        self.sel.register(pidfd, selectors.EVENT_READ, "shell")
        self.shell_pidfd = pidfd
        self.state = "running"
        if self.terminal is not None:  # raw before the user reads that the shell is there
            self._send(self.terminal, wire.STARTED)
        self.say(
            f"session {self.spec.name} open until {clock(int(time.time() + self.spec.duration))}"
            f" ({format_duration(self.spec.duration)}); exit the shell to end it, Ctrl-] to detach"
            f" (autopkgtest-hw attach {self.spec.name} comes back)"
        )

    def _from_pty(self) -> None:
        assert self.master is not None
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(self.master)
            return
        if self.terminal is not None:
            self._send(self.terminal, wire.OUTPUT, data)

    def _shell_exited(self) -> None:
        assert self.shell is not None
        self.sel.unregister(self.shell_pidfd)
        status = self.shell.wait()
        self._end(128 - status if status < 0 else status, None)

    # -- clients ---------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        if len(self.clients) >= MAX_CLIENTS:
            sock.close()
            return
        client = Client(sock, wire.peer(sock)[1])
        others = [c for c in self.clients.values() if c.uid not in (0, self.uid)]
        if client.uid not in (0, self.uid) and len(others) >= MAX_OTHERS:
            sock.close()  # other users only ask what status shows: a few at a time
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = client
        self.sel.register(sock, selectors.EVENT_READ, client)

    def _from_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        try:
            for kind, payload in client.reader.feed(data):
                self._request(client, kind, payload)
        except (wire.SessionError, ValueError):
            self._drop(client)

    def _request(self, client: Client, kind: bytes, payload: bytes) -> None:
        if kind == wire.INFO:
            self.post("reply", (client, self.info()))
            return
        if client.uid not in (0, self.uid):
            self.post("reply", (client, {"error": f"session {self.spec.name} is not yours"}))
            return
        if kind == wire.ATTACH:
            self._attach(client, json.loads(payload or b"{}"))
        elif kind == wire.INPUT and client is self.terminal and self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, payload)
        elif kind == wire.WINSIZE and client is self.terminal:
            self._resize(json.loads(payload))
        elif kind == wire.EXTEND:
            self._extend(client, float(json.loads(payload)["seconds"]))
        elif kind == wire.COPY:
            self._copy(client, json.loads(payload))
        elif kind == wire.END:
            request = json.loads(payload or b"{}")
            status = int(request.get("status", Exit.INTERRUPTED))
            why = safe(request.get("why") or "ended by its user", 200)
            if self.state == "setup":
                self.cancelled = True
                why = f"{why} while waiting for the devices: no session was opened"
            else:
                why = f"{why}: ending the session"
            self.post("end", (status, why))

    def _attach(self, client: Client, size: dict[str, Any]) -> None:
        if self.terminal is not None and self.terminal is not client:
            self._send(self.terminal, wire.MESSAGE, b"autopkgtest-hw: attached elsewhere")
            self._send(self.terminal, wire.EXITED, json.dumps({"detached": True}).encode())
            self._drop(self.terminal)
        self.terminal = client
        for text in self.pending:
            self._send(client, wire.MESSAGE, text.encode())
        self.pending = []
        self._resize(size)
        if self.state == "running":
            self._send(client, wire.STARTED)
            left = self.deadline - time.monotonic()
            self.say(f"attached to session {self.spec.name}; {format_duration(left)} left")

    def _resize(self, size: dict[str, Any]) -> None:
        rows, cols = int(size.get("rows") or 24), int(size.get("cols") or 80)
        self.winsize = (max(1, min(rows, 1000)), max(1, min(cols, 1000)))
        if self.master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(
                    self.master, termios.TIOCSWINSZ, struct.pack("HHHH", *self.winsize, 0, 0)
                )
                assert self.shell is not None
                os.killpg(os.getpgid(self.shell.pid), signal.SIGWINCH)

    def _extended(self, seconds: float) -> dict[str, Any]:
        if self.state != "running":
            return {"error": f"session {self.spec.name} is not running"}
        if not 0 < seconds <= 366 * 86400:
            return {"error": "extend by a positive duration"}
        length = self._length() + seconds
        if length > self.spec.max_for + 1:
            now_until = int(time.time() + self.deadline - time.monotonic())
            return {
                "error": f"session {self.spec.name} would last {format_duration(length)};"
                f" this host allows at most {format_duration(self.spec.max_for)} (max-for in"
                f" porterbox.conf); it ends at {clock(now_until)}"
            }
        self.deadline += seconds
        self.warned = {b for b in self.warned if b >= self.deadline - time.monotonic()}
        until = int(time.time() + self.deadline - time.monotonic())
        self.say(f"session {self.spec.name} extended: it ends at {clock(until)}")
        return {"until": until}

    def _extend(self, client: Client, seconds: float) -> None:
        """Extend, then answer once the prompt's file says the new end."""
        reply = self._extended(seconds)
        if "error" in reply:
            self.post("reply", (client, reply))
            return

        def work() -> None:
            self._write_until()
            self.post("reply", (client, reply))

        self.sel.unregister(client.sock)
        threading.Thread(target=work, daemon=True).start()

    def _copy(self, client: Client, request: dict[str, Any]) -> None:
        if self.state != "running":
            self.post("reply", (client, {"error": f"session {self.spec.name} is not running"}))
            return

        def work() -> None:
            try:
                transfer.copy(self.auxverb, request)
                result: dict[str, Any] = {"ok": True}
            except transfer.CopyError as exc:
                result = {"error": str(exc)}
            self.post("reply", (client, result))

        self.sel.unregister(client.sock)
        threading.Thread(target=work, daemon=True).start()

    # -- the end ----------------------------------------------------------------------

    def _end(self, status: int, why: str | None) -> None:
        if self.state == "over":
            return
        self.status = status
        if self.state == "setup" and self.cancelled and self.server is not None:
            self.server.muted = True  # its "got SIGTERM" is not news: the user asked
        if why:
            self.say(why)
        self.state = "over"

    def _teardown(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, lambda *_: None)  # nothing may cut the teardown short
        if self.lifeline is not None:
            os.close(self.lifeline)  # the shell's namespace hangs up
        if self.shell is not None:
            reap.hang_up_tree(self.shell.pid, HANGUP_GRACE)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.shell.wait(timeout=HANGUP_GRACE)
        if self.master is not None:
            with contextlib.suppress(OSError):
                while (data := os.read(self.master, 65536)) and self.terminal is not None:
                    self._send(self.terminal, wire.OUTPUT, data)
            with contextlib.suppress(OSError):
                os.close(self.master)
        if self.server is not None:
            self.server.shut_down(self.say)
        reap.sweep_orphans(set())
        if self.shell is not None:
            self.say("session ended; the testbed is gone and the devices are free")
        if self.terminal is not None:
            self._send(self.terminal, wire.EXITED, json.dumps({"status": self.status}).encode())
        self.listener.close()
        for client in list(self.clients.values()):
            self._drop(client)


def prompt_command(spec: Spec, downtmp: str) -> str:
    """bash's PROMPT_COMMAND: the session, testbed, devices and time left in the prompt."""
    what = " ".join([f"hw:{spec.name}", _safe_word(spec.inner), *spec.devices[:3]])
    until = shlex.quote(f"{downtmp}/{UNTIL_FILE}")
    return (
        f"_hw_until=0; {{ read -r _hw_until < {until}; }} 2>/dev/null;"
        " printf -v _hw_now '%(%s)T' -1;"
        " _hw_left=$(( (_hw_until - _hw_now + 59) / 60 )); [ $_hw_left -ge 0 ] || _hw_left=0;"
        " if [ $_hw_left -ge 60 ];"
        " then printf -v _hw_left '%dh%02dm' $((_hw_left / 60)) $((_hw_left % 60));"
        " else _hw_left=${_hw_left}m; fi;"
        f" debian_chroot='{what}'\" $_hw_left left\""
    )


def shell_script(spec: Spec, downtmp: str, lifeline: int) -> str:
    """``bash -c`` text for the testbed: bash -i first in a PID namespace of its own."""
    term = spec.term if spec.term and spec.term.replace("-", "").replace(".", "").isalnum() else ""
    workdir = shlex.quote(spec.workdir) if spec.workdir else "/"
    watch = (
        f"(read _ <&{lifeline}; kill -HUP 1; sleep {int(HANGUP_GRACE)}; kill -KILL -1)"
        f" >/dev/null 2>&1 </dev/null & exec bash -i {lifeline}<&-"
    )
    return "\n".join(
        [
            f"cd {workdir} 2>/dev/null || cd /",
            f"export TERM={term}" if term else "",
            f"export PROMPT_COMMAND={shlex.quote(prompt_command(spec, downtmp))}",
            f"if {{ true <&{lifeline}; }} 2>/dev/null; then watch={shlex.quote(watch)};"
            f" else watch='exec bash -i'; fi",
            # Its own /proc (ps works); where / is no mount point (a chroot), the mount
            # namespace the testbed made (private already) is kept as it is.
            'for how in "" "--propagation unchanged" --map-current-user; do',
            "  if unshare $how --pid --fork --kill-child --mount-proc true 2>/dev/null; then",
            '    exec unshare $how --pid --fork --kill-child --mount-proc bash -c "$watch"',
            "  fi",
            "done",
            "echo 'autopkgtest-hw: no PID namespace in this testbed: what the shell leaves"
            " behind is killed when the session ends' >&2",
            f"exec bash -i {lifeline}<&-",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``python3 -m autopkgtest_hw.porterbox.daemon SPEC``: ``ready`` on stdout, then serves."""
    args = sys.argv[1:] if argv is None else argv
    spec = Spec(**json.loads(args[0]))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(wire.address(os.getuid(), spec.name))
    except OSError:
        print(f"a session named {spec.name} is already open (autopkgtest-hw attach {spec.name})")
        return Exit.USAGE
    listener.listen(MAX_CLIENTS)
    print("ready", flush=True)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return Session(spec, listener).run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
