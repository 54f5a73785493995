"""What every detector shares: its result type and the guard that keeps it from raising."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TypeVar

from .. import log
from ..inventory import DetectorReport

OK = "ok"
UNAVAILABLE = "unavailable"
ERROR = "error"

T = TypeVar("T")


class Unavailable(Exception):
    """Raised inside a detector when its source is absent: the reason is the message."""


def guarded(
    name: str, detector: Callable[[], tuple[T, DetectorReport]], empty: T
) -> tuple[T, DetectorReport]:
    """Run ``detector``; whatever goes wrong becomes a report, never an exception.

    ``Unavailable`` means the source is missing (no library, no driver): status
    ``unavailable``.  Anything else is a bug or a machine we did not foresee:
    status ``error`` with a one-line detail, the traceback only with --debug.
    """
    try:
        return detector()
    except Unavailable as exc:
        return empty, DetectorReport(name, UNAVAILABLE, str(exc))
    except Exception as exc:
        if log.debugging():
            log.debug(f"detector {name} failed:\n{traceback.format_exc().rstrip()}")
        return empty, DetectorReport(name, ERROR, one_line(exc))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
