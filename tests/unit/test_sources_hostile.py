"""Hostile Sources indexes: streamed, each stanza bounded, never a traceback (issue 18, item 9).

Figures for the full-size cases (100,000 long specs, 500 MB of newlines, a
64 MiB stanza) come from bench/bench_hostile_sources.py; these tests use the
same shapes at sizes a test run affords, under a memory limit the earlier
reader could not stay within.
"""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
from pathlib import Path

from autopkgtest_hw.source.archive import read_sources_index
from autopkgtest_hw.source.stanzas import MAX_STANZA

ROOT = Path(__file__).resolve().parents[2]
STANZA = "Package: {}\nVersion: 1.0-1\nArchitecture: any\nTestsuite: autopkgtest\n"
FLEET = "Profile: cpu-amd64\nArchitecture: amd64\nOrdinary: yes\n"
#: Address space for the routing process: far more than a streamed index needs.
LIMIT = 1 << 30


def _route(tmp_path: Path, index: Path) -> tuple[int, dict[str, list[dict[str, str]]], str]:
    fleet = tmp_path / "fleet"
    fleet.write_text(FLEET)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    code = "import sys; from autopkgtest_hw.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["route", "--fleet", str(fleet), "--sources", str(index), "--no-broker", "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True, text=True, check=False, preexec_fn=limit, cwd=ROOT,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_a_gzip_of_newlines_is_streamed_within_bounded_memory(tmp_path: Path) -> None:
    index = tmp_path / "Sources.gz"
    with gzip.open(index, "wb", compresslevel=9) as f:
        block = b"\n" * (1 << 20)
        for _ in range(96):
            f.write(block)
        f.write(STANZA.format("after").encode())
    rc, out, _ = _route(tmp_path, index)
    assert rc == 0
    assert [j["package"] for j in out["jobs"]] == ["after"]


def test_one_huge_stanza_is_one_error_naming_it_and_the_others_route(tmp_path: Path) -> None:
    index = tmp_path / "Sources"
    with open(index, "w") as f:
        f.write(STANZA.format("before") + "\n")
        f.write(STANZA.format("huge") + "Description: x\n")
        line = " " + "x" * 1023 + "\n"
        for _ in range(MAX_STANZA // 1024 + 1024):
            f.write(line)
        f.write("\n" + STANZA.format("after"))
    rc, out, _ = _route(tmp_path, index)
    assert rc == 1  # an error is reported
    assert sorted(j["package"] for j in out["jobs"]) == ["after", "before"]
    [error] = out["errors"]
    assert error["package"] == "huge"
    assert "stanza 2 (line 6)" in error["origin"]
    assert f"larger than {MAX_STANZA >> 20} MiB" in error["error"]


def test_a_stanza_that_is_not_utf8_is_its_own_error(tmp_path: Path) -> None:
    index = tmp_path / "Sources"
    index.write_bytes(
        (STANZA.format("good") + "\n").encode()
        + STANZA.format("bad").encode()
        + b"Requires-Hwspec: cuda\xff\n\n"
        + STANZA.format("good2").encode()
    )
    entries = list(read_sources_index(str(index)))
    assert [(e.package, e.error is None) for e in entries] == [
        ("good", True),
        ("bad", False),
        ("good2", True),
    ]
    assert "stanza 2 (line 6): Requires-Hwspec is not UTF-8" in (entries[1].error or "")


def test_folded_fields_and_line_numbers_are_read_like_deb822(tmp_path: Path) -> None:
    index = tmp_path / "Sources"
    index.write_text(
        "\n\n" + STANZA.format("a") + "Requires-Hwspec: cuda,\n rocm\n\n\n"
        "package: b\nversion: 2\nTESTSUITE: autopkgtest\n"
    )
    a, b = read_sources_index(str(index))
    assert a.hwspecs == ("cuda", "rocm") and a.origin.endswith("stanza 1 (line 3)")
    assert (b.package, b.version, b.has_tests) == ("b", "2", True)
    assert b.origin.endswith("stanza 2 (line 11)")
