"""The virt server's --hold-* options: what goes into the holder record of its locks.

``autopkgtest-hw build`` and ``shell`` set them; a CI run through plain
autopkgtest sets none, and the package is then read from the command line of
the autopkgtest that started the virt server (best effort).
"""

from __future__ import annotations

import argparse
import os
import re

from autopkgtest_hw.base.duration import parse_duration
from autopkgtest_hw.locks import holders

_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "holder record (what 'autopkgtest-hw status' and waiting runs show)"
    )
    group.add_argument(
        "--hold-kind",
        choices=("ci", "build", "porterbox"),
        default="ci",
        help="who holds the devices: a CI run, a package build or a porterbox session"
        " (default: %(default)s)",
    )
    group.add_argument(
        "--hold-package",
        metavar="NAME",
        type=_package,
        help="the source package being tested or built (default: read from the calling"
        " autopkgtest's command line)",
    )
    group.add_argument(
        "--hold-for",
        metavar="DURATION",
        type=_duration,
        help="how long the devices will be held at most (90s, 30m, 2h, 1h30m), recorded as"
        " 'until' (the caller enforces it)",
    )


def _package(text: str) -> str:
    if not _PACKAGE.match(text):
        raise argparse.ArgumentTypeError(f"not a Debian source package name: {text!r}")
    return text


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def record(args: argparse.Namespace) -> holders.Holder:
    package = args.hold_package
    if package is None and args.hold_kind == "ci":
        package = package_of_parent()
    return holders.for_this_process(args.hold_kind, package, args.hold_for)


def package_of_parent() -> str | None:
    """The package an autopkgtest parent process tests, when its command line says so."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = f.read(65536).decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    if not any("autopkgtest" in os.path.basename(a) for a in argv[:3]):
        return None
    words = argv[: argv.index("--")] if "--" in argv else argv
    for word in reversed(words[1:]):
        base = os.path.basename(word.rstrip("/"))
        if word.endswith((".dsc", ".changes", ".deb")):
            name: str | None = base.split("_", 1)[0]
        elif os.path.isfile(os.path.join(word, "debian", "changelog")):
            name = _changelog_source(os.path.join(word, "debian", "changelog"))
        else:
            continue
        if name and _PACKAGE.match(name):
            return name
    for word in reversed(words[1:]):
        if _PACKAGE.match(word) and word not in ("autopkgtest", "run"):
            return word  # a package name for apt-get source
        break
    return None


def _changelog_source(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline(200)
    except OSError:
        return None
    return first.split(" ", 1)[0] or None
