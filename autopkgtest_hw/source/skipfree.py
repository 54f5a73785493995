"""Report a package whose every test is skipped without opening a testbed.

autopkgtest opens the testbed before it reads ``debian/tests/control``; for a
GPU-only package on a machine without the GPU that start-up (a container, a
chroot, apt) is all the run does.  When the caller knows what the testbed
would advertise (``Expected``: the hardware capability words of the devices
that would be passed, and for ``null`` the host's architecture), this module
asks autopkgtest's own code (its option parser, ``testdesc`` with the
``needs-hw:`` wrapper, ``adtlog``) whether any test could run, and if none
can, writes what autopkgtest writes for such a run: the same SKIP lines on
stdout and in the summary, the log, ``testpkg-version`` and
``testinfo.json``, and the same exit code.

It decides only when the verdict cannot depend on the testbed: every test's
line must be the same with the most and the fewest capabilities a testbed
could have (autopkgtest's capabilities, the passed devices or none, the CPU
known or not) and, unless the architecture is certain, no stanza may have an
``Architecture:`` field.  Anything else (a ``.dsc``, a package name from apt,
a tree to build, autodep8, an unreadable control file, a test that could
run) is left to the real run with the testbed: ``try_without_testbed``
returns None.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from autopkgtest_hw.base import log
from autopkgtest_hw.base.text import escape
from autopkgtest_hw.source import adt_compat

#: The log line that says the testbed was not opened (the real run's place for it).
NOT_OPENED = (
    "testbed not opened: every test is skipped whatever the testbed ({why});"
    " autopkgtest-hw run skipped the testbed's start-up"
)
#: A changelog's first line that both autopkgtest readers (built and unbuilt trees) agree on.
_CHANGELOG = re.compile(r"[^ ()]+ \([^ ()]+\) [^\n]*\n?\Z")
#: The architecture of a trial parse where none is known (only tests without one count).
_ANY_ARCH = "amd64"
#: Extra capabilities autopkgtest adds itself (adt_testbed: has_internet).
_AUTOPKGTEST_CAPS = ("has_internet",)


@dataclass(frozen=True)
class Expected:
    """What the testbed would advertise, as far as it is known before it is opened.

    ``most`` and ``least`` are the hardware capability words of the richest
    and the poorest testbed the virt server could open (every device that
    would be passed and the host's CPU; no device and an unknown CPU).
    ``arch`` is the testbed's dpkg architecture where it is certain.
    """

    most: tuple[str, ...]
    least: tuple[str, ...]
    arch: str | None
    why: str


#: Given autopkgtest's virt-server argv: what the testbed would advertise, or why unknown.
Predictor = Callable[[list[str]], "Expected | str"]


@dataclass(frozen=True)
class _Verdict:
    lines: tuple[str, ...]  # autopkgtest's report lines, as it prints them
    runnable: tuple[tuple[str, bool], ...]  # the tests that would run: (name, build-needed)


def try_without_testbed(
    at: adt_compat.Autopkgtest, args: list[str], predictor: Predictor
) -> int | None:
    """autopkgtest's exit code after reporting every test skipped; None: run it for real."""
    adtlog: Any
    adtlog, testdesc = adt_compat.load(at)
    try:
        args_mod = importlib.import_module("autopkgtest_args")
        adt_testbed = importlib.import_module("adt_testbed")
    except Exception as exc:  # the real run will say what is wrong
        log.debug(f"skip without testbed: cannot import autopkgtest's modules: {escape(str(exc))}")
        return None
    saved_timeouts = dict(getattr(adt_testbed, "timeouts", {}) or {})
    saved_verbosity = getattr(adtlog, "verbosity", 1)
    saved_argv = sys.argv
    sys.argv = [str(at.program), *args]
    decided = False
    try:
        plan = _plan(args_mod, testdesc, adtlog, args, predictor)
        if isinstance(plan, str):
            log.debug(f"opening the testbed: {escape(plan)}")
            return None
        decided = True
        try:
            return _report(at, adtlog, plan)
        except OSError as exc:  # autopkgtest exits 20 when it cannot write its output
            where = f" {exc.filename}" if exc.filename else ""
            raise adt_compat.AdtCompatError(
                f"cannot write{where}: {exc.strerror} (choose a writable --output-dir)"
            ) from None
    finally:
        sys.argv = saved_argv
        if not decided:  # the real run parses the options again: undo what parsing changed
            if saved_timeouts:
                adt_testbed.timeouts.clear()
                adt_testbed.timeouts.update(saved_timeouts)
            adtlog.verbosity = saved_verbosity
            adtlog.summary_stream = None


@dataclass
class _Plan:
    opts: Any
    kind: str
    tree: str
    vserver_args: list[str]
    expected: Expected
    build_lines: list[str]  # the report lines of the parse that decides a build (unbuilt trees)
    lines: list[str]  # the report lines of the parse whose tests run
    errorcode: int


def _plan(
    args_mod: ModuleType,
    testdesc: ModuleType,
    adtlog: ModuleType,
    args: list[str],
    predictor: Predictor,
) -> _Plan | str:
    """What the run without testbed reports, or why the testbed must be opened."""
    try:
        with _quiet(mute_log=False):
            opts, actions, vserver_args = args_mod.parse_args(list(args))
    except SystemExit:
        return "autopkgtest refuses the options (it says why)"
    except Exception as exc:
        return f"cannot read the options: {exc}"
    if len(actions) != 1 or actions[0][0] == "binary":
        return "the run has binary packages or more than one source"
    kind, tree, built_binaries = actions[0]
    why = _source_unsure(testdesc, opts, kind, tree, built_binaries)
    if why:
        return why
    universe = _autopkgtest_caps(testdesc)
    if universe is None:
        return "autopkgtest's RESTRICTIONS_REQUIRE_CAPS is not a table of capabilities"
    ignore = list(opts.ignore_restrictions or ())
    only = list(opts.only_tests or ())
    skip = set(opts.skip_tests or ())

    def running(verdict: _Verdict) -> list[str]:  # process_actions: --test-name, --skip-test
        return [n for n, _ in verdict.runnable if (not only or n in only) and n not in skip]

    try:  # cheap first: a test that may run without any hardware needs no host detection
        free = _parse(testdesc, tree, universe, _ANY_ARCH, opts, ignore, None)
    except _Unsure as exc:
        return str(exc)
    finally:
        _forget_told(testdesc)
    if running(free):
        return f"test {running(free)[0]} may run (it needs no hardware)"
    expected = predictor(list(vserver_args))
    if isinstance(expected, str):
        return expected
    control = opts.override_control or os.path.join(tree, "debian", "tests", "control")
    if getattr(opts, "architecture", None):  # 5.43's foreign-architecture testing
        return "--architecture: a foreign architecture's tests are decided in the testbed"
    if expected.arch is None and _has_architecture(testdesc, control):
        return "a test stanza has Architecture: and the testbed's architecture is not known"
    arch = expected.arch or _ANY_ARCH  # unused by the verdict: no stanza names an architecture
    build_lines: list[str] = []
    try:
        if kind == "unbuilt-tree":  # autopkgtest parses once to decide whether to build
            first = _same(testdesc, tree, universe, expected, arch, opts, ignore, None)
            if any(build for _, build in first.runnable):
                return "a test that may run is build-needed"
            build_lines = list(first.lines)
        final = _same(testdesc, tree, universe, expected, arch, opts, ignore, only)
    except _Unsure as exc:
        return str(exc)
    if running(final):
        return f"test {running(final)[0]} may run"
    lines = list(final.lines)
    if only:
        lines.append(f"\0{kind} {tree} has no test matching --test-name {', '.join(only)}")
    if not final.lines:  # run_tests: nothing skipped and nothing to run
        lines.append("%-20s %s" % ("*", "SKIP no tests in this package"))  # noqa: UP031
    return _Plan(opts, kind, tree, list(vserver_args), expected, build_lines, lines, 8)


class _Unsure(Exception):
    """The verdict is not certain without the testbed (the message says why)."""


def _same(
    testdesc: ModuleType,
    tree: str,
    universe: list[str],
    expected: Expected,
    arch: str,
    opts: Any,
    ignore: list[str],
    only: list[str] | None,
) -> _Verdict:
    """The verdict of the richest and the poorest testbed, if they agree."""
    verdicts = [
        _parse(testdesc, tree, caps, arch, opts, ignore, only)
        for caps in ([*universe, *expected.most], list(expected.least))
    ]
    _forget_told(testdesc)
    if verdicts[0] != verdicts[1]:
        raise _Unsure(
            "a test's verdict depends on what the testbed has (its capabilities, CPU or devices)"
        )
    return verdicts[0]


def _forget_told(testdesc: ModuleType) -> None:
    """The real run, if there is one, logs again what was satisfied (adt_compat logs it once)."""
    told = getattr(testdesc.Test.check_testbed_compat, "_hw_told", None)
    if isinstance(told, set):
        told.clear()


def _source_unsure(
    testdesc: ModuleType, opts: Any, kind: str, tree: str, built_binaries: object
) -> str | None:
    """Why this package source needs the testbed before its tests are known; None: it does not."""
    if getattr(opts, "validate", False):
        return "--validate"
    if kind not in ("built-tree", "unbuilt-tree"):
        return f"the tests of a {kind} are read inside the testbed"
    if kind == "unbuilt-tree":
        if built_binaries:
            return "the package is built first (give -B/--no-built-binaries to skip the build)"
        if os.path.exists(os.path.join(tree, "debian", "patches")):
            return "dpkg-source --before-build applies the package's patches in the testbed"
        if not os.path.isfile(os.path.join(tree, "debian", "changelog")):
            return "no debian/changelog"
    if not _changelog_plain(tree):
        return "debian/changelog's first line is not 'NAME (VERSION) ...'"
    if opts.output_dir and os.path.isdir(opts.output_dir) and os.listdir(opts.output_dir):
        return "the output directory is not empty"
    if opts.override_control:
        if not os.access(opts.override_control, os.R_OK):
            return "the control file cannot be read"
        return None
    if not os.path.isfile(os.path.join(tree, "debian", "tests", "control")):
        return "no debian/tests/control (autodep8 may make tests)"
    if getattr(opts, "auto_control", True) and _wants_autodep8(testdesc, tree):
        return "Testsuite: autopkgtest-pkg-* (autodep8 makes tests)"
    return None


def _changelog_plain(tree: str) -> bool:
    """Whether autopkgtest reads the package name and version as we do (or finds no changelog)."""
    try:
        with open(os.path.join(tree, "debian", "changelog"), "rb") as f:
            first = f.readline(4096).decode("utf-8")
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError):
        return False
    return _CHANGELOG.match(first) is not None


