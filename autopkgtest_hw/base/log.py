"""Messages on stderr, in the style of autopkgtest's own tools, through :mod:`logging`.

Everything logs to the ``autopkgtest_hw`` logger.  By default that logger
has one handler writing ``prog: level: message`` (``prog: message`` for
information) to stderr, as autopkgtest does; the commands name themselves and
turn debug messages on with :func:`setup`.  A program that embeds the library
(a long-running worker) configures :mod:`logging` itself and calls
:func:`embed`: the messages then go to its handlers, at the levels it chose.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from autopkgtest_hw.base.text import escape

LOGGER = logging.getLogger("autopkgtest_hw")
_LEVEL_WORDS = {logging.DEBUG: "debug", logging.WARNING: "warning", logging.ERROR: "error"}


class _Formatter(logging.Formatter):
    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        word = _LEVEL_WORDS.get(record.levelno)
        # The net under every message: a string from a file or a device that
        # slipped in raw cannot forge a line or drive the terminal.
        message = escape(record.getMessage(), keep_newlines=True)
        return f"{self.prog}: " + (f"{word}: " if word else "") + message


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now; a closed stderr is nothing to tell."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            print(self.format(record), file=sys.stderr, flush=True)


def setup(prog: str, debug: bool = False) -> None:
    """Messages go to stderr as ``prog: level: message``; debug ones only with ``debug``."""
    handler = next((h for h in LOGGER.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        LOGGER.addHandler(handler)
    handler.setFormatter(_Formatter(prog))
    LOGGER.setLevel(logging.DEBUG if debug else logging.INFO)
    LOGGER.propagate = False


def embed() -> None:
    """Leave the messages to the embedding program's own :mod:`logging` configuration."""
    for h in [h for h in LOGGER.handlers if isinstance(h, _StderrHandler)]:
        LOGGER.removeHandler(h)
    LOGGER.setLevel(logging.NOTSET)
    LOGGER.propagate = True


def debugging() -> bool:
    return LOGGER.isEnabledFor(logging.DEBUG)


def debug(message: str) -> None:
    LOGGER.debug(message)


def info(message: str) -> None:
    LOGGER.info(message)


def warning(message: str) -> None:
    LOGGER.warning(message)


def error(message: str) -> None:
    LOGGER.error(message)


setup("autopkgtest-hw")  # until a command names itself, or a program embeds the library
