"""base/text: the one escaper of strings from outside, checked against every control character."""

from __future__ import annotations

import unicodedata

import pytest

from autopkgtest_hw.base import log
from autopkgtest_hw.base.text import escape, safe

C0 = [chr(c) for c in range(0x20)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
DEL = ["\x7f"]
#: Line and paragraph separators, and every bidirectional control (Trojan Source).
SEPARATORS = ["\u2028", "\u2029"]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x61C)]
CONTROLS = C0 + DEL + C1 + SEPARATORS + BIDI


@pytest.mark.parametrize("ch", CONTROLS, ids=lambda ch: f"U+{ord(ch):04X}")
def test_every_control_character_is_escaped_visibly(ch: str) -> None:
    for out in (escape(f"a{ch}b"), safe(f"a{ch}b")):
        assert ch not in out
        assert out.startswith("a\\") and out.endswith("b")
        assert out.isascii() and out.isprintable()
    if ch != "\n":
        assert ch not in escape(f"a{ch}b", keep_newlines=True)


#: Every assigned code point (planes 0-2 and 14) and samples of the rest (unassigned, private).
SWEEP = [
    *range(0x30000),
    *range(0x30000, 0xE0000, 0x101),
    *range(0xE0000, 0xE1000),
    *range(0xF0000, 0x110000, 0x83),
    0x10FFFF,
]


def test_no_code_point_comes_out_unprintable() -> None:
    """Lone surrogates included: what is not printable comes out as printable ASCII."""
    everything = "".join(map(chr, SWEEP))
    out = escape(everything)
    assert out.isprintable()
    printable = {ch for ch in everything if ch.isprintable()}
    assert {ch for ch in out if not ch.isascii()} == {ch for ch in printable if not ch.isascii()}
    assert len(everything) - len(printable) > 60_000  # controls, surrogates, private, unassigned
    assert unicodedata.category("\U000e0001") == "Cf" and "\U000e0001" not in out


def test_a_log_message_with_a_hostile_string_stays_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.setup("autopkgtest-hw")
    log.error(safe("evil\nautopkgtest-hw: hwbuild: forged\u2028\x85\r\x1b[2J\u202e"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("autopkgtest-hw: error: evil\\n")
    assert not any(ch in err for ch in "\u2028\x85\r\x1b\u202e")
