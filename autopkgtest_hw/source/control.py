"""Read ``debian/tests/control`` and ``debian/control`` the way autopkgtest does.

autopkgtest (``testdesc.parse_rfc822``) filters comments itself before it
hands the lines to ``debian.deb822.Deb822.iter_paragraphs``: a line that
starts with ``#`` is dropped, any other ``#`` cuts the rest of its line, and a
line left blank by the cut is dropped too (it would end the stanza).  It then
splits ``Restrictions:`` and ``Features:`` on commas and whitespace.  This
module does exactly that, but keeps the file line and column of every token,
so ``lint`` can point at the ``needs-hw:`` token that is wrong.

Nothing here raises anything but :class:`ControlError`.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from autopkgtest_hw.base import bounds
from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.spec.language import NEEDS_HW_PREFIX
from debian import deb822

#: Restrictions autopkgtest knows (5.28; 6.0 adds skip-foreign-architecture): lint's list,
#: and plan's where the installed autopkgtest's own cannot be read
#: (``adt_compat.installed_restrictions``).
KNOWN_RESTRICTIONS = frozenset(
    {
        "allow-stderr",
        "breaks-testbed",
        "build-needed",
        "flaky",
        "hint-testsuite-triggers",  # deliberately unknown to autopkgtest: the test never runs
        "isolation-container",
        "isolation-machine",
        "needs-internet",
        "needs-recommends",
        "needs-reboot",
        "needs-root",
        "needs-sudo",
        "rw-build-tree",
        "skip-foreign-architecture",
        "skip-not-installable",
        "skippable",
        "superficial",
    }
)
#: Fields autopkgtest accepts in a test stanza; any other skips the stanza.
KNOWN_TEST_FIELDS = (
    "Tests",
    "Test-Command",
    "Restrictions",
    "Features",
    "Depends",
    "Tests-Directory",
    "Classes",
    "Architecture",
)
#: ``X-Requires-Hwspec`` with any of the S, B, C letters (Policy 5.7).
HWSPEC_FIELD_RE = re.compile(r"^X[SBC]*-Requires-Hwspec$", re.IGNORECASE)
DEFAULT_HWSPEC = "cpu"

# The key part of deb822's own field regex (python-debian's Deb822._key_part).
_FIELD_RE = re.compile(r"^(?P<key>[^: \t\n\r\f\v]+)\s*:")
#: python-debian's OpenPGP armour line (Deb822._gpgre), which changes how it splits stanzas.
_GPG_RE = re.compile(r"^-----(BEGIN|END) PGP [^-]+-----[\r\t ]*$")
_TOKEN_RE = re.compile(r"[^,\s]+")
_ITEM_RE = re.compile(r"[^,]+")


class ControlError(HwError):
    """A control file that cannot be read or makes no sense, with where."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class ControlReadError(ControlError):
    """The file (or the source directory) could not be read at all."""


@dataclass(frozen=True)
class Token:
    """One word of a field's value, where it stands in the file (1-based)."""

    text: str
    line: int
    column: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Field:
    """A field as autopkgtest sees it (``value``), and where it was written."""

    name: str  # as written, e.g. "Restrictions"
    value: str  # continuation lines unfolded the way autopkgtest unfolds them
    line: int
    segments: tuple[tuple[int, int, str], ...]  # (line, column, text) of each value piece

    def tokens(self) -> tuple[Token, ...]:
        """Split on commas and whitespace, like autopkgtest's Restrictions/Features."""
        return tuple(
            Token(m.group(), line, col + m.start())
            for line, col, text in self.segments
            for m in _TOKEN_RE.finditer(text)
        )

    def items(self) -> tuple[Token, ...]:
        """Split on commas only, each item stripped (a list field like Depends)."""
        out = []
        for line, col, text in self.segments:
            for m in _ITEM_RE.finditer(text):
                item = m.group()
                if item.strip():
                    lead = len(item) - len(item.lstrip())
                    out.append(Token(item.strip(), line, col + m.start() + lead))
        return tuple(out)


@dataclass(frozen=True)
class Paragraph:
    """One deb822 stanza: fields by capwords name (autopkgtest's normal form)."""

    path: str
    line: int
    fields: tuple[Field, ...]

    def get(self, name: str) -> Field | None:
        wanted = string.capwords(name)
        for f in self.fields:
            if string.capwords(f.name) == wanted:
                return f
        return None


@dataclass(frozen=True)
class TestStanza:
    """One stanza of debian/tests/control: the tests it declares and their needs."""

    path: str
    line: int
    names: tuple[str, ...]  # Tests names, or the one Test-Command test's name
    command: str | None  # Test-Command, if that is how the stanza is written
    restrictions: tuple[Token, ...]
    features: tuple[Token, ...]
    classes: tuple[Token, ...]
    depends: tuple[Token, ...]  # comma-separated items; autopkgtest's default is "@"
    architecture: tuple[str, ...]
    tests_directory: str
    unknown_fields: tuple[Field, ...]  # autopkgtest skips the whole stanza for these
    paragraph: Paragraph

    @property
    def needs_hw(self) -> tuple[Token, ...]:
        """The ``needs-hw:`` restrictions, prefix included, as written."""
        return tuple(t for t in self.restrictions if t.text.startswith(NEEDS_HW_PREFIX))

    def has_restriction(self, name: str) -> bool:
        return any(t.text == name for t in self.restrictions)


