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
  the inner server to exit and removes what it may have left behind (the
  podman container labelled for this run, the unshare testbed's unpacked
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
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from autopkgtest_hw.locks import holdlocks

#: What the keeper does after the virt server is gone (see ``Leftovers``).
Leftovers = dict[str, Any]

#: How long the keeper waits for the inner server to clean up after the virt server died.
INNER_GRACE = 120.0


class Keeper:
    """The keeper process of one virt server run, seen from the virt server."""

    def __init__(self, fds: Sequence[int], leftovers: Leftovers) -> None:
        self.dir = tempfile.mkdtemp(prefix="autopkgtest-hw-keeper.")
        self.socket = os.path.join(self.dir, "locks.sock")
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
        argv = [sys.executable, "-m", "autopkgtest_hw.locks.keeper", "--keep", str(read_end), spec]
        child = os.fork()
        if child == 0:  # pragma: no cover - the keeper's side, up to exec
            try:
                os.setsid()  # no signal for the virt server's process group reaches it
                if os.fork() != 0:
                    os._exit(0)  # the keeper is nobody's child: reparented, not waited for
                os.write(pid_w, str(os.getpid()).encode())
                null = os.open(os.devnull, os.O_RDWR)
                for std in (0, 1, 2):  # never hold autopkgtest's pipes open
                    os.dup2(null, std)
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
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket) and time.monotonic() < deadline:
            if self._pidfd is not None and select.select([self._pidfd], [], [], 0)[0]:
                break  # it died
            time.sleep(0.01)

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
        cleanup(spec.get("leftovers") or {})
    finally:
        server.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
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
    """Remove what a testbed may have left behind; returns what was removed."""
    removed: list[str] = []
    label = leftovers.get("container_label")
    command = leftovers.get("container_command") or "podman"
    if label:
        try:
            out = subprocess.run(
                [command, "ps", "-aq", "--filter", f"label={label}"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            ).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            out = []
        for cid in out:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    [command, "rm", "-f", "-t", "0", cid],
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
                removed.append(f"container {cid}")
    rootfs = leftovers.get("unshare_dir")
    if rootfs and os.path.isdir(rootfs):
        # Files of the unpacked root file system belong to subordinate ids:
        # remove them the way autopkgtest-virt-unshare does.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                ["unshare", "--map-auto", "--map-root-user", "rm", "-rf", rootfs],
                capture_output=True,
                timeout=600,
                check=False,
            )
        if os.path.isdir(rootfs):
            with contextlib.suppress(OSError):
                subprocess.run(["rm", "-rf", rootfs], capture_output=True, timeout=600, check=False)
        removed.append(f"unpacked testbed {rootfs}")
    for extra in leftovers.get("dirs") or ():
        if os.path.isdir(extra):
            subprocess.run(["rm", "-rf", extra], capture_output=True, timeout=600, check=False)
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
