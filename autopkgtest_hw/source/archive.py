"""What routing needs to know of a source package, from an archive index or a source tree.

An archive ``Sources`` index (streamed by :mod:`stanzas`, each stanza and
field bounded) carries ``Package``, ``Architecture``, ``Testsuite`` and the maintainer's
``XS-Requires-Hwspec`` as ``Requires-Hwspec``.  It does not carry
``debian/tests/control``, so a package's ``needs-hw:`` tests are only known
from an unpacked source tree.

Nothing here raises anything but :class:`ArchiveError`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.source import architecture, stanzas
from autopkgtest_hw.source.control import (
    ControlError,
    SourcePackage,
    read_paragraphs,
    read_source_package,
)
from autopkgtest_hw.source.hwspec_field import field_texts, value_texts

#: debci-worker's own check on the package word of a request.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
MAX_NAME = 100
APT_HELPER = "/usr/lib/apt/apt-helper"
MAX_HWSPEC = 2000  # characters of one package's Requires-Hwspec
MAX_ARCH_WORDS = 100  # words of one package's Architecture
_FIELDS = ["Package", "Version", "Architecture", "Testsuite", "Requires-Hwspec"]
_DECOMPRESS: dict[str, Callable[..., Any]] = {
    ".gz": gzip.open,
    ".xz": lzma.open,
    ".bz2": bz2.open,
}


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


def _open_index(path: str) -> stanzas.Readable:
    """The index as a stream of its decompressed bytes (never read whole into memory)."""
    suffix = os.path.splitext(path)[1]
    try:
        if suffix in (".lz4", ".zst"):
            return stanzas.AptCat(APT_HELPER, path)
        opener = _DECOMPRESS.get(suffix)
        if opener is None:
            return open(path, "rb")
        stream: stanzas.Readable = opener(path, "rb")
        return stream
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_sources_index(path: str) -> Iterator[SourceEntry]:
    """Every stanza of a Sources index: plain, .gz, .xz, .bz2, or .lz4/.zst as apt
    stores its lists.  Which version wins where a package is listed twice is
    the caller's choice.

    The index is streamed: memory stays bounded whatever its size.  A stanza
    over :data:`stanzas.MAX_STANZA` bytes, with a field over its bound or not
    UTF-8 is an entry with an error naming it; the others route.
    """
    f = _open_index(path)
    try:
        for st in stanzas.read(f, _FIELDS):
            origin = f"{path}: stanza {st.number} (line {st.line})"
            if st.error:
                name = st.fields.get("Package", "").strip()
                yield SourceEntry(
                    package=name if not _check_name(name) else "",
                    version="",
                    architectures=(),
                    hwspecs=(),
                    has_tests=False,
                    origin=origin,
                    error=st.error,
                )
                continue
            name = st.fields.get("Package", "").strip()
            hwspec = st.fields.get("Requires-Hwspec", "")
            error = _check_name(name) or _check_hwspec(hwspec)
            yield SourceEntry(
                package=name,
                version=st.fields.get("Version", "").strip()[:MAX_NAME],
                architectures=tuple(st.fields.get("Architecture", "").split()[:MAX_ARCH_WORDS]),
                hwspecs=() if error else value_texts(hwspec),
                has_tests=_has_autopkgtest(st.fields.get("Testsuite", "")),
                origin=origin,
                error=error,
            )
    except stanzas.IndexTooLarge as exc:
        raise ArchiveError(f"{path}: {exc}") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise ArchiveError(
            f"cannot read {path}: {getattr(exc, 'strerror', None) or safe(str(exc))}"
        ) from None
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
