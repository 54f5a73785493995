"""NVIDIA GPUs as the NVIDIA driver reports them, through NVML (nvidia-ml-py's ``pynvml``)."""

from __future__ import annotations

import os
from typing import Any

from autopkgtest_hw.detect.base import (
    OK,
    Unavailable,
    detector,
    no_devices,
    optional_module,
    plural,
)
from autopkgtest_hw.spec.hardware import NVIDIA_SHARED_NODES, normalise_address
from autopkgtest_hw.spec.inventory import DetectorReport, Device

NAME = "nvml"
#: Where the module comes from on Debian first (contrib), then PyPI's name for it.
NO_PYNVML = (
    "python3-pynvml is not installed (Debian contrib; in a virtualenv: nvidia-ml-py,"
    " never PyPI's deprecated pynvml)"
)


#: NVML's names are marketing names ("NVIDIA H100 PCIe") and its memory is the usable total.
@detector(NAME, order=20, empty=no_devices, trusted=("model", "memory"))
def detect() -> tuple[list[Device], DetectorReport]:
    pynvml = optional_module("pynvml", NO_PYNVML)
    try:
        pynvml.nvmlInit()
    except (
        pynvml.NVMLError_LibraryNotFound,
        pynvml.NVMLError_DriverNotLoaded,
        pynvml.NVMLError_NoPermission,
    ) as exc:
        raise Unavailable(str(exc)) from None
    problems: list[str] = []
    try:
        devices = _enumerate(pynvml, problems)
    finally:
        pynvml.nvmlShutdown()
    detail = "; ".join([plural(len(devices), "GPU"), *problems])
    return devices, DetectorReport(NAME, OK, detail, len(devices))


def _enumerate(nv: Any, problems: list[str]) -> list[Device]:
    """Every GPU NVML can read; one that fails (fallen off the bus) is named in ``problems``."""
    driver_version = _text(nv.nvmlSystemGetDriverVersion())
    cuda = _optional(nv, "nvmlSystemGetCudaDriverVersion")
    cuda_version = cuda_version_text(cuda) if cuda else None
    shared = tuple(n for n in NVIDIA_SHARED_NODES if os.path.exists(n))
    devices: list[Device] = []
    for index in range(nv.nvmlDeviceGetCount()):
        try:
            devices.append(_device(nv, index, driver_version, cuda_version, shared))
        except nv.NVMLError as exc:
            problems.append(f"GPU {index}: {exc}")
    return devices


def _device(
    nv: Any, index: int, driver_version: str, cuda_version: str | None, shared: tuple[str, ...]
) -> Device:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    bus_id = _text(nv.nvmlDeviceGetPciInfo(handle).busId)
    cc = _optional(nv, "nvmlDeviceGetCudaComputeCapability", handle)
    mig = _optional(nv, "nvmlDeviceGetMigMode", handle)
    minor = _optional(nv, "nvmlDeviceGetMinorNumber", handle)
    numa = _optional(nv, "nvmlDeviceGetNumaNodeId", handle)
    memory = _optional(nv, "nvmlDeviceGetMemoryInfo", handle)
    encoders = _encoders(nv, handle)
    return Device(
        vendor="nvidia",
        model=_text(nv.nvmlDeviceGetName(handle)),
        uuid=_text(nv.nvmlDeviceGetUUID(handle)),
        pci_address=normalise_address(bus_id),
        memory=int(memory.total) if memory is not None else None,
        compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
        arch=f"sm_{cc[0]}{cc[1]}" if cc else None,
        driver="nvidia",
        driver_version=driver_version,
        cuda_version=cuda_version,
        mig_mode=(mig[0] == nv.NVML_DEVICE_MIG_ENABLE) if mig is not None else None,
        index=index,
        numa_node=numa if isinstance(numa, int) and numa >= 0 else None,
        device_nodes=(f"/dev/nvidia{minor if minor is not None else index}", *shared),
        video_encode=encoders or (),
        video_known=("encode",) if encoders is not None else (),
        sources=(NAME,),
    )


#: NVML's encoder queries and the codec words of the spec language.
_ENCODER_QUERIES = (
    ("NVML_ENCODER_QUERY_H264", "h264"),
    ("NVML_ENCODER_QUERY_HEVC", "hevc"),
    ("NVML_ENCODER_QUERY_AV1", "av1"),
)


def _encoders(nv: Any, handle: Any) -> tuple[str, ...] | None:
    """The codecs NVENC encodes on this GPU; None when NVML cannot tell.

    NVML answers NOT_SUPPORTED for a codec the GPU cannot encode (an H100 has
    no NVENC at all); any capacity, even 0 % free while busy, means it can.
    NVML tells nothing about NVDEC's codecs: ``video:decode`` on NVIDIA needs
    VA-API (nvidia-vaapi-driver) on the host.
    """
    fn = getattr(nv, "nvmlDeviceGetEncoderCapacity", None)
    if fn is None:
        return None
    not_supported = getattr(nv, "NVMLError_NotSupported", ())
    found: list[str] = []
    for constant, codec in _ENCODER_QUERIES:
        query = getattr(nv, constant, None)
        if query is None:
            continue
        try:
            fn(handle, query)
        except not_supported:
            continue
        except nv.NVMLError:
            return None  # an older driver without the call, or a GPU that cannot say
        found.append(codec)
    return tuple(found)


def cuda_version_text(version: int) -> str:
    """NVML's 12040 -> ``12.4``."""
    return f"{version // 1000}.{version % 1000 // 10}"


def _optional(nv: Any, name: str, *args: Any) -> Any:
    """A fact that an older driver, GPU or nvidia-ml-py may not offer: None then."""
    fn = getattr(nv, name, None)
    if fn is None:
        return None
    missing = tuple(
        getattr(nv, e)
        for e in (
            "NVMLError_NotSupported",
            "NVMLError_FunctionNotFound",
            "NVMLLibraryMismatchError",
        )
        if hasattr(nv, e)
    )
    try:
        return fn(*args)
    except missing:
        return None


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
