"""The spec language: every SPEC.md example, the errors a maintainer sees, no crash on any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autopkgtest_hw.spec.language import SpecError, parse, parse_size, parse_version

# Every example of the spec document, with the reading it must have:
# (token, class of each alternative, {key: (op, values)} of the first alternative)
SPEC_EXAMPLES = [
    ("needs-hw:cuda", ["cuda"], {}),
    ("needs-hw:cuda:cc>=8.0", ["cuda"], {"cc": (">=", ("8.0",))}),
    ("needs-hw:cuda:sm_90", ["cuda"], {"arch": ("=", ("sm_90",))}),
    ("needs-hw:cuda:cc>=7.0:mem>=16G", ["cuda"], {"cc": (">=", ("7.0",)), "mem": (">=", ("16G",))}),
    ("needs-hw:cuda:count>=2", ["cuda"], {"count": (">=", ("2",))}),
    ("needs-hw:rocm:gfx90a", ["rocm"], {"arch": ("=", ("gfx90a",))}),
    ("needs-hw:rocm:arch=gfx1030/gfx1100", ["rocm"], {"arch": ("=", ("gfx1030", "gfx1100"))}),
    ("needs-hw:cuda|rocm", ["cuda", "rocm"], {}),
    ("needs-hw:opencl", ["opencl"], {}),
    ("needs-hw:opencl:type=cpu", ["opencl"], {"type": ("=", ("cpu",))}),
    (
        "needs-hw:opencl:type=any:fp64",
        ["opencl"],
        {"type": ("=", ("any",)), "feature": ("=", ("fp64",))},
    ),
    ("needs-hw:gpu:vendor=intel", ["gpu"], {"vendor": ("=", ("intel",))}),
    ("needs-hw:cpu:avx512f", ["cpu"], {"feature": ("=", ("avx512f",))}),
    ("needs-hw:cpu:cores>=8:mem>=32G", ["cpu"], {"cores": (">=", ("8",)), "mem": (">=", ("32G",))}),
]


@pytest.mark.parametrize(("token", "classes", "constraints"), SPEC_EXAMPLES)
def test_spec_examples_parse_to_their_reading(token, classes, constraints):
    spec = parse(token)
    assert [a.device_class for a in spec.alternatives] == classes
    got = {c.key: (c.op, c.values) for c in spec.alternatives[0].constraints}
    assert got == constraints
    assert spec.text == token.removeprefix("needs-hw:")


@pytest.mark.parametrize(
    ("text", "message", "column", "suggestion"),
    [
        ("cdua", "unknown class 'cdua'", 1, "cuda"),
        ("needs-hw:cdua", "unknown class 'cdua'", 10, "cuda"),
        ("rocm:gfx90a|opencl:typ=cpu", "unknown key 'typ'", 20, "type=cpu"),
        ("cuda:vram>=16G", "unknown key 'vram'", 6, "mem>=16G"),
        ("cuda:mem>=16", "mem needs a unit", 11, "16G"),
        ("cuda:cc>=eight", "cc needs a version", 10, None),
        ("cuda:arch>=sm_80", "cannot be compared", 6, "cc>=8.0"),
        ("rocm:cc>=8.0", "does not apply to class 'rocm'", 6, None),
        ("rocm:sm_90", "needs class cuda", 6, None),
        ("cuda:gfx90a", "needs class rocm", 6, None),
        ("cuda:", "empty constraint", 5, None),
        ("cuda||rocm", "empty alternative", 5, None),
        ("cuda:cc>=8.0,mem>=4G", "a comma is not allowed", 13, None),
        ("cuda cc>=8.0", "whitespace is not allowed", 5, None),
        ("cuda:count>=2/3", "'/' alternatives need", 11, None),
        ("opencl:type=gpuu", "type must be one of", 13, "gpu"),
        ("cuda:cc=>8.0", "malformed operator", 8, None),
        ("cuda:=8.0", "has no key", 6, None),
        ("cuda:cc>=", "has no value", 8, None),
        ("cuda:fast", "neither a constraint", 6, None),
        ("", "empty spec", 1, "cpu"),
    ],
)
def test_errors_name_token_column_and_fix(text, message, column, suggestion):
    with pytest.raises(SpecError) as info:
        parse(text)
    err = info.value
    assert message in err.message
    assert err.column == column
    assert err.suggestion == suggestion
    shown = str(err)
    assert repr(text) in shown and f"column {column}" in shown
    if suggestion:
        assert f"did you mean {suggestion!r}?" in shown


def test_unknown_well_formed_key_is_not_an_error_but_is_flagged():
    spec = parse("cuda:nvlink>=4")
    assert spec.unknown_keys == ("nvlink",)


def test_values_globs_and_lists():
    spec = parse("gpu:model=*h100*/*a100*:vendor!=amd")
    model, vendor = spec.alternatives[0].constraints
    assert model.values == ("*h100*", "*a100*")
    assert (vendor.op, vendor.values) == ("!=", ("amd",))


def test_glob_only_for_text_keys():
    with pytest.raises(SpecError, match="globs only work for text keys"):
        parse("cuda:cc=8.*")


def test_sizes_and_versions():
    assert parse_size("16G") == 16 * 10**9  # decimal, as cards are sold
    assert parse_size("16GB") == 16 * 10**9
    assert parse_size("1.5T") == 15 * 10**11
    assert parse_size("16Gi") == 16 << 30  # binary
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("4k") == 4000
    assert parse_version("535.104.05") == (535, 104, 5)
    assert parse_version("12.4") == (12, 4)


@settings(max_examples=3000, deadline=None)
@given(st.text(max_size=40))
def test_no_input_crashes_the_parser(text):
    try:
        parse(text)
    except SpecError as err:
        assert str(err).startswith("invalid hardware spec")


ALPHABET = "cudarocmpenlgsyvkatf:|=<>!/*._-+0123456789GMKT ,x"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=30))
def test_no_near_miss_crashes_the_parser(text):
    try:
        spec = parse(text)
    except SpecError as err:
        assert 0 <= err.position <= len(text)
    else:
        assert spec.alternatives


def test_pci_ids_keep_their_colon():
    (alt,) = parse("gpu:pci=10de:2330/10de:2331:mem>=8G").alternatives
    pci, mem = alt.constraints
    assert (pci.key, pci.values) == ("pci", ("10de:2330", "10de:2331"))
    assert mem.key == "mem"
    (alt,) = parse("gpu:pci=10de:*").alternatives
    assert alt.constraints[0].values == ("10de:*",)
