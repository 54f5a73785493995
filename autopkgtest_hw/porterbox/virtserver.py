"""autopkgtest-virt-hwgpu as the session's child, spoken to over its protocol."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import IO

from autopkgtest_hw.base.stopping import escalate

#: Seconds the virt server gets to close the testbed and quit.
QUIT_TIMEOUT = 150.0


class VirtServer:
    """The virt server in its own session (no terminal signal reaches it).

    Its messages (stderr) go line by line to ``on_message`` until ``mute``.
    """

    def __init__(self, argv: Sequence[str], on_message: Callable[[str], None]) -> None:
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
        self.on_message = on_message
        self.muted = False
        self.lock = threading.Lock()  # one request at a time
        self.relay = threading.Thread(target=self._relay, args=(self.proc.stderr,), daemon=True)
        self.relay.start()
        self.ready = False  # the banner came: the devices are ours and it reads commands

    def _relay(self, stream: IO[bytes]) -> None:
        for raw in iter(lambda: stream.readline(4096), b""):
            if not self.muted:
                self.on_message(raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def banner(self) -> bool:
        """Wait for the banner (the server waits for the devices first)."""
        self.ready = self.line() == "ok"
        return self.ready

    def line(self) -> str | None:
        raw = self.stdout.readline(65536)
        return raw.decode("utf-8", "replace").rstrip("\n") if raw.endswith(b"\n") else None

    def request(self, command: str) -> str | None:
        with self.lock:
            try:
                self.stdin.write(command.encode() + b"\n")
                self.stdin.flush()
            except (OSError, ValueError):
                return None
            return self.line()

    def shut_down(self, say: Callable[[str], None]) -> None:
        """close, quit, then SIGTERM and SIGKILL: the server is gone afterwards.

        A server still waiting for the devices reads no commands: it gets SIGTERM at once.
        """
        if not self.ready and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        elif self.proc.poll() is None:
            self.request("close")
            self.request("quit")
        escalate(
            self.proc,
            QUIT_TIMEOUT,
            30.0,
            lambda sig: say(f"the virt server did not quit; sending {sig}"),
        )
        self.relay.join(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            self.stdout.close()
        with contextlib.suppress(OSError, ValueError):
            self.stdin.close()
