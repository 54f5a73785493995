"""A real unprivileged local user for the attacks on the lock directory (root only)."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def run(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run Python ``code`` as this user; its output and status come back."""
        return subprocess.run(
            ["/usr/bin/python3", "-c", code, *args],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={"PYTHONPATH": REPO, "PATH": "/usr/bin:/bin"},
        )

    def start(self, code: str, *args: str) -> subprocess.Popen[str]:
        """Start Python ``code`` as this user; it should print one line when it is ready."""
        return subprocess.Popen(
            ["/usr/bin/python3", "-c", code, *args],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
            env={"PYTHONPATH": REPO, "PATH": "/usr/bin:/bin"},
        )


@contextmanager
def local_user() -> Iterator[User]:
    """A new system user (no home, no login) that is removed again afterwards."""
    name = f"hwatk{secrets.token_hex(3)}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    try:
        pw = pwd.getpwnam(name)
        yield User(name, pw.pw_uid, pw.pw_gid)
    finally:
        subprocess.run(["userdel", name], check=False)


def is_root() -> bool:
    return os.geteuid() == 0
