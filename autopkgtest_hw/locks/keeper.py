"""The lock keeper: the device locks live until nothing that can touch the device is left.

An flock is released when the last descriptor of its open file description
closes.  The virt server therefore hands its lock descriptors to:

* the inner server (inherited), which holds them while it runs;
* every command autopkgtest runs in the testbed: the reply to
  ``print-execute-command`` is prefixed with ``python3 -S holdlocks.py
  SOCKET``, which receives the descriptors from the keeper over a Unix
  socket (``SCM_RIGHTS``: the very same open file descriptions, so the very
  same locks) and execs the real command with them
  inheritable.  A test process, and any daemon it leaves behind, holds the
  device as long as it lives, even when the virt server was killed.  A
  command whose keeper is gone is not run at all (exit 255): its device is no
  longer locked for it;
* this keeper, a process of its own session (a signal to the virt server's
  process group does not reach it), which serves that socket, and once the
  virt server is gone -- whatever way it ended, SIGKILL included -- waits for
  the inner server to exit and runs the backend's cleanup steps (``Backend.leftovers``:
  the podman container labelled for this run, the unshare testbed's unpacked
  root file system) before it lets go of its descriptors.

The keeper hands the descriptors only to the virt server's own client: a
process that descends from the virt server's parent (autopkgtest, sbuild,
a porterbox session) as it was when the keeper started (its pid and start
time, so a reused pid is not taken for it).  Another process of the same
user, outside that tree, gets nothing.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.locks import holdlocks

#: What the keeper runs after the virt server is gone: the backend's cleanup steps.
Leftovers = list[dict[str, Any]]
#: Bounds on the cleanup: steps, and seconds a step may take.
MAX_STEPS = 16
STEP_TIMEOUT = 600

#: How long the keeper waits for the inner server to clean up after the virt server died.
INNER_GRACE = 120.0
#: The longest path a Unix socket address holds (``sun_path`` less its NUL).
MAX_SOCKET_PATH = 107
#: How long the virt server waits for the keeper to listen.
START_TIMEOUT = 30.0
#: The keeper's own messages (a failed start's reason), in its directory.
LOG_NAME = "keeper.log"
#: Where this package is imported from: the keeper imports the same one, whichever
#: directory the virt server was started from (a checkout's launcher sets sys.path).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The keeper's program: isolated (-I: no current directory, no PYTHON* variables on
#: its path, which root must not follow), with this package's root first.
_KEEPER_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]);"
    " from autopkgtest_hw.locks.keeper import main; sys.exit(main(sys.argv[2:]))"
)


class KeeperError(HwError):
    """The keeper could not start: the testbed would hold no locks, so none is set up."""


class Keeper:
    """The keeper process of one virt server run, seen from the virt server."""

    def __init__(self, fds: Sequence[int], leftovers: Leftovers) -> None:
        self.dir = tempfile.mkdtemp(prefix="autopkgtest-hw-keeper.")
        self.socket = os.path.join(self.dir, "locks.sock")
        if len(os.fsencode(self.socket)) > MAX_SOCKET_PATH:
            os.rmdir(self.dir)
            raise KeeperError(
                f"cannot start the lock keeper: its socket {safe(self.socket, 300)} would be"
                f" {len(os.fsencode(self.socket))} bytes long, more than the {MAX_SOCKET_PATH} a"
                " Unix socket address holds (set TMPDIR to a shorter directory, such as /tmp)"
            )
        read_end, self._pipe = os.pipe()
        pid_r, pid_w = os.pipe()
        client = os.getppid()  # autopkgtest, sbuild or a porterbox session
        spec = json.dumps(
            {
                "socket": self.socket,
                "fds": list(fds),
                "leftovers": leftovers,
                "client": [client, start_time(client)],
            }
        )
        argv = [sys.executable, "-I", "-c", _KEEPER_CODE, _PACKAGE_ROOT, "--keep", str(read_end)]
        argv.append(spec)
        log_path = os.path.join(self.dir, LOG_NAME)
        child = os.fork()
        if child == 0:  # pragma: no cover - the keeper's side, up to exec
            try:
                os.setsid()  # no signal for the virt server's process group reaches it
                if os.fork() != 0:
                    os._exit(0)  # the keeper is nobody's child: reparented, not waited for
                os.write(pid_w, str(os.getpid()).encode())
                null = os.open(os.devnull, os.O_RDWR)
                for std in (0, 1):  # never hold autopkgtest's pipes open
                    os.dup2(null, std)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                os.dup2(os.open(log_path, flags, 0o600), 2)
                for fd in (read_end, *fds):
                    os.set_inheritable(fd, True)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        os.waitpid(child, 0)
        os.close(read_end)
        os.close(pid_w)
        pid = os.read(pid_r, 32)
        os.close(pid_r)
        self.pid = int(pid) if pid.isdigit() else 0
        self._pidfd: int | None = None
        with contextlib.suppress(OSError, ValueError):
            self._pidfd = os.pidfd_open(self.pid)
        # Wait until it listens: the first command of the testbed must find it.
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.socket) and time.monotonic() < deadline:
            if self._pidfd is not None and select.select([self._pidfd], [], [], 0)[0]:
                break  # it died
            time.sleep(0.01)
        if not os.path.exists(self.socket):
            self._failed_start()

    def _failed_start(self) -> None:
        """The keeper is not listening: say why (its last words), leave nothing behind."""
        why = ""
        with contextlib.suppress(OSError), open(os.path.join(self.dir, LOG_NAME), "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = f.read(4096).decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else ""
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            select.select([self._pidfd], [], [], 10)
            os.close(self._pidfd)
            self._pidfd = None
        with contextlib.suppress(OSError):
            os.close(self._pipe)
        shutil.rmtree(self.dir, ignore_errors=True)
        if not why:
            why = f"it did not listen within {START_TIMEOUT:.0f} s"
        raise KeeperError(
            f"cannot start the lock keeper ({sys.executable} {__name__}): {safe(why, 500)}"
            " (the testbed would hold no device locks; run autopkgtest-virt-hwgpu with -d,"
            " and check that this Python can import autopkgtest_hw)"
        )

    def prefix(self) -> list[str]:
        """What goes before every command autopkgtest runs in the testbed."""
        return [sys.executable, "-S", holdlocks.__file__, self.socket]

    def inner_started(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            os.write(self._pipe, f"inner {pid}\n".encode())

    def finish(self) -> None:
        """The virt server is done: the keeper checks for leftovers and lets go of the locks.

        Returns once the keeper has exited, so the locks are free (unless a
        process of the testbed still holds them) when the virt server exits.
        """
        with contextlib.suppress(OSError):
            os.write(self._pipe, b"cleanup\n")
        with contextlib.suppress(OSError):
            os.close(self._pipe)
        if self._pidfd is not None:
            select.select([self._pidfd], [], [], INNER_GRACE + 60)
            os.close(self._pidfd)
            self._pidfd = None


# -- the keeper process -------------------------------------------------------


def _keep(pipe: int, spec: dict[str, Any]) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the virt server's end decides
    fds: list[int] = spec["fds"]
    path: str = spec["socket"]
    client = _client_of(spec)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        server.bind(path)
    finally:
        os.umask(old)
    server.listen(64)
    inner_pid: int | None = None
    pidfd: int | None = None
    buffered = b""
    try:
        while True:
            ready, _, _ = select.select([pipe, server.fileno()], [], [])
            if server.fileno() in ready:
                _serve(server, fds, client)
            if pipe in ready:
                data = os.read(pipe, 4096)
                if not data:
                    break
                buffered += data
                *lines, rest = buffered.split(b"\n")
                buffered = rest
                for line in lines:
                    word, _, arg = line.decode("ascii", "replace").partition(" ")
                    if word == "inner" and arg.isdigit():
                        inner_pid = int(arg)
                        with contextlib.suppress(OSError):
                            pidfd = os.pidfd_open(inner_pid)
        # The virt server ended (told us, or died): nothing new may start in the
        # testbed through us; wait for the inner server's own cleanup, then check.
        _wait_inner(inner_pid, pidfd, server, fds, client)
        cleanup(spec.get("leftovers") or [])
    finally:
        server.close()
        for name in (path, os.path.join(os.path.dirname(path), LOG_NAME)):
            with contextlib.suppress(OSError):
                os.unlink(name)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))
    return 0


#: How many parents up the keeper looks for the client (a deeper tree is not ours).
MAX_DEPTH = 256


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read(4096).rsplit(")", 1)[-1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return int(f.read(4096).rsplit(")", 1)[-1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _client_of(spec: dict[str, Any]) -> tuple[int, int] | None:
    client = spec.get("client")
    if isinstance(client, list) and len(client) == 2 and all(isinstance(x, int) for x in client):
        return client[0], client[1]
    return None


def descends_from(pid: int, client: tuple[int, int]) -> bool:
    """Whether ``pid`` is the client (as it was when the keeper started) or a descendant."""
    ancestor, started = client
    if ancestor <= 1 or start_time(ancestor) != started:
        return False  # the client is gone (its pid may belong to another process now)
    for _ in range(MAX_DEPTH):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        pid = _parent(pid)
    return False


def _serve(server: socket.socket, fds: list[int], client: tuple[int, int] | None) -> None:
    """Hand the lock descriptors to a command of ours (same user or root, the client's tree)."""
    try:
        conn, _ = server.accept()
    except OSError:
        return
    with conn:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid, uid = array.array("i", creds)[:2]
        if uid not in (0, os.geteuid()):
            return
        if client is not None and not descends_from(pid, client):
            with contextlib.suppress(OSError):
                conn.sendall(holdlocks.NOT_YOURS)
            return
        with contextlib.suppress(OSError):
            socket.send_fds(conn, [b"locks"], fds)


def _wait_inner(
    pid: int | None,
    pidfd: int | None,
    server: socket.socket,
    fds: list[int],
    client: tuple[int, int] | None,
) -> None:
    """Wait for the inner server to finish its own cleanup (it got SIGTERM from the kernel)."""
    if pid is None or pidfd is None:
        return
    deadline = time.monotonic() + INNER_GRACE
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], 10)
            break
        ready, _, _ = select.select([pidfd, server.fileno()], [], [], left)
        if server.fileno() in ready:
            _serve(server, fds, client)  # autopkgtest may still be tearing down
        if pidfd in ready:
            break
    os.close(pidfd)


def cleanup(leftovers: Leftovers) -> list[str]:
    """Run the backend's cleanup steps (``Backend.leftovers``); returns what was removed.

    Each step is ``{"argv": [...], "what": "...", "if_exists": PATH}``: run (unless
    ``if_exists`` names a path that is gone), its failure ignored, its ``what``
    reported when it succeeded.  The keeper knows no kind of testbed itself.
    """
    removed: list[str] = []
    for step in leftovers[:MAX_STEPS]:
        argv = [str(w) for w in step.get("argv") or ()]
        guard = step.get("if_exists")
        if not argv or (guard and not os.path.lexists(guard)):
            continue
        try:
            done = subprocess.run(argv, capture_output=True, timeout=STEP_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and step.get("what") and str(step["what"]) not in removed:
            removed.append(str(step["what"]))
    return removed


# -- the command prefix ---------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "--keep":
        return _keep(int(args[1]), json.loads(args[2]))
    print("usage: python3 -m autopkgtest_hw.locks.keeper --keep PIPE-FD SPEC", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
