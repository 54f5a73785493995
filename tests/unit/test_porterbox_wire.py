"""Session sockets: named per user, listed for status, a squatter's socket refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from autopkgtest_hw.porterbox import wire


def test_frames_are_bounded_and_split() -> None:
    a, b = socket.socketpair()
    with a, b:
        wire.send(a, wire.OUTPUT, b"x" * (wire.MAX_FRAME + 10))
        reader = wire.Reader()
        got = b""
        while len(got) < wire.MAX_FRAME + 10:
            for kind, payload in reader.feed(b.recv(1 << 20)):
                assert kind == wire.OUTPUT
                got += payload
        assert got == b"x" * (wire.MAX_FRAME + 10)
    with pytest.raises(wire.SessionError, match="longer than allowed"):
        list(wire.Reader().feed(b"O\xff\xff\xff\xff"))


def test_a_session_is_listed_and_reached_by_its_user() -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(wire.address(os.getuid(), name))
        listener.listen(1)
        assert (os.getuid(), name) in wire.listed()
        with wire.connect(os.getuid(), name):
            pass
    with pytest.raises(wire.SessionError, match="no session"):
        wire.connect(os.getuid(), name, timeout=1)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a socket of another user)")
def test_a_socket_another_user_planted_at_a_session_name_is_refused() -> None:
    name = f"sq-{uuid.uuid4().hex[:8]}"
    squat = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(chr(0) + sys.argv[1]);"
        " s.listen(1); print('ready', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [
            *("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"),
            *(sys.executable, "-c", squat, wire.address(os.getuid(), name)[1:]),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(wire.SessionError, match="is not its user's"):
            wire.connect(os.getuid(), name, timeout=5)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
        proc.wait(timeout=30)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 41, "-x", "a b", "é"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(wire.SessionError, match="bad session name"):
        wire.check_name(bad)
