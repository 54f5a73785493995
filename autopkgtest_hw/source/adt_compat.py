"""The one place that touches autopkgtest's internals: the ``needs-hw:`` check.

autopkgtest decides per test, while it parses ``debian/tests/control`` and
before it installs any of the test's dependencies, whether the testbed can
run the test: ``testdesc.Test.check_testbed_compat(caps, ignore_restrictions)``
raises ``testdesc.Unsupported`` and the test is reported ``SKIP <reason>``.
We wrap that method: every ``needs-hw:<spec>`` restriction of the test (unless
ignored with --ignore-restrictions) is parsed and matched against the
inventory the testbed advertises in its capabilities (autopkgtest-virt-hwgpu
puts it there); then the original check runs with those tokens treated as
known.  Nothing else of autopkgtest is changed.

Every attribute used is checked before it is used; a version that moved one
gets an AdtCompatError naming it, never a traceback.  Tested with autopkgtest
5.28 (bookworm) and 6.0 (sid).
"""

from __future__ import annotations

import ast
import functools
import gzip
import importlib
import inspect
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import escape
from autopkgtest_hw.spec.inventory import Inventory, InventoryError
from autopkgtest_hw.spec.language import NEEDS_HW_PREFIX, SpecError, parse
from autopkgtest_hw.spec.matcher import match

#: Selects the autopkgtest program to run (e.g. an unpacked newer version).
ENV_AUTOPKGTEST = "AUTOPKGTEST_HW_AUTOPKGTEST"
SUPPORTED = "5.28 to 6.0"
SYSTEM_LIB = Path("/usr/share/autopkgtest/lib")
_NO_INVENTORY = "testbed advertises no hardware inventory (run it through autopkgtest-virt-hwgpu)"
_CHANGELOG_RE = re.compile(r"^autopkgtest \(([^)]+)\)")


class AdtCompatError(HwError):
    """This autopkgtest cannot be used: missing, or its internals moved."""


@dataclass(frozen=True)
class Autopkgtest:
    """One autopkgtest installation: its program, the lib dir it imports, its version."""

    program: Path
    lib_dir: Path
    version: str

    def describe(self) -> str:
        return f"autopkgtest {self.version} ({self.program})"


