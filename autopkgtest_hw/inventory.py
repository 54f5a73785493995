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
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from . import classes as hw_classes
from .errors import HwError

SCHEMA_VERSION = 1

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

    def of_class(self, device_class: str) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if device_class in d.classes)

    def classes(self) -> tuple[str, ...]:
        """Every class this inventory satisfies (``cpu`` always)."""
        present = {c for d in self.devices for c in d.classes}
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
        if version != SCHEMA_VERSION:
            raise InventoryError(
                f"inventory version {version!r} is not supported"
                f" (this version reads {SCHEMA_VERSION})"
            )
        try:
            return cls(
                cpu=Cpu.from_dict(data.get("cpu") or {}),
                devices=tuple(Device.from_dict(d) for d in data.get("devices") or ()),
                detectors=tuple(DetectorReport.from_dict(r) for r in data.get("detectors") or ()),
            )
        except (TypeError, AttributeError) as exc:
            raise InventoryError(f"malformed inventory: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InventoryError(f"not JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str) -> Inventory:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from None
        try:
            return cls.from_json(text)
        except InventoryError as exc:
            raise InventoryError(f"{path}: {exc}") from None

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
        return cls(cpu=cpu or Cpu(), devices=tuple(devices), detectors=(report,))


def _quote_json(data: Mapping[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(data, separators=(",", ":")), safe="")


def _unquote_json(word: str) -> dict[str, Any]:
    try:
        data = json.loads(urllib.parse.unquote(word))
    except json.JSONDecodeError as exc:
        raise InventoryError(f"malformed hardware capability: {exc}") from None
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


def _from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    if not isinstance(data, Mapping):
        raise InventoryError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue  # a newer version's field: ignore, stay readable
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
