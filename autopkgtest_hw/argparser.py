"""The argument parser both commands use: usage errors in autopkgtest's style, exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from . import log
from .errors import Exit


class Parser(argparse.ArgumentParser):
    """``prog: error: message`` after the usage line, and :attr:`Exit.USAGE`."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        log.error(message)
        raise SystemExit(Exit.USAGE)
