"""The contract between the detector registry and the inventory cache.

Every input a detector declares (a tool on PATH, a library, a Python module,
an environment variable, a file or directory, a device node) is part of the
fingerprint: changing any one of them makes the cached answer stale, so a
device that is gone is never answered from the cache.  The cases are made
from the registry, so a new detector or a new declaration is checked by
itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autopkgtest_hw.detect import cache
from autopkgtest_hw.detect.base import Detector, registered

CACHED = [d for d in registered() if d.cached]


def _concrete(pattern: str) -> str:
    """A path that the glob ``pattern`` matches."""
    return re.sub(r"\[[^]]*\]", "0", pattern).replace("*", "x0").lstrip("/")


def _file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


Change = Callable[[Path, pytest.MonkeyPatch], None]


def _cases(d: Detector) -> Iterator[tuple[str, Change, Change]]:
    """(the input, how to set it up, how to change it) for each input ``d`` declares."""
    for tool in d.inputs.tools:

        def tool_installed(root: Path, mp: pytest.MonkeyPatch, tool: str = tool) -> None:
            _file(root / "bin" / tool, "#!/bin/sh\n")
            (root / "bin" / tool).chmod(0o755)

        yield f"tool {tool}", lambda r, mp: mp.setenv("PATH", str(r / "bin")), tool_installed
    for lib in d.inputs.libraries:
        yield (
            f"library {lib}",
            lambda r, mp: mp.delenv("LD_LIBRARY_PATH", raising=False),
            lambda r, mp, lib=lib: _file(r / "usr/lib/x86_64-linux-gnu" / lib, "ELF"),
        )
    for module in d.inputs.modules:
        yield (
            f"module {module}",
            lambda r, mp: mp.syspath_prepend(str(r / "site")),
            lambda r, mp, m=module: _file(r / "site" / f"{m}.py", ""),
        )
    for name in d.inputs.env:
        var = name[:-1] + "TEST" if name.endswith("*") else name
        yield (
            f"variable {name}",
            lambda r, mp, var=var: mp.delenv(var, raising=False),
            lambda r, mp, var=var: mp.setenv(var, "1"),
        )
    for pattern in d.inputs.paths:
        if pattern.startswith("$"):
            var = pattern[1:]

            def named(root: Path, mp: pytest.MonkeyPatch, var: str = var) -> None:
                _file(root / "named" / var, "one")
                mp.setenv(var, str(root / "named" / var))

            yield (
                f"path {pattern}",
                named,
                lambda r, mp, var=var: _file(r / "named" / var, "two"),
            )
            continue
        yield (
            f"path {pattern}",
            lambda r, mp: None,
            lambda r, mp, p=pattern: _file(r / _concrete(p), "appeared"),
        )
        yield (
            f"path {pattern} (content)",
            lambda r, mp, p=pattern: _file(r / _concrete(p), "one"),
            lambda r, mp, p=pattern: _file(r / _concrete(p), "two"),
        )
    for pattern in d.inputs.nodes:
        yield (
            f"node {pattern}",
            lambda r, mp: None,
            lambda r, mp, p=pattern: _file(r / _concrete(p), ""),
        )
        yield (
            f"node {pattern} (mode)",
            lambda r, mp, p=pattern: _file(r / _concrete(p), ""),
            lambda r, mp, p=pattern: (r / _concrete(p)).chmod(0o600),
        )


CASES = [(d, what, setup, change) for d in CACHED for what, setup, change in _cases(d)]


@pytest.mark.parametrize(
    ("detector", "what", "setup", "change"), CASES, ids=[f"{c[0].name}: {c[1]}" for c in CASES]
)
def test_changing_a_declared_input_invalidates_the_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    detector: Detector,
    what: str,
    setup: Change,
    change: Change,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    setup(root, monkeypatch)
    before = cache.fingerprint(root=str(root))
    assert cache.fingerprint(root=str(root)) == before  # nothing changed: the same answer
    change(root, monkeypatch)
    after = cache.fingerprint(root=str(root))
    assert after[f"detector {detector.name}"] != before[f"detector {detector.name}"], what


@pytest.mark.parametrize("detector", CACHED, ids=[d.name for d in CACHED])
def test_every_cached_detector_declares_what_it_reads(detector: Detector) -> None:
    inputs = detector.inputs
    assert inputs.libraries or inputs.tools, "a detector reads through a library or a tool"
    assert inputs.paths or inputs.nodes, "a detector reads the machine"


def test_a_detector_not_run_is_not_fingerprinted(tmp_path: Path) -> None:
    prints = cache.fingerprint(["cpu", "udev"], root=str(tmp_path))
    assert "detector udev" in prints
    assert not any(k.startswith("detector ") and k != "detector udev" for k in prints)
    assert "detector cpu" not in cache.fingerprint(root=str(tmp_path))  # read afresh, never kept


def test_a_declared_directory_is_read_within_bounds(tmp_path: Path) -> None:
    """A directory of ICDs with 100 000 entries costs at most MAX_ENTRIES lines."""
    vendors = tmp_path / "etc/OpenCL/vendors"
    vendors.mkdir(parents=True)
    for i in range(cache.MAX_ENTRIES + 500):
        (vendors / f"{i}.icd").write_text("")
    (opencl,) = [d for d in CACHED if d.name == "opencl"]
    lines = list(cache._inputs(opencl.inputs, cache._Root(str(tmp_path))))
    assert len([line for line in lines if "/vendors/" in line]) <= cache.MAX_ENTRIES
