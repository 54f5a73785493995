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


def test_no_code_point_comes_out_unprintable() -> None:
    """All of Unicode, lone surrogates included: what is not printable comes out as ASCII."""
    for code in range(0x110000):
        ch = chr(code)
        out = escape(ch)
        assert out.isprintable(), hex(code)
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            assert out.isascii() and out != ch, hex(code)


def test_a_log_message_with_a_hostile_string_stays_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.setup("autopkgtest-hw")
    log.error(safe("evil\nautopkgtest-hw: hwbuild: forged\u2028\x85\r\x1b[2J\u202e"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("autopkgtest-hw: error: evil\\n")
    assert not any(ch in err for ch in "\u2028\x85\r\x1b\u202e")