def _wants_autodep8(testdesc: ModuleType, tree: str) -> bool:
    """Whether autopkgtest would ask autodep8 (Testsuite: autopkgtest-pkg-*), as it reads it."""
    try:
        for record in testdesc.parse_rfc822(os.path.join(tree, "debian", "control")):
            return "autopkgtest-pkg-" in record.get("Testsuite", "")
    except Exception:
        return True
    return False


def _has_architecture(testdesc: ModuleType, control: str) -> bool:
    try:
        return any("Architecture" in r for r in testdesc.parse_rfc822(control))
    except Exception:
        return True


def _autopkgtest_caps(testdesc: ModuleType) -> list[str] | None:
    """Every capability autopkgtest's restrictions can ask for (and those it adds itself)."""
    table = getattr(testdesc, "RESTRICTIONS_REQUIRE_CAPS", None)
    if not isinstance(table, dict):
        return None
    caps = set(_AUTOPKGTEST_CAPS)
    for needed in table.values():
        for c in needed:
            if isinstance(c, str):
                caps.add(c)
            elif isinstance(c, frozenset):
                caps |= {x for x in c if isinstance(x, str)}
            else:
                return None
    return sorted(caps)


def _parse(
    testdesc: ModuleType,
    tree: str,
    caps: list[str],
    arch: str,
    opts: Any,
    ignore: list[str],
    only: list[str] | None,
) -> _Verdict:
    """autopkgtest's own parse of the tests on a testbed with ``caps``: its lines and tests."""
    out = io.BytesIO()
    try:
        extra = {}
        if "test_arch_is_foreign" in inspect.signature(testdesc.parse_debian_source).parameters:
            extra["test_arch_is_foreign"] = False  # 5.43+ (6.0); --architecture is unsure
        with _quiet(stdout=out):
            tests, _ = testdesc.parse_debian_source(
                tree,
                caps,
                arch,
                **extra,
                control_path=opts.override_control,
                auto_control=opts.auto_control,
                ignore_restrictions=ignore,
                **({} if only is None else {"only_tests": only}),
            )
    except Exception as exc:  # InvalidControl (badpkg) and anything else: the real run says it
        raise _Unsure(f"autopkgtest cannot read the tests: {exc}") from None
    lines = tuple(out.getvalue().decode("utf-8", "replace").splitlines())
    return _Verdict(lines, tuple((t.name, "build-needed" in t.restrictions) for t in tests))


