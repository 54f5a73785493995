"""The device model: what a machine or a testbed has, and its stable forms.

An :class:`Inventory` is plain frozen data.  It has two encodings:

* a JSON document (``to_json``/``from_json``) with a ``version`` field, used
  by ``autopkgtest-hw detect --json`` and ``--inventory FILE``;
* virt-server capability words (``to_capabilities``/``from_capabilities``):
  ``hw:<class>`` for every class some device satisfies, one
  ``hw-device=<url-quoted JSON>`` per device and one ``hw-cpu=<url-quoted
  JSON>`` for the testbed's CPU.  The JSON is quoted inside the word so the
  word never holds a space, whatever autopkgtest does with it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from autopkgtest_hw.base import bounds, log
from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.spec import classes as hw_classes
from autopkgtest_hw.spec.hardware import DISPLAY_ONLY_DRIVERS

#: The format ``detect --json`` writes.  2: every reader classes devices from
#: their facts (PCI class, driver, detectors) by today's rules; the stored
#: ``classes`` are for people and jq.  1: the same fields, read by versions
#: that matched the stored classes; loaded by re-deriving them, with a
#: warning naming what changed or was inferred.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

CAP_CLASS_PREFIX = "hw:"
CAP_DEVICE_PREFIX = "hw-device="
CAP_CPU_PREFIX = "hw-cpu="


class InventoryError(HwError):
    """A saved inventory (file or capabilities) could not be read."""


class _Record:
    """The JSON form of the frozen records below: only set fields; unknown keys ignored."""

    def to_dict(self) -> dict[str, Any]:
        return _set_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Device(_Record):
    """One physical (or OpenCL-only) compute device.

    Every field but ``classes`` is optional: a detector fills what it knows
    and devices from several detectors merge by ``pci_address``.
    """

    classes: tuple[str, ...] = ()
    vendor: str | None = None  # nvidia, amd, intel, ... (lowercase)
    model: str | None = None  # marketing name as reported
    pci_address: str | None = None  # 0000:3b:00.0
    pci_id: str | None = None  # 10de:2330 (lowercase)
    pci_class: str | None = None  # 0x030200
    memory: int | None = None  # bytes
    arch: str | None = None  # sm_90, gfx90a
    compute_capability: str | None = None  # 9.0
    driver: str | None = None  # bound kernel driver: nvidia, amdgpu, i915
    driver_version: str | None = None  # 550.54.15
    cuda_version: str | None = None  # highest CUDA the driver supports: 12.4
    opencl_version: str | None = None  # 3.0
    opencl_type: str | None = None  # gpu, cpu, accelerator
    opencl_platform: str | None = None
    opencl_extensions: tuple[str, ...] = ()
    vulkan_version: str | None = None  # 1.3 (Vulkan loader's apiVersion, major.minor)
    video_decode: tuple[str, ...] = ()  # codecs: h264, hevc, av1, vp9, ...
    video_encode: tuple[str, ...] = ()
    video_known: tuple[str, ...] = ()  # "decode", "encode": which lists a detector filled
    device_nodes: tuple[str, ...] = ()  # /dev/nvidia0, /dev/dri/renderD128, /dev/kfd
    iommu_group: str | None = None
    numa_node: int | None = None
    uuid: str | None = None
    mig_mode: bool | None = None
    index: int | None = None  # NVML index, where known
    sources: tuple[str, ...] = ()  # detectors that reported this device

    @property
    def label(self) -> str:
        """A short human name: the model, else the PCI id, else the address."""
        return self.model or self.pci_id or self.pci_address or "unknown device"

    @property
    def ident(self) -> str:
        """A stable identity for locks and logs: UUID, PCI address, or model."""
        return self.uuid or self.pci_address or f"{self.opencl_platform}/{self.model}"


@dataclass(frozen=True)
class Cpu(_Record):
    """The machine itself: what the ``cpu`` class reads."""

    arch: str | None = None  # dpkg architecture: amd64, arm64
    model: str | None = None
    vendor: str | None = None  # intel, amd, arm, ...
    flags: tuple[str, ...] = ()
    cores: int | None = None  # logical CPUs
    memory: int | None = None  # bytes of RAM


@dataclass(frozen=True)
class DetectorReport(_Record):
    """What one detector did: ``ok``, ``unavailable`` (with why) or ``error``."""

    name: str
    status: str
    detail: str = ""
    devices: int = 0  # every field is written, even "" and 0


@dataclass(frozen=True)
class Inventory:
    cpu: Cpu = field(default_factory=Cpu)
    devices: tuple[Device, ...] = ()
    detectors: tuple[DetectorReport, ...] = ()
    #: What loading a saved inventory inferred or changed (warnings for people).
    notes: tuple[str, ...] = field(default=(), compare=False)

    def of_class(self, device_class: str) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if device_class in hw_classes.current_classes(d))

    def classes(self) -> tuple[str, ...]:
        """Every class this inventory satisfies (``cpu`` always), by today's rules."""
        present = {c for d in self.devices for c in hw_classes.current_classes(d)}
        return tuple(c.name for c in hw_classes.CLASSES if c.is_machine or c.name in present)

    # -- JSON ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "cpu": self.cpu.to_dict(),
            "devices": [d.to_dict() for d in self.devices],
            "detectors": [r.to_dict() for r in self.detectors],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any) -> Inventory:
        if not isinstance(data, dict):
            raise InventoryError("an inventory is a JSON object")
        version = data.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:  # true == 1 in Python
            raise InventoryError(
                f"inventory version {_show(version)} is not supported (this version reads"
                f" {', '.join(map(str, READABLE_VERSIONS))}); run 'autopkgtest-hw detect --json'"
                " on the host again to save it in this version's format"
            )
        devices = _list_of(data, "devices")
        if len(devices) > bounds.MAX_DEVICES:
            raise InventoryError(f"{len(devices)} devices: at most {bounds.MAX_DEVICES} are read")
        cpu = data.get("cpu") or {}
        read = [Device.from_dict(d) for d in devices]
        classed, notes = _reclassed(read, version)
        return cls(
            cpu=Cpu.from_dict(cpu),
            devices=classed,
            detectors=tuple(DetectorReport.from_dict(r) for r in _list_of(data, "detectors")),
            notes=notes,
        )

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InventoryError(f"not JSON: {exc}") from None
        except RecursionError:
            raise InventoryError("not an inventory: JSON nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str) -> Inventory:
        try:
            raw = bounds.read_file(path, bounds.MAX_INVENTORY_BYTES)
        except OSError as exc:
            raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from None
        except bounds.InputTooLarge as exc:
            raise InventoryError(f"{path}: too large for an inventory: {exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InventoryError(
                f"{path}: not valid UTF-8 (byte {exc.start}); an inventory is UTF-8 JSON"
            ) from None
        try:
            inventory = cls.from_json(text)
        except InventoryError as exc:
            raise InventoryError(f"{path}: {exc}") from None
        for note in inventory.notes:
            log.warning(f"{path}: {note}")
        return inventory

    # -- virt-server capabilities ------------------------------------------

    def to_capabilities(self) -> list[str]:
        caps = [CAP_CLASS_PREFIX + c for c in self.classes() if c in hw_classes.DEVICE_CLASSES]
        caps += [CAP_DEVICE_PREFIX + _quote_json(d.to_dict()) for d in self.devices]
        caps.append(CAP_CPU_PREFIX + _quote_json(self.cpu.to_dict()))
        return caps

    @classmethod
    def from_capabilities(cls, caps: Iterable[str]) -> Inventory | None:
        """The testbed's inventory, or None if no hwgpu server advertised one."""
        devices: list[Device] = []
        cpu: Cpu | None = None
        for cap in caps:
            if cap.startswith(CAP_DEVICE_PREFIX):
                devices.append(Device.from_dict(_unquote_json(cap[len(CAP_DEVICE_PREFIX) :])))
            elif cap.startswith(CAP_CPU_PREFIX):
                cpu = Cpu.from_dict(_unquote_json(cap[len(CAP_CPU_PREFIX) :]))
        if cpu is None and not devices:
            return None
        report = DetectorReport(
            "capabilities", "ok", "from the testbed's capabilities", len(devices)
        )
        classed, _notes = _reclassed(devices, SCHEMA_VERSION)
        return cls(cpu=cpu or Cpu(), devices=classed, detectors=(report,))


def _reclassed(devices: list[Device], version: int) -> tuple[tuple[Device, ...], tuple[str, ...]]:
    """Each device with its classes by today's rules, and a note for each that changed.

    The one classing code path (``classes.current_classes``) decides; a note
    names what was inferred (a GPU from its driver where no PCI class was
    saved) or why a stored class no longer holds.
    """
    out: list[Device] = []
    notes: list[str] = []
    for i, d in enumerate(devices, 1):
        now = hw_classes.current_classes(d)
        inferred = hw_classes.gpu_by_driver(d) and "gpu" in now and bool(d.sources)
        if now != d.classes or (inferred and version < SCHEMA_VERSION):
            why = []
            if inferred:
                why.append(f"a GPU inferred from its driver {safe(d.driver)} (no PCI class saved)")
            if d.driver in DISPLAY_ONLY_DRIVERS:
                why.append(f"{safe(d.driver)} is a display-only driver, in no class")
            stored = ", ".join(safe(c) for c in d.classes) or "none"
            notes.append(
                f"device {i} ({safe(d.label)}), saved in format {version}: classed as"
                f" {', '.join(now) or 'no class'} by this version's rules (saved: {stored})"
                + (f"; {'; '.join(why)}" if why else "")
                + "; run 'autopkgtest-hw detect --json' on the host to save it again"
            )
            d = dataclasses.replace(d, classes=now)
        out.append(d)
    return tuple(out), tuple(notes)


def _quote_json(data: Mapping[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(data, separators=(",", ":")), safe="")


def _unquote_json(word: str) -> dict[str, Any]:
    try:
        data = json.loads(urllib.parse.unquote(word))
    except json.JSONDecodeError as exc:
        raise InventoryError(f"malformed hardware capability: {exc}") from None
    except RecursionError:
        raise InventoryError("malformed hardware capability: nested too deeply") from None
    if not isinstance(data, dict):
        raise InventoryError("malformed hardware capability: not a JSON object")
    return data


def _set_fields(obj: Any) -> dict[str, Any]:
    """Only the fields that are set, so the JSON stays small."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or value == ():
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


T = TypeVar("T")


def _from_dict(cls: type[T], data: Any) -> T:
    """``cls`` from a JSON object, every known field checked against its type and bounds."""
    if not isinstance(data, Mapping):
        raise InventoryError(f"{cls.__name__}: expected an object, got {_kind(data)}")
    hints = _hints(cls)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints:
            continue  # a newer version's field: ignore, stay readable
        kwargs[key] = _checked(cls.__name__, key, hints[key], value)
    try:
        return cls(**kwargs)
    except TypeError:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs]  # type: ignore[arg-type]
        raise InventoryError(f"{cls.__name__}: missing {', '.join(missing)}") from None


@functools.cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    """The field types of a record class (only its dataclass fields)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in fields}


def _checked(owner: str, key: str, hint: Any, value: Any) -> Any:
    """``value`` if it has the field's type (lists become tuples); else InventoryError."""
    optional = isinstance(hint, types.UnionType)
    if value is None and optional:
        return None
    target = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if typing.get_origin(target) is tuple:
        if not isinstance(value, list) or len(value) > bounds.MAX_LIST:
            raise InventoryError(
                f"{owner}.{key}: expected a list of at most {bounds.MAX_LIST} strings,"
                f" got {_kind(value)}"
            )
        return tuple(_string(owner, key, v) for v in value)
    if target is str:
        return _string(owner, key, value)
    if target is bool:
        if type(value) is not bool:
            raise InventoryError(f"{owner}.{key}: expected true or false, got {_kind(value)}")
        return value
    if target is int:
        if type(value) is not int or not 0 <= value < 2**63:
            raise InventoryError(
                f"{owner}.{key}: expected a whole number from 0 to 2^63, got {_kind(value)}"
            )
        return value
    raise InventoryError(f"{owner}.{key}: unexpected field type")  # pragma: no cover


def _string(owner: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InventoryError(f"{owner}.{key}: expected a string, got {_kind(value)}")
    if len(value) > bounds.MAX_STRING:
        raise InventoryError(
            f"{owner}.{key}: a string of {len(value)} characters (at most {bounds.MAX_STRING})"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InventoryError(
            f"{owner}.{key}: holds a lone surrogate (\\u{ord(value[_surrogate(value)]):04x}),"
            " which is not text"
        ) from None
    return value


def _surrogate(value: str) -> int:
    return next(i for i, ch in enumerate(value) if 0xD800 <= ord(ch) <= 0xDFFF)


def _list_of(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(f"inventory.{key}: expected a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    """What a JSON value is, for an error message (never the value itself: it may be huge)."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if type(value) is int and abs(value) < 10**9:
        return str(value)
    return _kind(value) if value is not None else "(missing)"
