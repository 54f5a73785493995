"""Copying files into and out of a session's testbed.

Through the testbed's way in (the virt server's ``print-execute-command``,
the way autopkgtest's own copyup/copydown go when the testbed shares no
directory with the host): a file as a byte stream (``cat``), a directory as
a tar stream.  The host side runs as the session's user, who asked for the
copy (the session obeys no one else); what comes out of the testbed is
unpacked without owners or modes from the archive and never through a
symbolic link at the destination.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe

#: Seconds a copy may take.
COPY_TIMEOUT = 3600


class CopyError(HwError):
    """A copy failed; the message says which side and why."""


def copy(auxverb: Sequence[str], request: dict[str, Any]) -> None:
    host, testbed = str(request["host"]), str(request["testbed"])
    if not os.path.isabs(host) or not testbed.startswith("/"):
        raise CopyError("both paths must be absolute")
    if request.get("direction") == "in":
        copy_in(auxverb, host, testbed)
    elif request.get("direction") == "out":
        copy_out(auxverb, testbed, host)
    else:
        raise CopyError("direction must be in or out")


def _run(argv: Sequence[str], *, stdin: Any = None, stdout: Any = None) -> str:
    try:
        proc = subprocess.run(
            list(argv),
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=COPY_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CopyError(f"cannot copy: {safe(exc)}") from None
    if proc.returncode != 0:
        return safe(
            proc.stderr.decode("utf-8", "replace").strip()[-500:] or f"exit {proc.returncode}"
        )
    return ""


def copy_in(auxverb: Sequence[str], host: str, testbed: str) -> None:
    if testbed.endswith("/"):
        testbed += os.path.basename(host.rstrip("/"))
    if os.path.isdir(host):
        tar = subprocess.Popen(
            ["tar", "-C", host, "-cf", "-", "."], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        unpack = 'mkdir -p "$1" && tar --no-same-owner -C "$1" -xf -'
        why = _run([*auxverb, "sh", "-c", unpack, "sh", testbed], stdin=tar.stdout)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 and not why:
            why = f"cannot read {safe(host)}"
    else:
        try:
            source = open(host, "rb")  # noqa: SIM115 - handed to the copy, closed below
        except OSError as exc:
            raise CopyError(f"cannot read {safe(host)}: {exc.strerror}") from None
        with source:
            why = _run([*auxverb, "sh", "-c", 'cat > "$1"', "sh", testbed], stdin=source)
    if why:
        raise CopyError(f"cannot copy {safe(host)} to the testbed's {safe(testbed)}: {why}")


def copy_out(auxverb: Sequence[str], testbed: str, host: str) -> None:
    if host.endswith("/") or os.path.isdir(host):
        host = os.path.join(host, os.path.basename(testbed.rstrip("/")) or "root")
    is_dir = not _run([*auxverb, "test", "-d", testbed])
    if is_dir:
        with contextlib.suppress(FileExistsError):
            os.mkdir(host, 0o755)
        if os.path.islink(host) or not os.path.isdir(host):
            raise CopyError(f"{safe(host)} exists and is not a directory")
        pack = subprocess.Popen(
            [*auxverb, "tar", "-C", testbed, "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        why = _run(
            ["tar", "--no-same-owner", "--no-same-permissions", "-C", host, "-xf", "-"],
            stdin=pack.stdout,
        )
        assert pack.stdout is not None and pack.stderr is not None
        pack.stdout.close()
        if pack.wait() != 0:
            why = why or safe(pack.stderr.read(500).decode("utf-8", "replace").strip())
        pack.stderr.close()
    else:
        try:
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise CopyError(f"cannot write {safe(host)}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as target:
            why = _run([*auxverb, "cat", "--", testbed], stdout=target)
        if why:
            with contextlib.suppress(OSError):
                os.unlink(host)
    if why:
        raise CopyError(f"cannot copy the testbed's {safe(testbed)} to {safe(host)}: {why}")
