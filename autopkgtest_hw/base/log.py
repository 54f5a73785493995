"""Messages on stderr, in the style of autopkgtest's own tools.

The commands write ``prog: level: message`` (``prog: message`` for
information) to stderr, as autopkgtest does; they name themselves and turn
debug messages on with :func:`setup`.  A program that embeds the library (a
long-running worker) configures :mod:`logging` itself and calls
:func:`embed`: the messages then go to the ``autopkgtest_hw`` logger and its
handlers, at the levels it chose.

:mod:`logging` is imported only by :func:`embed`: the commands write the
lines themselves, and the virt server, whose start-up autopkgtest waits for,
does not pay for the import (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

from autopkgtest_hw.base.text import escape

if TYPE_CHECKING:
    import logging

# logging's level numbers, so that an embedding program sees the usual ones.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_LEVEL_WORDS = {DEBUG: "debug", WARNING: "warning", ERROR: "error"}

_prog = "autopkgtest-hw"
_threshold = INFO
_logger: logging.Logger | None = None  # set by embed()


def format_line(prog: str, level: int, message: str) -> str:
    word = _LEVEL_WORDS.get(level)
    # The net under every message: a string from a file or a device that
    # slipped in raw cannot forge a line or drive the terminal.
    return f"{prog}: " + (f"{word}: " if word else "") + escape(message, keep_newlines=True)


def setup(prog: str, debug: bool = False) -> None:
    """Messages go to stderr as ``prog: level: message``; debug ones only with ``debug``."""
    global _prog, _threshold, _logger
    _prog = prog
    _threshold = DEBUG if debug else INFO
    _logger = None


def embed() -> None:
    """Leave the messages to the embedding program's own :mod:`logging` configuration."""
    global _logger
    import logging

    _logger = logging.getLogger("autopkgtest_hw")


def debugging() -> bool:
    if _logger is not None:
        return _logger.isEnabledFor(DEBUG)
    return _threshold <= DEBUG


def _emit(level: int, message: str) -> None:
    if _logger is not None:
        _logger.log(level, message)
        return
    if level < _threshold:
        return
    # Whatever sys.stderr is now; a closed stderr is nothing to tell.
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(format_line(_prog, level, message), file=sys.stderr, flush=True)


def debug(message: str) -> None:
    _emit(DEBUG, message)


def info(message: str) -> None:
    _emit(INFO, message)


def warning(message: str) -> None:
    _emit(WARNING, message)


def error(message: str) -> None:
    _emit(ERROR, message)
