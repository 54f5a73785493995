"""Give a porterbox session of yours more time, within the site's maximum.

  autopkgtest-hw extend NAME --for DURATION

The session then ends DURATION later than it would have; its warnings come
again before the new end.  The whole session may not last longer than the
site's max-for (/etc/autopkgtest-hw/porterbox.conf): a longer extension is
refused, saying how long the session may last.  Exit status: 0; 1 when there
is no such session of yours; 2 for bad usage; 3 when the extension is
refused.
"""

from __future__ import annotations

import argparse
import os

from autopkgtest_hw.base import log
from autopkgtest_hw.base.duration import parse_duration
from autopkgtest_hw.base.errors import Exit, UsageError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.locks.holders import clock
from autopkgtest_hw.porterbox import client, wire

HELP = "give a porterbox session of yours more time (within the site's max-for)"
#: A session that cannot be reached or refuses: exit 1.
ERROR_EXIT = Exit.FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", metavar="NAME", help="the session (autopkgtest-hw status)")
    parser.add_argument(
        "--for", dest="extra", metavar="DURATION", required=True, help="how much more: 30m, 1h"
    )


def run(args: argparse.Namespace) -> int:
    try:
        seconds = parse_duration(args.extra)
    except ValueError as exc:
        error = UsageError(f"--for: {exc}")
        error.exit_status = Exit.USAGE
        raise error from None
    try:
        with wire.connect(os.getuid(), wire.check_name(args.name)) as sock:
            reply = client.request(sock, wire.EXTEND, {"seconds": seconds})
    except OSError as exc:
        raise wire.SessionError(f"session {args.name}: {exc}") from None
    if "error" in reply:
        log.error(f"refused: {safe(reply['error'])}")
        return Exit.REFUSED
    print(f"session {args.name} ends at {clock(int(reply.get('until', 0)))}")
    return Exit.OK