@contextlib.contextmanager
def _quiet(stdout: BinaryIO | None = None, mute_log: bool = True) -> Iterator[None]:
    """Silence autopkgtest's messages (and catch its report lines) while it is asked."""
    adtlog: Any = sys.modules.get("adtlog")
    saved = (sys.stdout, sys.stderr, getattr(adtlog, "verbosity", 1))
    sys.stdout = io.TextIOWrapper(stdout or io.BytesIO(), write_through=True)
    sys.stderr = io.TextIOWrapper(io.BytesIO(), write_through=True)
    if adtlog is not None and mute_log:
        adtlog.verbosity = -1
    try:
        yield
    finally:
        sys.stdout.detach()
        sys.stdout, sys.stderr = saved[0], saved[1]
        if adtlog is not None and mute_log:
            adtlog.verbosity = saved[2]


class _Tee(io.RawIOBase):
    """A binary stream written to the terminal's stream and the log file (autopkgtest's tee)."""

    def __init__(self, *targets: BinaryIO) -> None:
        self.targets = targets

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        for t in self.targets:
            t.write(data)
            t.flush()
        return len(data)


class _StampedLog(io.RawIOBase):
    """The log file of an autopkgtest whose log lines start with the seconds elapsed.

    autopkgtest 6.0 pipes its log through ``mawk '{ printf("%3ds %s\\n", systime()-START, $0) }'``.
    """

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.start = int(time.time())
        self.at_line_start = True

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        out = bytearray()
        for piece in bytes(data).splitlines(keepends=True):
            if self.at_line_start:
                out += b"%3ds " % (int(time.time()) - self.start)
            out += piece
            self.at_line_start = piece.endswith(b"\n")
        self.f.write(bytes(out))
        self.f.flush()
        return len(data)