@dataclass(frozen=True)
class TestsControl:
    path: str
    stanzas: tuple[TestStanza, ...]
    ignored_lines: tuple[int, ...]  # lines deb822 drops silently (neither field nor continuation)
    stopped_at: int | None = None  # the line where autopkgtest stops reading (see Deb822File)

    def tests(self) -> Iterator[tuple[str, TestStanza]]:
        for stanza in self.stanzas:
            for name in stanza.names:
                yield name, stanza


@dataclass(frozen=True)
class SourceControl:
    """The source stanza of debian/control, as far as hardware is concerned."""

    path: str
    source: str | None
    line: int
    hwspec_fields: tuple[Field, ...]  # X-/XS-/... Requires-Hwspec, in the source stanza
    misplaced_hwspec_fields: tuple[Field, ...]  # the same in binary stanzas (never read)
    ignored_lines: tuple[int, ...]
    stopped_at: int | None = None
    paragraph: Paragraph | None = None  # the whole source stanza

    @property
    def hwspecs(self) -> tuple[Token, ...]:
        """Every spec of every Requires-Hwspec field; empty means the default, cpu."""
        return tuple(t for f in self.hwspec_fields for t in f.items())


# -- reading ------------------------------------------------------------------


def _read_lines(path: str) -> list[str]:
    """The file's lines as autopkgtest's ``for line in open(path, encoding='UTF-8')`` has them.

    Text-mode iteration breaks lines at ``\\n``, ``\\r\\n`` and ``\\r`` only (all
    three become ``\\n``); U+2028, U+0085 and form feed stay inside the line,
    where python-debian sees them too.
    """
    try:
        data = bounds.read_file(path, bounds.MAX_CONTROL_BYTES)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ControlReadError(
                path, None, "a symbolic link to nothing (autopkgtest would see no tests at all)"
            ) from None
        raise ControlReadError(path, None, "no such file") from None
    except bounds.InputTooLarge as exc:
        raise ControlReadError(path, None, f"too large for a control file: {exc}") from None
    except OSError as exc:
        raise ControlReadError(path, None, f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ControlError(path, line, "not valid UTF-8 (autopkgtest reads UTF-8)") from None
    pieces = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _filter_comments(lines: list[str]) -> list[tuple[int, str]]:
    """autopkgtest's comment pre-filter, keeping each kept line's number."""
    kept = []
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        if "#" in line:
            line = line.split("#", 1)[0]
            if not line.strip():
                continue
        kept.append((number, line))
    return kept


def _is_blank(line: str) -> bool:
    """python-debian's paragraph separator: empty or ASCII whitespace only, in bytes."""
    raw = line.encode("utf-8", "surrogateescape").strip(b"\r\n")
    return not raw or raw.isspace()


def _split_paragraphs(lines: list[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    """Blank lines end a paragraph (python-debian's rule, on the line's bytes)."""
    current: list[tuple[int, str]] = []
    for number, line in lines:
        if _is_blank(line):
            if current:
                yield current
                current = []
            continue
        current.append((number, line))
    if current:
        yield current


@dataclass(frozen=True)
class Deb822File:
    path: str
    paragraphs: tuple[Paragraph, ...]
    ignored_lines: tuple[int, ...]  # lines deb822 drops: neither a field nor a continuation
    stopped_at: int | None  # a stanza without fields ends deb822's reading: all after is lost


def read_paragraphs(path: str) -> Deb822File:
    """Every stanza of a deb822 file, read as autopkgtest reads it, with line numbers."""
    kept = _filter_comments(_read_lines(path))
    paragraphs: list[Paragraph] = []
    ignored: list[int] = []
    for block in _split_paragraphs(kept):
        try:
            parsed = deb822.Deb822([line for _, line in block])
        except Exception as exc:  # python-debian should not raise; never let it crash us
            raise ControlError(path, block[0][0], f"cannot parse stanza: {exc}") from None
        # Where each field's value lies, by the same rules as deb822's parser.
        spans: dict[str, tuple[str, int, list[tuple[int, int, str]]]] = {}
        current: str | None = None
        names: dict[str, int] = {}  # autopkgtest's name of each field -> its line
        for number, line in block:
            text = line.rstrip("\r\n")
            if _GPG_RE.match(text):
                raise ControlError(
                    path, number, "an OpenPGP armour line; a control file is not signed"
                )
            m = _FIELD_RE.match(text)
            if m:
                current = m.group("key")
                start = m.end()
                seen = names.setdefault(string.capwords(current), number)
                if seen != number:  # the same name to autopkgtest (it capwords them)
                    first = seen
                    raise ControlError(
                        path,
                        number,
                        f"field {current} is given twice in this stanza (first on line {first});"
                        " autopkgtest would read only this one and ignore the other",
                    )
                spans[current.lower()] = (current, number, [(number, start + 1, text[start:])])
            elif text[:1].isspace() and current is not None:
                spans[current.lower()][2].append((number, 1, text))
            else:
                ignored.append(number)
        fields = []
        for key, value in parsed.items():
            name, number, segments = spans[key.lower()]
            unfolded = "".join(value.split("\n")).replace("  ", " ")
            fields.append(Field(name, unfolded, number, tuple(segments)))
        if not fields:
            # Deb822.iter_paragraphs stops at the first empty stanza, and so
            # does autopkgtest: nothing from here on is read.
            return Deb822File(path, tuple(paragraphs), tuple(ignored), block[0][0])
        paragraphs.append(Paragraph(path, block[0][0], tuple(fields)))
    return Deb822File(path, tuple(paragraphs), tuple(ignored), None)


def _test_stanza(para: Paragraph, command_counter: int) -> tuple[TestStanza, int]:
    def tokens(name: str) -> tuple[Token, ...]:
        f = para.get(name)
        return f.tokens() if f else ()

    features = tokens("Features")
    test_names = [t.text.split("=", 1)[1] for t in features if t.text.startswith("test-name=")]
    if any(t.text == "test-name" for t in features):
        raise ControlError(para.path, para.line, "test-name feature with no argument")
    if len(test_names) > 1:
        raise ControlError(para.path, para.line, "only one test-name feature allowed")
    tests = para.get("Tests")
    command = para.get("Test-Command")
    if tests is not None:
        names = tuple(t.text for t in tests.tokens())
        if not names:
            raise ControlError(para.path, tests.line, '"Tests" field is empty')
        if command is not None:
            raise ControlError(
                para.path, para.line, 'only one of "Tests" or "Test-Command" may be given'
            )
        if test_names:
            raise ControlError(para.path, para.line, "test-name feature incompatible with Tests")
    elif command is not None:
        if test_names:
            names = (test_names[0],)
        else:
            command_counter += 1
            names = (f"command{command_counter}",)
    else:
        raise ControlError(para.path, para.line, 'missing "Tests" or "Test-Command" field')
    depends = para.get("Depends")
    directory = para.get("Tests-Directory")
    known = {string.capwords(n) for n in KNOWN_TEST_FIELDS}
    stanza = TestStanza(
        path=para.path,
        line=para.line,
        names=names,
        command=command.value.strip() if command else None,
        restrictions=tokens("Restrictions"),
        features=features,
        classes=tokens("Classes"),
        depends=depends.items() if depends else (Token("@", para.line, 1),),
        architecture=tuple(t.text for t in tokens("Architecture")),
        tests_directory=directory.value.strip() if directory else "debian/tests",
        unknown_fields=tuple(f for f in para.fields if string.capwords(f.name) not in known),
        paragraph=para,
    )
    return stanza, command_counter


def read_tests_control(path: str) -> TestsControl:
    """Parse debian/tests/control; raise ControlError (with a line) if malformed."""
    doc = read_paragraphs(path)
    stanzas = []
    counter = 0
    for para in doc.paragraphs:
        stanza, counter = _test_stanza(para, counter)
        stanzas.append(stanza)
    return TestsControl(path, tuple(stanzas), doc.ignored_lines, doc.stopped_at)


def read_source_control(path: str) -> SourceControl:
    """The source stanza of debian/control and its Requires-Hwspec fields."""
    doc = read_paragraphs(path)
    paragraphs = doc.paragraphs
    source = next((p for p in paragraphs if p.get("Package") is None), None)
    if source is None:
        raise ControlError(path, None, "no source stanza (one without a Package field)")
    hwspec = tuple(f for f in source.fields if HWSPEC_FIELD_RE.match(f.name))
    misplaced = tuple(
        f for p in paragraphs if p is not source for f in p.fields if HWSPEC_FIELD_RE.match(f.name)
    )
    name = source.get("Source")
    return SourceControl(
        path=path,
        source=name.value.strip() if name else None,
        line=source.line,
        hwspec_fields=hwspec,
        misplaced_hwspec_fields=misplaced,
        ignored_lines=doc.ignored_lines,
        stopped_at=doc.stopped_at,
        paragraph=source,
    )


@dataclass(frozen=True)
class SourcePackage:
    srcdir: str
    control: SourceControl
    tests: TestsControl | None  # None: no debian/tests/control


def read_source_package(srcdir: str) -> SourcePackage:
    """Both control files of an unpacked source package.

    Raises ControlReadError when ``srcdir`` has no readable debian/control,
    ControlError when a file is malformed.
    """
    if not os.path.isdir(srcdir):
        raise ControlReadError(srcdir, None, "not a directory")
    control_path = os.path.normpath(os.path.join(srcdir, "debian", "control"))
    if not os.path.lexists(control_path):
        raise ControlReadError(srcdir, None, "not a source package: no debian/control")
    control = read_source_control(control_path)
    tests_path = os.path.normpath(os.path.join(srcdir, "debian", "tests", "control"))
    # lexists: a dangling symlink is an error here, not "no tests" (autopkgtest's reading)
    tests = read_tests_control(tests_path) if os.path.lexists(tests_path) else None
    return SourcePackage(srcdir, control, tests)
