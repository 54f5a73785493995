"""Holder records: written, read back, validated, verified against the kernel, escaped."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.base.duration import format_duration, parse_duration
from autopkgtest_hw.locks import holders, tickets
from autopkgtest_hw.locks.allocate import AllocationError, acquire, lock_name
from autopkgtest_hw.locks.holders import Holder, format_record, parse_record
from autopkgtest_hw.spec.inventory import Device

ME = holders.user_name(os.getuid())
GPU = Device(classes=("gpu",), model="GPU 0", pci_address="0000:01:00.0", device_nodes=("/x",))


def test_a_record_survives_the_round_trip() -> None:
    h = Holder(
        pid=42,
        kind="porterbox",
        user="alice",
        package="hwdemo",
        since=1_764_320_000,
        until=1_764_327_200,
        argv="autopkgtest-hw shell --for 2h -- unshare",
    )
    line = format_record(h)
    assert line.startswith("hw1 pid=42 kind=porterbox user=alice ") and line.count("\n") == 1
    assert parse_record(line) == h


def test_forged_fields_are_dropped_not_trusted() -> None:
    line = (
        "hw1 pid=7 kind=root user=%1b%5b31mroot package=Bad_Name since=5 until=99999999999 argv=x\n"
    )
    h = parse_record(line)
    assert h == Holder(pid=7, kind="unknown", argv="x")
    assert parse_record("hw1 pid=0 kind=ci\n") is None
    assert parse_record("hw1 kind=ci\n") is None
    assert parse_record("garbage\n") is None


def test_old_lines_are_still_read() -> None:
    assert parse_record("4242 /usr/bin/autopkgtest-virt-hwgpu null\n") == Holder(
        pid=4242, argv="/usr/bin/autopkgtest-virt-hwgpu null"
    )


def test_describe_escapes_what_came_from_the_file() -> None:
    h = parse_record(format_record(Holder(pid=1, kind="ci", argv="evil\x1b]0;owned\x07 run")))
    assert h is not None
    text = h.describe()
    assert "\x1b" not in text and "\x07" not in text
    assert "evil\\x1b]0;owned\\x07 run" in text


def test_the_kernel_confirms_the_holder_and_catches_a_forged_user(tmp_path: Path) -> None:
    path = tmp_path / "dev.lock"
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(format_record(holders.for_this_process("ci", "hwdemo")))
        f.write(format_record(Holder(pid=os.getpid(), kind="porterbox", user="nobody-else")))
        f.flush()
        assert holders.flock_pids(str(path)) == {os.getpid()}
        real, forged = holders.live_holders(str(path))
    assert real.verified and real.user == ME and real.package == "hwdemo"
    if ME != "root":  # root may act for anybody (sudo)
        assert not forged.verified
        assert f"unverified: the process belongs to {ME}" in forged.describe()
    dead = Holder(pid=2**22 + 12345, kind="ci")
    path.write_text(format_record(dead))
    assert holders.live_holders(str(path)) == []


def test_acquire_writes_a_porterbox_record_with_until(tmp_path: Path) -> None:
    record = holders.for_this_process("porterbox", None, hold_for=1800)
    alloc = acquire([GPU], None, str(tmp_path), holder=record)
    try:
        [h] = holders.live_holders(str(tmp_path / lock_name(GPU)))
        assert h.kind == "porterbox" and h.user == ME and h.verified
        assert h.since is not None and h.until == h.since + 1800
        assert "porterbox session of" in h.describe() and " until " in h.describe()
    finally:
        alloc.release()


def test_a_waiter_that_asked_first_is_served_first(tmp_path: Path) -> None:
    """A free device is left to the run that queued for it before us."""
    earlier = tickets.Ticket(str(tmp_path), [lock_name(GPU)], holders.for_this_process())
    try:
        with pytest.raises(AllocationError, match=r"is free, 1 waiting before us"):
            acquire([GPU], None, str(tmp_path))
    finally:
        earlier.leave()
    acquire([GPU], None, str(tmp_path)).release()


def test_tickets_are_ordered_and_a_dead_waiters_ticket_is_ignored(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from autopkgtest_hw.locks import tickets, holders\n"
        f"t = tickets.Ticket({str(tmp_path)!r}, ['a.lock'], holders.for_this_process())\n"
        "print(t.number, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = int(proc.stdout.readline())
    mine = tickets.Ticket(str(tmp_path), ["a.lock", "b.lock"], holders.for_this_process())
    try:
        assert mine.number > first
        qdir = str(tmp_path / tickets.QUEUE)
        assert [w.number for w in tickets.waiters(qdir, "a.lock")] == [first, mine.number]
        assert not mine.first_in_line("a.lock") and mine.first_in_line("b.lock")
        proc.kill()
        proc.wait()
        assert mine.first_in_line("a.lock")  # the dead waiter's ticket no longer counts
        assert [w.number for w in tickets.waiters(qdir)] == [mine.number]
    finally:
        mine.leave()
        proc.stdout.close()
    assert tickets.waiters(str(tmp_path / tickets.QUEUE)) == []


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "-5m", "5x", "1000d", "m"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (90, 3600, 5400, 0)] == ["1m30s", "1h", "1h30m", "0s"]
