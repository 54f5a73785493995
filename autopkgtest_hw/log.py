"""Messages on stderr, in the style of autopkgtest's own tools."""

from __future__ import annotations

import contextlib
import sys

_state = {"prog": "autopkgtest-hw", "debug": False}


def setup(prog: str, debug: bool = False) -> None:
    _state["prog"] = prog
    _state["debug"] = debug


def debugging() -> bool:
    return bool(_state["debug"])


def _emit(level: str, message: str) -> None:
    prefix = f"{_state['prog']}: " + (f"{level}: " if level else "")
    with contextlib.suppress(BrokenPipeError, ValueError):  # stderr closed: nothing to tell
        print(prefix + message, file=sys.stderr, flush=True)


def debug(message: str) -> None:
    if _state["debug"]:
        _emit("debug", message)


def info(message: str) -> None:
    _emit("", message)


def warning(message: str) -> None:
    _emit("warning", message)


def error(message: str) -> None:
    _emit("error", message)
