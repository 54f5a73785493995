"""Opening a session and finding one: the session process started, a connection to it.

The session itself is ``daemon``; ``client`` relays a terminal to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

from autopkgtest_hw.base.text import safe
from autopkgtest_hw.porterbox import wire
from autopkgtest_hw.porterbox.daemon import Spec


def free_name(inner: str) -> str:
    """The first ``INNER-N`` that none of this user's sessions has."""
    taken = {name for uid, name in wire.listed() if uid == os.getuid()}
    base = "".join(
        c for c in os.path.basename(inner).removeprefix("autopkgtest-virt-") if c.isalnum()
    )
    base = base[:30] or "session"
    return next(f"{base}-{n}" for n in range(1, 10000) if f"{base}-{n}" not in taken)


def launch(spec: Spec) -> socket.socket:
    """Start the session process; a connection to it once it listens."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autopkgtest_hw.porterbox.daemon",
            json.dumps(dataclasses.asdict(spec)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline(1000).decode("utf-8", "replace").strip()
    proc.stdout.close()
    if line != "ready":
        proc.wait()
        raise wire.SessionError(safe(line) or "the session process did not start")
    return wire.connect(os.getuid(), spec.name)


#: At most this many sessions are asked, within this many seconds in all (a user may
#: make many listening sockets that never answer).
MAX_ASKED = 200
ASK_BUDGET = 5.0


def sessions(timeout: float = 1.0) -> list[dict[str, object]]:
    """What every session on this host says about itself (status)."""
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + ASK_BUDGET
    for uid, name in wire.listed()[:MAX_ASKED]:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with wire.connect(uid, name, min(timeout, left)) as sock:
                wire.send(sock, wire.INFO)
                kind, payload = wire.receive(sock)
        except (OSError, wire.SessionError):
            continue
        if kind == wire.REPLY:
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("uid") == uid and data.get("name") == name:
                found.append(data)
    return found
