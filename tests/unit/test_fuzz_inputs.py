"""Fuzz targets: the control reader and the inventory loader never crash (issue 9).

Whatever the bytes, reading a control file ends in a result or a
ControlError, and loading an inventory in an Inventory or an InventoryError;
an inventory that loads also renders on a terminal with no control character
left, and survives its JSON and capability round trips.  The number of inputs
is bounded for CI (tests/unit/fuzzing.py); see docs/security.md for the
release run.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from autopkgtest_hw.source.control import ControlError, read_source_control, read_tests_control
from autopkgtest_hw.spec.inventory import Inventory, InventoryError
from autopkgtest_hw.spec.render import describe_device, inventory_table

from .fuzzing import fuzz_settings

_CONTROL_WORDS = [
    b"Tests: ",
    b"Test-Command: ",
    b"Restrictions: ",
    b"Features: ",
    b"Depends: ",
    b"Source: ",
    b"Package: ",
    b"X-Requires-Hwspec: ",
    b"needs-hw:cuda:cc>=8.0",
    b"test-name=",
    b"\n",
    b"\n\n",
    b" ",
    b"\t",
    b",",
    b"#",
    b":",
    b"\r",
    b"\x0c",
    "\u2028".encode(),
    "\x85".encode(),
    b"\xff",
    b"-----BEGIN PGP SIGNED MESSAGE-----\n",
]

control_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(_CONTROL_WORDS), max_size=40).map(b"".join),
)


@fuzz_settings
@given(control_bytes)
def test_fuzz_control_reader(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "control"
        path.write_bytes(data)
        for read in (read_tests_control, read_source_control):
            try:
                read(str(path))
            except ControlError as exc:
                assert str(exc)


_STRINGS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x1b[2J", "a\nfake-test PASS", "\ud800", "GPU-0", "/dev/nvidia0"]),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    _STRINGS,
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_STRINGS, inner, max_size=4),
    max_leaves=20,
)
_FIELDS = [
    "classes",
    "vendor",
    "model",
    "pci_address",
    "memory",
    "compute_capability",
    "device_nodes",
    "uuid",
    "mig_mode",
    "index",
    "opencl_extensions",
    "numa_node",
]
_DEVICE = st.dictionaries(
    st.sampled_from(_FIELDS),
    st.one_of(_JSON, st.lists(_STRINGS, max_size=4)),
    max_size=6,
)
_HOSTILE = st.one_of(
    _STRINGS, st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Zl", "Zp", "Cf"]))
)
#: Devices of the right shape whose strings are hostile: the rendering must escape them.
_TYPED_DEVICE = st.fixed_dictionaries(
    {"classes": st.lists(st.sampled_from(["gpu", "cuda", "rocm", "opencl", "x\n"]), max_size=3)},
    optional={
        "model": _HOSTILE,
        "vendor": _HOSTILE,
        "pci_address": _HOSTILE,
        "uuid": _HOSTILE,
        "device_nodes": st.lists(_HOSTILE, max_size=3),
        "memory": st.integers(min_value=0, max_value=2**62),
        "index": st.integers(min_value=0, max_value=64),
        "mig_mode": st.booleans(),
        "compute_capability": _HOSTILE,
        "opencl_platform": _HOSTILE,
        "opencl_type": st.sampled_from(["gpu", "cpu", "\x1b[2J"]),
    },
)
_INVENTORY = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), _SCALARS)},
    optional={
        "devices": st.one_of(
            st.lists(_TYPED_DEVICE, max_size=4), st.lists(_DEVICE, max_size=4), _JSON
        ),
        "cpu": st.one_of(
            st.dictionaries(st.sampled_from(["arch", "model", "cores", "memory", "flags"]), _JSON),
            _JSON,
        ),
        "detectors": _JSON,
    },
)


def _loaded(text: str) -> Inventory | None:
    try:
        return Inventory.from_json(text)
    except InventoryError as exc:
        assert str(exc)
        return None


#: Well-formed inventories of hostile devices (most inputs above are rightly refused).
_GOOD_INVENTORY = st.fixed_dictionaries(
    {"version": st.just(1), "devices": st.lists(_TYPED_DEVICE, min_size=1, max_size=4)}
)


@fuzz_settings
@given(
    st.one_of(_GOOD_INVENTORY.map(json.dumps), _INVENTORY.map(json.dumps), st.text(max_size=200))
)
def test_fuzz_inventory_loader(text: str) -> None:
    inv = _loaded(text)
    if inv is None:
        return
    assert Inventory.from_json(inv.to_json()) == inv
    shown = inventory_table(inv) + "".join(describe_device(d) for d in inv.devices)
    assert not any(ch in shown for ch in "\x1b\x07\r\x85\u2028") and "\ud800" not in shown
    back = Inventory.from_capabilities(inv.to_capabilities())
    assert back is not None and back.devices == inv.devices


@fuzz_settings
@given(st.binary(max_size=300))
def test_fuzz_inventory_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inv.json"
        path.write_bytes(data)
        try:
            Inventory.load(str(path))
        except InventoryError as exc:
            assert str(exc)
