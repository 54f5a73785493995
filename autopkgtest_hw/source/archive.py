"""What routing needs to know of a source package, from an archive index or a source tree.

An archive ``Sources`` index (read with python-debian; with python3-apt's
parser when it is installed, which reads all of sid in well under a second)
carries ``Package``, ``Architecture``, ``Testsuite`` and the maintainer's
``XS-Requires-Hwspec`` as ``Requires-Hwspec``.  It does not carry
``debian/tests/control``, so a package's ``needs-hw:`` tests are only known
from an unpacked source tree.

Nothing here raises anything but :class:`ArchiveError`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.source import architecture
from autopkgtest_hw.source.control import (
    ControlError,
    SourcePackage,
    read_paragraphs,
    read_source_package,
)
from autopkgtest_hw.source.hwspec_field import field_texts, value_texts
from debian import deb822

#: debci-worker's own check on the package word of a request.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
MAX_NAME = 100
APT_HELPER = "/usr/lib/apt/apt-helper"
MAX_HWSPEC = 2000  # characters of one package's Requires-Hwspec
MAX_INDEX = 4 << 30  # bytes of a decompressed index
_FIELDS = ["Package", "Version", "Architecture", "Testsuite", "Requires-Hwspec"]
_DECOMPRESS: dict[str, Callable[..., Any]] = {
    ".gz": gzip.open,
    ".xz": lzma.open,
    ".bz2": bz2.open,
}
#: dpkg's architecture -> CPU where the two differ (the OS is linux unless named).
try:
    import apt_pkg  # noqa: F401  (python-debian uses it when asked to)

    _HAVE_APT_PKG = True
except ImportError:  # pragma: no cover - python3-apt is a Recommends
    _HAVE_APT_PKG = False


class ArchiveError(HwError):
    """An index or source tree that cannot be read."""


@dataclass(frozen=True)
class SourceEntry:
    """One source package as routing sees it."""

    package: str
    version: str
    architectures: tuple[str, ...]  # the .dsc's Architecture: words ("any", "all", "linux-any")
    hwspecs: tuple[str, ...]  # Requires-Hwspec, split on commas, whitespace out; () = none
    has_tests: bool
    origin: str  # "Sources:123" or the source directory
    tree: SourcePackage | None = None  # an unpacked source: its tests are known
    error: str | None = None  # why it cannot be routed (bad name, unreadable control)


def arch_matches(arch: str, wildcard: str) -> bool:
    """dpkg's wildcard rule (``linux-any``, ``any-amd64``), as the test stanzas use it.

    A package's ``all`` holds everywhere: ``all`` packages are tested on every
    architecture that has workers.
    """
    return wildcard == "all" or architecture.matches(arch, wildcard)


def fits_arch(arch: str, words: tuple[str, ...]) -> bool:
    """Whether a package (or test) with Architecture ``words`` runs on ``arch``; () = any."""
    return not words or any(arch_matches(arch, w) for w in words)


def _has_autopkgtest(testsuite: str) -> bool:
    return any(t.strip().startswith("autopkgtest") for t in testsuite.split(","))


def _check_name(name: str) -> str | None:
    if len(name) > MAX_NAME or not PACKAGE_RE.match(name):
        return f"invalid package name {safe(name)!r}"
    return None


def _check_hwspec(value: str) -> str | None:
    if len(value) > MAX_HWSPEC:
        return f"Requires-Hwspec longer than {MAX_HWSPEC} characters"
    return None


def _apt_cat(path: str) -> IO[bytes]:
    """apt's own reader, for the compressions apt stores its lists in (lz4, zstd)."""
    if not os.path.exists(path):
        raise ArchiveError(f"cannot read {path}: No such file or directory")
    try:
        proc = subprocess.run([APT_HELPER, "cat-file", path], capture_output=True, check=False)
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {APT_HELPER}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise ArchiveError(f"cannot read {path}: {safe(proc.stderr.decode(errors='replace'))}")
    return io.BytesIO(proc.stdout)


def _open_index(path: str) -> IO[bytes]:
    suffix = os.path.splitext(path)[1]
    if suffix in (".lz4", ".zst"):
        return _apt_cat(path)
    try:
        opener = _DECOMPRESS.get(suffix)
        if opener is None:
            return open(path, "rb")
        with opener(path, "rb") as f:  # python3-apt's parser reads only plain files
            data = f.read(MAX_INDEX + 1)
        if len(data) > MAX_INDEX:
            raise ArchiveError(f"{path}: larger than {MAX_INDEX >> 30} GiB decompressed")
        return io.BytesIO(data)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise ArchiveError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def read_sources_index(path: str) -> Iterator[SourceEntry]:
    """Every stanza of a Sources index: plain, .gz, .xz, .bz2, or .lz4/.zst as apt
    stores its lists.  Which version wins where a package is listed twice is
    the caller's choice."""
    f = _open_index(path)
    try:
        use_apt = _HAVE_APT_PKG and not isinstance(f, io.BytesIO)
        lines: IO[bytes] | list[bytes] = f if use_apt else f.read().splitlines(keepends=True)
        number = 0
        try:
            for para in deb822.Sources.iter_paragraphs(
                lines, use_apt_pkg=use_apt, fields=_FIELDS, encoding="utf-8"
            ):
                number += 1
                name = str(para.get("Package", "")).strip()
                origin = f"{path}: stanza {number}"
                arches = tuple(str(para.get("Architecture", "")).split())
                hwspec = str(para.get("Requires-Hwspec", ""))
                yield SourceEntry(
                    package=name,
                    version=str(para.get("Version", "")).strip(),
                    architectures=arches,
                    hwspecs=value_texts(hwspec),
                    has_tests=_has_autopkgtest(str(para.get("Testsuite", ""))),
                    origin=origin,
                    error=_check_name(name) or _check_hwspec(hwspec),
                )
        except (UnicodeDecodeError, ValueError, SystemError) as exc:
            raise ArchiveError(f"{path}: after stanza {number}: {exc}") from None
    finally:
        f.close()


def read_source_tree(srcdir: str) -> SourceEntry:
    """An unpacked source package: its control files, its tests and their needs."""
    try:
        pkg = read_source_package(srcdir)
        doc = read_paragraphs(pkg.control.path)
    except ControlError as exc:
        return SourceEntry(
            package=os.path.basename(os.path.abspath(srcdir)),
            version="",
            architectures=(),
            hwspecs=(),
            has_tests=False,
            origin=srcdir,
            error=str(exc),
        )
    arches: list[str] = []
    for para in doc.paragraphs:
        if para is doc.paragraphs[0] or para.get("Package") is None:
            continue
        f = para.get("Architecture")
        for word in f.value.split() if f else ("any",):
            if word not in arches:
                arches.append(word)
    name = pkg.control.source or os.path.basename(os.path.abspath(srcdir))
    source_para = pkg.control.paragraph
    testsuite = source_para.get("Testsuite") if source_para else None
    has_tests = pkg.tests is not None or bool(testsuite and _has_autopkgtest(testsuite.value))
    specs = field_texts(pkg.control.hwspec_fields)
    return SourceEntry(
        package=name,
        version="",
        architectures=tuple(arches),
        hwspecs=specs,
        has_tests=has_tests,
        origin=srcdir,
        tree=pkg,
        error=_check_name(name) or _check_hwspec(",".join(specs)),
    )
