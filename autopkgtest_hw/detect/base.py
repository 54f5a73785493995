"""What every detector shares: its result type, the guard that keeps it from raising, the registry.

A detector module decorates its ``detect()`` with :func:`detector`: that
registers it under its name and wraps it in the guard, so a detector is one
function and ``autopkgtest_hw.detect`` runs whatever registered, in order.
"""

from __future__ import annotations

import functools
import importlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from autopkgtest_hw.base import log
from autopkgtest_hw.spec.inventory import DetectorReport, Device

OK = "ok"
UNAVAILABLE = "unavailable"
ERROR = "error"

T = TypeVar("T")


class Unavailable(Exception):
    """Raised inside a detector when its source is absent: the reason is the message."""


@dataclass(frozen=True)
class Inputs:
    """Everything outside this code that a detector's answer depends on.

    The host inventory cache (:mod:`.cache`) keeps an answer until one of these
    changes, so a detector that reads something it does not declare here keeps
    a stale answer: declare every tool, library, variable, file and node.

    ``tools``: programs found on PATH.  ``libraries``: shared libraries (sonames)
    the dynamic loader finds.  ``modules``: Python modules.  ``env``: variables,
    ``NAME*`` for every one with that prefix.  ``paths``: files (their content)
    and directories (their entries, a few levels deep), as glob patterns, or
    ``$VAR`` for the ``:``-separated paths a variable names; a shared library a
    file names (an ICD) counts too.  ``nodes``: device nodes, as glob patterns
    (owner, mode and device number).
    """

    tools: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Detector:
    """A registered detector.

    ``run`` never raises and returns the machine's :class:`~..inventory.Cpu`
    or a list of devices, with the report.  ``trusted`` names the Device
    fields where this detector's word wins when several know the same device.
    ``inputs``: what its answer depends on (the cache's fingerprint).  ``cached``:
    whether its answer is kept in the cache at all (the CPU's is read afresh).
    """

    name: str
    order: int
    run: Callable[[], tuple[object, DetectorReport]]
    trusted: tuple[str, ...] = ()
    inputs: Inputs = Inputs()
    cached: bool = True


_REGISTRY: dict[str, Detector] = {}


def detector(
    name: str,
    *,
    order: int,
    empty: Callable[[], T],
    inputs: Inputs,
    trusted: tuple[str, ...] = (),
    cached: bool = True,
) -> Callable[[Callable[[], tuple[T, DetectorReport]]], Callable[[], tuple[T, DetectorReport]]]:
    """Register the decorated function as detector ``name``, run at ``order`` (lowest first).

    ``inputs`` is required: the cache is only as good as these declarations.

    The function may raise; the registered and returned function never does
    (see :func:`guarded`); ``empty`` makes its result when it fails.
    """

    def register(
        fn: Callable[[], tuple[T, DetectorReport]],
    ) -> Callable[[], tuple[T, DetectorReport]]:
        @functools.wraps(fn)
        def detect() -> tuple[T, DetectorReport]:
            return guarded(name, fn, empty())

        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} registered twice")
        _REGISTRY[name] = Detector(name, order, detect, trusted, inputs, cached)
        return detect

    return register


def optional_module(name: str, why: str) -> Any:
    """Import the library ``name`` that a detector needs; ``Unavailable(why)`` without it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Unavailable(why) from None


def no_devices() -> list[Device]:
    """The result of a device detector that failed."""
    return []


def registered() -> tuple[Detector, ...]:
    """Every registered detector, in the order they run."""
    return tuple(sorted(_REGISTRY.values(), key=lambda d: (d.order, d.name)))


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
