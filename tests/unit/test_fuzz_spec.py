"""Fuzzing the spec parser and matcher: any input gives a Spec or a SpecError, never a crash.

Hypothesis builds specs from the grammar's own pieces (classes, keys,
operators, values of every type, units, ROCm targets, globs, substitution
variables) glued with its separators, mixed with arbitrary text, and matches
each one that parses against inventories of several kinds of hosts.

CI runs a bounded number of inputs (AUTOPKGTEST_HW_FUZZ_EXAMPLES, default
1500 per test).  Before a release, run a million (docs/spec-language.md,
"Fuzzing"): ``AUTOPKGTEST_HW_FUZZ_EXAMPLES=1000000 .venv/bin/python -m pytest
-q -p no:cacheprovider tests/unit/test_fuzz_spec.py``; the bar is zero
failures.
"""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autopkgtest_hw.spec import classes
from autopkgtest_hw.spec.inventory import Cpu, Inventory
from autopkgtest_hw.spec.language import SpecError, parse
from autopkgtest_hw.spec.matcher import match, unanswerable

from .devices import ARC, CPU, H100_OPENCL, MI210, POCL, T4

EXAMPLES = int(os.environ.get("AUTOPKGTEST_HW_FUZZ_EXAMPLES", "1500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)

INVENTORIES = (
    Inventory(),
    Inventory(cpu=CPU, devices=(T4, POCL)),
    Inventory(cpu=CPU, devices=(H100_OPENCL, MI210, ARC)),
    Inventory(
        cpu=Cpu(arch="arm64"),
        devices=(
            dataclasses.replace(
                MI210,
                arch="gfx1030",
                vulkan_version="1.3",
                video_decode=("h264",),
                video_known=("decode",),
                sources=("udev", "vulkan"),
                pci_class="0x030000",
            ),
        ),
    ),
)

WORDS = [
    *classes.NAMES,
    *classes.KEYS,
    *classes.CODECS,
    "cdua",
    "vram",
    "sm_90",
    "sm_8",
    "gfx90a",
    "gfx1030",
    "gfx10-3-generic",
    "gfx13-generic",
    "xnack+",
    "sramecc-",
    "fp64",
    "avx512f",
    "any",
    "nouveau",
    "nvidia",
    "${rocm:GPU-Architecture}",
    "${",
    "needs-hw:",
    "10de:2330",
    "*h100*",
    "**",
    "",
]
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**30).map(str),
    st.from_regex(r"\d{1,6}(\.\d{1,8}){0,4}", fullmatch=True),
    st.integers(min_value=1, max_value=5000).map(lambda n: "9" * n),
)
UNITS = st.sampled_from(["", "K", "M", "G", "T", "Ki", "Gi", "KB", "GB", "GiB", "TiB", "g", "X"])
OPS = st.sampled_from([">=", "<=", "!=", "=", ">", "<", "=>", "==", "", "=<"])
SEPARATORS = st.sampled_from([":", "|", "/", "", ",", " ", "::", "||", "\n"])
VALUE = st.one_of(
    st.builds(lambda n, u: n + u, NUMBERS, UNITS),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
CONSTRAINT = st.one_of(
    st.builds(lambda k, o, v: f"{k}{o}{v}", st.sampled_from(WORDS), OPS, VALUE),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
SPEC = st.builds(
    lambda head, parts: head + "".join(sep + part for sep, part in parts),
    st.sampled_from(WORDS),
    st.lists(st.tuples(SEPARATORS, CONSTRAINT), max_size=8),
)


def check(text: str) -> None:
    try:
        spec = parse(text)
    except SpecError as err:
        message = str(err)
        assert message.startswith("invalid hardware spec")
        assert 0 <= err.position <= len(text) + 1
        assert len(message) < 2000
        return
    assert spec.alternatives
    unanswerable(spec)
    for inventory in INVENTORIES:
        verdict = match(spec, inventory, subject="testbed")
        assert isinstance(verdict.message, str) and verdict.spec == spec.text


@FUZZ
@given(SPEC)
def test_specs_built_from_the_grammar_never_crash(text: str) -> None:
    check(text)


@FUZZ
@given(st.text(max_size=60))
def test_any_text_never_crashes(text: str) -> None:
    check(text)
    check("needs-hw:" + text)