def _stamps_log(at: adt_compat.Autopkgtest) -> bool:
    """Whether this autopkgtest stamps its log lines with the time elapsed (6.0 does)."""
    try:
        return b"systime()" in Path(at.program).read_bytes()[: 1 << 20]
    except OSError:
        return False


def _report(at: adt_compat.Autopkgtest, adtlog: Any, plan: _Plan) -> int:
    """Write what autopkgtest writes for this run, through its own adtlog; its exit code."""
    opts = plan.opts
    outdir = opts.output_dir
    if outdir is not None:
        os.makedirs(outdir, exist_ok=True)
        tmp = outdir
    else:
        tmp = tempfile.mkdtemp(prefix="autopkgtest.output.")
    logfile = opts.logfile or (os.path.join(outdir, "log") if outdir is not None else None)
    summary_path = opts.summary or os.path.join(tmp, "summary")
    with contextlib.ExitStack() as stack:
        if logfile is not None:
            logf: BinaryIO = stack.enter_context(open(logfile, "wb"))
            if _stamps_log(at):
                logf = _StampedLog(logf)  # type: ignore[assignment]
            adtlog.enable_colors = False
            out = io.TextIOWrapper(
                io.BufferedWriter(_Tee(sys.stdout.buffer, logf)), write_through=True
            )
            err = io.TextIOWrapper(
                io.BufferedWriter(_Tee(sys.stderr.buffer, logf)), write_through=True
            )
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
        adtlog.summary_stream = stack.enter_context(open(summary_path, "w+b", 0))
        adtlog.info(f"starting date and time: {time.strftime('%Y-%m-%d %H:%M:%S%z')}")
        adtlog.info(f"version {at.version}")
        command = " ".join(shlex.quote(w) for w in sys.argv)
        adtlog.info(f"host {os.uname()[1]}; command line: {command}")
        adtlog.info(NOT_OPENED.format(why=escape(plan.expected.why)))
        adtlog.info(f"@@@@@@@@@@@@@@@@@@@@ {plan.kind} {plan.tree}")
        _package_version(adtlog, plan, tmp if outdir is not None else None)
        for line in plan.build_lines:
            adtlog.preport(line)
        if plan.kind == "unbuilt-tree":
            adtlog.info("build not needed")
        for line in plan.lines:
            if line.startswith("\0"):  # not a report: autopkgtest's error line
                adtlog.error(line[1:])
            else:
                adtlog.preport(line)
        adtlog.summary_stream.flush()
        if adtlog.verbosity >= 1:
            adtlog.summary_stream.seek(0)
            adtlog.info("@@@@@@@@@@@@@@@@@@@@ summary")
            sys.stderr.buffer.write(adtlog.summary_stream.read())
            sys.stderr.buffer.flush()
        adtlog.summary_stream = None
        with open(os.path.join(tmp, "testinfo.json"), "w") as f:
            virt = " ".join(shlex.quote(w) for w in plan.vserver_args)
            json.dump({"virt_server": virt}, f, indent=2)
    if outdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return plan.errorcode


def _package_version(adtlog: ModuleType, plan: _Plan, outdir: str | None) -> None:
    """'testing package NAME version V' and testpkg-version, from debian/changelog."""
    changelog = Path(plan.tree, "debian", "changelog")
    try:
        with open(changelog, "rb") as f:
            first = f.readline().decode()
    except OSError:
        return
    if plan.kind == "built-tree":
        name, version, _ = [*first.split(" ", 2), "", ""][:3]
        version = version[1:-1]
    else:  # sed -n "1 {s/).*//; s/ (/\n/; p}", as the testbed runs it
        head = first.split(")", 1)[0]
        name, _, version = head.partition(" (")
        version = version.rstrip("\n")
    adtlog.info(f"testing package {name} version {version}")
    if outdir is not None:
        with open(os.path.join(outdir, "testpkg-version"), "w") as f:
            f.write(f"{name} {version}\n")
