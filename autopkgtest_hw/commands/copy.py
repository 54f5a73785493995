"""Copy files into or out of a porterbox session's testbed, as scp does.

  autopkgtest-hw copy HOSTPATH NAME:TESTBEDPATH     (into the testbed)
  autopkgtest-hw copy NAME:TESTBEDPATH HOSTPATH     (out of it)

NAME is one of your sessions (autopkgtest-hw status).  A directory is copied
with its contents; a destination that ends in '/' (or is an existing
directory, on the host) receives the source under its own name.  The copy
goes through the testbed's own way in, the one autopkgtest's copyup and
copydown use; files written on the host are yours.  Exit status: 0; 1 when
the copy failed or there is no such session of yours; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import os

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.porterbox import client, wire

HELP = "copy files into or out of a porterbox session's testbed (NAME:PATH, as scp)"
#: A session that cannot be reached or refuses: exit 1.
ERROR_EXIT = Exit.FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("source", metavar="SOURCE", help="HOSTPATH or NAME:TESTBEDPATH")
    parser.add_argument("target", metavar="TARGET", help="NAME:TESTBEDPATH or HOSTPATH")


def _remote(word: str) -> tuple[str, str] | None:
    name, colon, path = word.partition(":")
    if colon and wire.NAME.fullmatch(name) and path.startswith("/"):
        return name, path
    return None


def run(args: argparse.Namespace) -> int:
    src, dst = _remote(args.source), _remote(args.target)
    if (src is None) == (dst is None):
        log.error("copy needs one NAME:/absolute/path (the session's testbed) and one host path")
        return Exit.USAGE
    if dst is not None:
        name, testbed = dst
        host, direction = args.source, "in"
    else:
        assert src is not None
        name, testbed = src
        host, direction = args.target, "out"
    host = os.path.abspath(host) + ("/" if host.endswith("/") else "")
    try:
        with wire.connect(os.getuid(), name) as sock:
            reply = client.request(
                sock, wire.COPY, {"direction": direction, "host": host, "testbed": testbed}
            )
    except OSError as exc:
        raise wire.SessionError(f"session {name}: {exc}") from None
    if "error" in reply:
        log.error(safe(reply["error"]))
        return Exit.FAILED
    return Exit.OK
