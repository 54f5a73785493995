"""Attach this terminal to a porterbox session of yours (or end it).

  autopkgtest-hw attach NAME [--end]

The session's shell comes back as it was; Ctrl-] detaches again (the session
goes on until its time is up).  A terminal attached elsewhere is detached.
With --end the session ends now: its shell and everything it started are
killed, the testbed is torn down and the devices are free.  'autopkgtest-hw
status' lists the sessions.  Exit status: the session's when it ends while
attached; 0 after detaching; 1 when there is no such session of yours.
"""

from __future__ import annotations

import argparse
import os

from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.porterbox import client, wire

HELP = "attach this terminal to a porterbox session of yours (Ctrl-] detaches), or end it"
#: A session that cannot be reached or refuses: exit 1.
ERROR_EXIT = Exit.FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", metavar="NAME", help="the session (autopkgtest-hw status)")
    parser.add_argument("--end", action="store_true", help="end the session now")


def run(args: argparse.Namespace) -> int:
    sock = wire.connect(os.getuid(), wire.check_name(args.name))
    with sock:
        if args.end:
            try:
                wire.send(sock, wire.END, b'{"status": 0, "why": "ended with attach --end"}')
                while wire.receive(sock)[0] != wire.EXITED:
                    pass
            except (OSError, wire.SessionError):
                pass  # it is gone: ended
            return Exit.OK
        return client.attach(sock, args.name)
