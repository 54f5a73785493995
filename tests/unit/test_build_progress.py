"""build_progress: the phases of an sbuild run, read from its log as sbuild writes it."""

from __future__ import annotations

import os
from pathlib import Path

from autopkgtest_hw.source.build_progress import Progress


def section(title: str) -> str:
    """A section header as sbuild's log_subsection writes it."""
    rule = "+" + "-" * 78 + "+\n"
    return f"\n{rule}| {title}{' ' * (76 - len(title))} |\n{rule}\n"


def subsection(title: str) -> str:
    """A sub-sub-section as sbuild's log_subsubsection writes it."""
    return f"\n{title}\n{'-' * len(title)}\n\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_phases_with_the_time_each_took_and_the_log(tmp_path: Path) -> None:
    said: list[str] = []
    clock = Clock()
    progress = Progress("hwbuild", str(tmp_path), said.append, clock=clock)
    progress.look()  # no log yet
    (tmp_path / "other_1.0_amd64-2026-01-01T00:00:00Z.build").write_text(section("Build"))
    log = tmp_path / "hwbuild_1.0_amd64-2026-12-03T11:26:07Z.build"
    os.symlink(log.name, tmp_path / "hwbuild_1.0_amd64.build")
    with open(log, "w") as f:
        f.write("sbuild (Debian sbuild) 0.85.0\n" + section("Update chroot"))
        f.flush()
        progress.look()
        clock.now += 9
        f.write(section("Fetch source files") + section("Install package build dependencies"))
        f.write("Setting up pocl-opencl-icd ...\n| Build |\n")  # a table row is no section
        f.flush()
        progress.look()
        clock.now += 21
        f.write(section("Build") + "dpkg-buildpackage\n-----------------\n")
        head = subsection("autopkgtest")
        f.write(head[:18])  # half a line: the rest comes later
        f.flush()
        progress.look()
        clock.now += 75
        f.write(head[18:] + "vadd                 PASS\n" + section("Cleanup"))
        f.write(section("Summary"))
        f.flush()
        progress.look()
        clock.now += 2
    progress.finish(0)
    assert said == [
        "hwbuild: testbed: sbuild is opening the build's testbed",
        f"hwbuild: sbuild log: {log}",
        "hwbuild: dependencies (testbed took 9 s)",
        "hwbuild: build (dependencies took 21 s)",
        "hwbuild: autopkgtest (build took 1 min 15 s)",
        "hwbuild: cleanup (autopkgtest took 0 s)",
        "hwbuild: sbuild exited 0 after 1 min 47 s"
        " (testbed 9 s, dependencies 21 s, build 1 min 15 s, autopkgtest 0 s, cleanup 2 s)",
        f"hwbuild: sbuild log: {log}",
    ]


def test_on_a_terminal_only_the_log_is_said_and_a_missing_log_is_said(tmp_path: Path) -> None:
    said: list[str] = []
    progress = Progress("hwbuild", str(tmp_path), said.append, phases=False)
    log = tmp_path / "hwbuild_1.0_amd64-2026-12-03T11:26:07Z.build"
    log.write_text(section("Install package build dependencies") + section("Build"))
    progress.look()
    progress.finish(2)
    assert said[-1] == f"hwbuild: sbuild log: {log}"
    assert [s for s in said if "took" in s] == []
    assert said[0].startswith("hwbuild: sbuild exited 2 after ")
    said.clear()
    empty = tmp_path / "empty"
    empty.mkdir()
    Progress("hwbuild", str(empty), said.append, phases=False).finish(1)
    assert said[-1] == f"hwbuild: no sbuild log of it in {empty}"


def test_a_hostile_log_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    said: list[str] = []
    log = tmp_path / "hwbuild_1.0_amd64-2026-12-03T11:26:07Z.build"
    with open(log, "wb") as f:
        f.write(b"x" * (10 << 20))  # one 10 MiB line
        f.write(section("Build").encode())
    progress = Progress("hwbuild", str(tmp_path), said.append)
    progress.look()  # 8 MiB of it
    progress.look()
    progress.look()
    assert said[-1].startswith("hwbuild: build (testbed took")
    assert len(progress._partial) <= 4096
