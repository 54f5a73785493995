"""Nominal memory: a card is compared by the size it was sold as (issue 19, item 2).

The reported totals are what nvidia-smi and the kernel report for these
cards (tests/data/nvidia-smi for the P4 and the K80; the A100 40 GB,
H100 80 GB HBM3 and MI210 figures from their drivers' memory totals).
"""

from __future__ import annotations

import dataclasses

import pytest

from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match
from autopkgtest_hw.spec.sizes import nominal

from .devices import MI210, T4, inv

MiB = 1 << 20
GiB = 1 << 30


def _mem(reported: int, token: str, device=T4) -> bool:  # type: ignore[no-untyped-def]
    card = dataclasses.replace(device, memory=reported)
    return match(parse(token), inv(card)).satisfied


@pytest.mark.parametrize(
    ("what", "reported", "sold", "not_sold"),
    [
        ("Tesla P4 (8 GB, ECC)", 7611 * MiB, "8G", "9G"),
        ("Tesla K80, one GPU (12 GB, ECC)", 11441 * MiB, "12G", "13G"),
        ("Tesla T4 (16 GB)", 15360 * MiB, "16G", "17G"),
        ("A100 40 GB", 40960 * MiB, "40G", "44G"),
        ("H100 80 GB HBM3", 81559 * MiB, "80G", "86G"),
        ("MI210 (64 GB)", 64 * GiB, "64G", "69G"),
    ],
)
def test_a_card_holds_the_size_it_is_sold_with(
    what: str, reported: int, sold: str, not_sold: str
) -> None:
    assert _mem(reported, f"cuda:mem>={sold}"), what
    assert not _mem(reported, f"cuda:mem>={not_sold}"), what


def test_an_8gb_card_never_satisfies_10g() -> None:
    for reported in range(7 * GiB, 8 * GiB + 1, 64 * MiB):
        assert not _mem(reported, "cuda:mem>=10G")
        assert nominal(reported) <= 8 * GiB


def test_a_card_far_below_a_whole_gib_keeps_its_reported_size() -> None:
    assert nominal(7 * GiB + 300 * MiB) == 7 * GiB + 300 * MiB
    assert not _mem(7 * GiB + 300 * MiB, "cuda:mem>=8G")


def test_rocm_cards_are_compared_the_same_way() -> None:
    assert _mem(64 * GiB - 300 * MiB, "rocm:mem>=64Gi", MI210)


def test_the_verdict_shows_the_reported_and_the_nominal_size() -> None:
    card = dataclasses.replace(T4, model="Tesla P4", memory=7611 * MiB)
    m = match(parse("cuda:mem>=9G"), inv(card))
    assert not m.satisfied
    assert "mem 7.98G (nominal 8.58G)" in m.message
