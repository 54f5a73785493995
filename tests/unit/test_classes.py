"""The class table (autopkgtest_hw/spec/classes.py) is whole: every entry is wired through.

A class or key added there must parse, match and explain itself without any
other list to update; these tests fail when an entry names something that
does not exist.
"""

from __future__ import annotations

import pytest

from autopkgtest_hw.detect import DETECTORS
from autopkgtest_hw.detect.base import registered
from autopkgtest_hw.detect.merge import priority
from autopkgtest_hw.spec import classes
from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import SpecError, parse
from autopkgtest_hw.spec.matcher import match

#: A valid value of each key type.
SAMPLE = {
    classes.STRING: "x",
    classes.SIZE: "1G",
    classes.INT: "1",
    classes.VERSION: "1.0",
}
#: Keys whose values are a fixed list: their first choice is valid.
LISTED = (classes.CHOICE, classes.SET)


def test_every_class_has_a_unique_name_and_a_display_name() -> None:
    names = [c.name for c in classes.CLASSES]
    assert len(set(names)) == len(names)
    for c in classes.CLASSES:
        assert c.display.strip(), c.name
        assert classes.get(c.name) is c
    assert [c.name for c in classes.CLASSES if c.is_machine] == ["cpu"]


def test_every_class_is_informed_by_registered_detectors() -> None:
    known = {d.name for d in registered()}
    for c in classes.CLASSES:
        assert c.detectors, f"{c.name} names no detector"
        assert set(c.detectors) <= known, f"{c.name}: {c.detectors} not in {sorted(known)}"


def test_every_key_names_existing_classes_and_a_known_type() -> None:
    for key in classes.KEYS.values():
        assert key.kind in classes.KINDS, key.name
        assert key.classes, f"{key.name} applies to no class"
        if isinstance(key.scope, tuple):
            assert set(key.scope) <= set(classes.NAMES), key.name
        if key.kind == classes.CHOICE:
            assert key.choices and set(key.default) <= set(key.choices), key.name
        if key.name != classes.COUNT:
            applies_to_devices = any(c in classes.DEVICE_CLASSES for c in key.classes)
            assert (key.device is not None) == applies_to_devices, key.name
            assert (key.cpu is not None) == ("cpu" in key.classes), key.name


@pytest.mark.parametrize("cls", classes.NAMES)
def test_every_class_parses_matches_and_names_itself(cls: str) -> None:
    verdict = match(parse(cls), Inventory())
    assert verdict.satisfied == classes.get(cls).is_machine
    assert classes.get(cls).display in verdict.detail or cls == "cpu"


@pytest.mark.parametrize(
    ("key", "cls"), [(k.name, c) for k in classes.KEYS.values() for c in k.classes]
)
def test_every_key_parses_and_matches_on_each_of_its_classes(key: str, cls: str) -> None:
    known = classes.KEYS[key]
    value = known.choices[0] if known.kind in LISTED else SAMPLE[known.kind]
    spec = parse(f"{cls}:{key}={value}")
    assert spec.alternatives[0].constraint(key) is not None
    match(spec, Inventory())  # never a KeyError for a key the table declares


def test_a_key_is_refused_on_a_class_outside_its_scope() -> None:
    for key in classes.KEYS.values():
        for cls in set(classes.NAMES) - set(key.classes):
            with pytest.raises(SpecError, match="does not apply to class"):
                parse(f"{cls}:{key.name}=1")


def test_detectors_run_in_their_registered_order_and_the_merge_trusts_as_before() -> None:
    assert DETECTORS == ("cpu", "udev", "nvml", "opencl", "vulkan", "vaapi")
    # The CPU detector reports no device: where it ranks does not matter.
    assert [n for n in priority("model") if n != "cpu"] == [
        "nvml",
        "udev",
        "opencl",
        "vulkan",
        "vaapi",
    ]
    assert [n for n in priority("memory") if n != "cpu"] == [
        "nvml",
        "udev",
        "opencl",
        "vulkan",
        "vaapi",
    ]
    assert [n for n in priority("driver") if n != "cpu"] == [
        "udev",
        "nvml",
        "opencl",
        "vulkan",
        "vaapi",
    ]
    assert [n for n in priority("uuid") if n != "cpu"] == [
        "udev",
        "nvml",
        "opencl",
        "vulkan",
        "vaapi",
    ]