def locate(program: str | None = None) -> Autopkgtest:
    """The autopkgtest to run: ``program``, else $AUTOPKGTEST_HW_AUTOPKGTEST, else PATH's."""
    chosen = program or os.environ.get(ENV_AUTOPKGTEST) or shutil.which("autopkgtest")
    if not chosen:
        raise AdtCompatError(
            f"autopkgtest not found on PATH (install it, or set {ENV_AUTOPKGTEST} "
            "to the path of an autopkgtest program)"
        )
    if "/" not in chosen:  # a bare name, as sbuild's $autopkgtest is: found like execvp finds it
        chosen = shutil.which(chosen) or chosen
    path = Path(chosen)
    if not path.is_file():
        raise AdtCompatError(f"autopkgtest program {chosen} does not exist")
    # Where the program itself looks for its modules (the same test as its own):
    # a git checkout has virt/ and lib/ beside runner/, an installed one uses /usr/share.
    base = Path(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    lib_dir = base / "lib" if (base / "virt").is_dir() else SYSTEM_LIB
    if not (lib_dir / "testdesc.py").is_file():
        raise AdtCompatError(f"{chosen}: no testdesc.py in its library directory {lib_dir}")
    return Autopkgtest(path, lib_dir, _version(base, lib_dir))


def _version(base: Path, lib_dir: Path) -> str:
    """The version from a checkout's debian/changelog or the installed changelog.gz."""
    candidates = [base / "debian" / "changelog", lib_dir.parent.parent / "doc/autopkgtest"]
    for candidate in candidates:
        for path in (candidate, candidate / "changelog.gz", candidate / "changelog"):
            if not path.is_file():
                continue
            try:
                opener: Any = gzip.open if path.suffix == ".gz" else open
                with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                    found = _CHANGELOG_RE.match(f.readline())
            except OSError:
                continue
            if found:
                return found.group(1)
    return "(unknown version)"


#: testdesc.py is read up to this many bytes for its restriction list (5.28's: 40 KiB).
_TESTDESC_MAX = 1 << 20


_KNOWN_RE = re.compile(rb"^known_restrictions\s*=\s*frozenset\((\{[^}]*\})\)", re.MULTILINE)


@functools.cache
def installed_restrictions() -> frozenset[str] | None:
    """The restrictions the autopkgtest that would run knows (its ``testdesc.known_restrictions``).

    Read from its source without importing it (plan and lint stay cheap); None when
    there is no autopkgtest or its list is not a literal set: callers keep their copy.
    """
    try:
        at = locate()
        with open(at.lib_dir / "testdesc.py", "rb") as f:
            found = _KNOWN_RE.search(f.read(_TESTDESC_MAX))
        words = ast.literal_eval(found.group(1).decode("utf-8")) if found else None
    except (HwError, OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    if isinstance(words, set) and words and all(isinstance(w, str) for w in words):
        return frozenset(words)
    return None


def load(at: Autopkgtest) -> tuple[ModuleType, ModuleType]:
    """Import ``testdesc`` and ``adtlog`` from ``at``'s lib dir, as its program will."""
    lib = str(at.lib_dir)
    if lib not in sys.path:
        sys.path.insert(0, lib)
    modules = []
    for name in ("adtlog", "testdesc"):
        loaded = sys.modules.get(name)
        if loaded is not None:
            where = Path(getattr(loaded, "__file__", "") or "").parent
            if where != at.lib_dir:
                raise AdtCompatError(f"{name} is already imported from {where}, not {lib}")
            modules.append(loaded)
            continue
        try:
            modules.append(importlib.import_module(name))
        except Exception as exc:  # any failure to import is the installation's
            raise AdtCompatError(f"{at.describe()}: cannot import {name}: {exc}") from None
    return modules[0], modules[1]


def install(at: Autopkgtest) -> None:
    """Teach the autopkgtest ``at`` the needs-hw: restriction (in this process)."""
    adtlog, testdesc = load(at)
    moved = _moved(at)
    test_cls = getattr(testdesc, "Test", None)
    original = getattr(test_cls, "check_testbed_compat", None)
    if test_cls is None or not callable(original):
        raise moved("testdesc.Test.check_testbed_compat")
    if getattr(original, "_autopkgtest_hw", False):
        return  # already installed
    try:
        params = list(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        params = []
    if params[:3] != ["self", "caps", "ignore_restrictions"]:
        raise moved("testdesc.Test.check_testbed_compat(self, caps, ignore_restrictions)")
    unsupported = getattr(testdesc, "Unsupported", None)
    if not (isinstance(unsupported, type) and issubclass(unsupported, Exception)):
        raise moved("testdesc.Unsupported")
    if not callable(getattr(testdesc, "parse_debian_source", None)):
        raise moved("testdesc.parse_debian_source")
    try:  # the instance attributes the check reads
        probe = test_cls("probe", "debian/tests/probe", None, {"needs-hw:cpu"}, set(), [], [])
        if probe.name != "probe" or "needs-hw:cpu" not in probe.restrictions:
            raise AttributeError("name/restrictions")
    except Exception:
        raise moved("testdesc.Test(name, ..., restrictions, ...)") from None
    info = getattr(adtlog, "info", None)
    log_info: Callable[[str], None] = info if callable(info) else (lambda _m: None)
    test_cls.check_testbed_compat = _wrap(original, unsupported, log_info)


def _moved(at: Autopkgtest) -> Callable[[str], AdtCompatError]:
    def error(what: str) -> AdtCompatError:
        return AdtCompatError(
            f"autopkgtest {at.version} moved {what}; this autopkgtest-hw supports {SUPPORTED} "
            f"(autopkgtest used: {at.program}, library {at.lib_dir})"
        )

    return error


def _wrap(
    original: Callable[..., None],
    unsupported: type[Exception],
    log_info: Callable[[str], None],
) -> Callable[..., None]:
    told: set[tuple[str, str]] = set()  # autopkgtest parses the control file twice

    @functools.wraps(original)
    def check_testbed_compat(
        self: Any, caps: list[str], ignore_restrictions: Iterable[str] | None = None
    ) -> None:
        ignored = set(ignore_restrictions or ())
        tokens = sorted(
            r for r in self.restrictions if r.startswith(NEEDS_HW_PREFIX) and r not in ignored
        )
        if tokens:
            reason, satisfied = hardware_verdict(tokens, caps)
            if reason is not None:
                # The reason lands in out/summary after the test's name: one line, no
                # raw character from the testbed's devices or the control file.
                raise unsupported(self.name, escape(reason))
            for message in (escape(m) for m in satisfied):
                if (self.name, message) not in told:
                    told.add((self.name, message))
                    log_info(f"test {self.name}: {message}")
        original(self, caps, sorted(ignored | set(tokens)))

    check_testbed_compat._autopkgtest_hw = True  # type: ignore[attr-defined]
    check_testbed_compat._hw_told = told  # type: ignore[attr-defined]  # skipfree clears it
    return check_testbed_compat


def hardware_verdict(tokens: list[str], caps: Iterable[str]) -> tuple[str | None, list[str]]:
    """(why the test cannot run or None, the messages of the satisfied specs).

    An invalid spec is reported before any hardware is looked at: it is a bug
    in the package, not a property of the testbed.
    """
    specs = []
    invalid = []
    for token in tokens:
        try:
            specs.append((token, parse(token)))
        except SpecError as exc:
            invalid.append(str(exc))
    if invalid:
        return "; ".join(invalid), []
    try:
        inventory = Inventory.from_capabilities(caps)
    except InventoryError as exc:
        return f"{', '.join(tokens)}: testbed advertises a malformed inventory: {exc}", []
    if inventory is None:
        return f"{', '.join(tokens)}: {_NO_INVENTORY}", []
    verdicts = [match(spec, inventory, label=token, subject="testbed") for token, spec in specs]
    failed = [v.message for v in verdicts if not v.satisfied]
    if failed:
        return "; ".join(failed), []
    return None, [v.message for v in verdicts]
