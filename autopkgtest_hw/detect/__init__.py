"""Hardware detection: one detector per source, merged into one Inventory.

Detectors (each a module of this package whose ``detect()`` registers
itself with :func:`.base.detector`; importing the package imports every
module in it, so a new detector is one new module):

* ``cpu``: /proc/cpuinfo, /proc/meminfo, the CPUs this process may use, dpkg's architecture;
* ``udev``: PCI GPUs, their DRM and NVIDIA nodes, /dev/kfd and KFD gfx targets (pyudev);
* ``nvml``: NVIDIA GPUs through the driver's NVML (nvidia-ml-py);
* ``opencl``: devices of the installed OpenCL ICDs (pyopencl);
* ``vulkan``: GPUs the Vulkan loader enumerates (vulkaninfo);
* ``vaapi``: the video codecs of each render node (vainfo).

Each declares its inputs (:class:`.base.Inputs`) where it registers.
:func:`detect_host` is what the commands and the virt server call: the CPU
afresh, the devices from the host inventory cache (:mod:`.cache`) when its
fingerprint, built from those declarations, says nothing changed.

A detector never raises: a missing library or driver is reported as
``unavailable`` with the reason, anything unexpected as ``error``.

May import: ``base``, ``spec``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import time
from collections.abc import Sequence
from typing import Any

from autopkgtest_hw.base import log
from autopkgtest_hw.detect import cache
from autopkgtest_hw.detect.base import ERROR, UNAVAILABLE, registered
from autopkgtest_hw.detect.merge import classify, merge
from autopkgtest_hw.spec.inventory import Cpu, DetectorReport, Device, Inventory

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # detectors register on import

#: Where an inventory came from, as ``detect`` says it.
FROM_CACHE = "cache"
DETECTED = "detected"

#: Names in the order they run; the CPU first, then the PCI view the others merge into.
DETECTORS = tuple(d.name for d in registered())
#: Comma-separated detector names to run when the caller names none.
ENV_VAR = "AUTOPKGTEST_HW_DETECTORS"


def detect_host(use_cache: bool = True) -> tuple[Inventory, str]:
    """This machine's inventory (as :func:`detect_inventory` finds it) and where it came from.

    The devices come from the cache when its fingerprint matches (``FROM_CACHE``),
    else from the detectors, and the cache is rewritten (``DETECTED``).
    """
    if not use_cache:
        log.debug("inventory cache: not used (--no-cache)")
        return detect_inventory(), DETECTED
    started = time.monotonic()
    wanted, why_not = _selection(None, quiet=True)
    prints = cache.fingerprint(selection=wanted)
    cached = cache.load(prints)
    took = (time.monotonic() - started) * 1000
    if cached is not None:
        log.debug(f"inventory cache: hit in {took:.0f} ms ({cache.cache_dir()})")
        the_cpu, cpu_report = _cpu(wanted, why_not)
        reports = {r.name: r for r in (*cached.detectors, cpu_report)}
        return (
            Inventory(
                cpu=the_cpu,
                devices=cached.devices,
                detectors=tuple(reports[d.name] for d in registered() if d.name in reports),
            ),
            FROM_CACHE,
        )
    inventory = detect_inventory()
    failed = [r.name for r in inventory.detectors if r.status == ERROR]
    if failed:  # perhaps passing (a driver busy resetting): the next run tries again
        log.debug(f"inventory cache: not written ({', '.join(failed)} failed)")
        return inventory, DETECTED
    devices_only = Inventory(
        devices=inventory.devices,
        detectors=tuple(r for r in inventory.detectors if r.name != _CPU),
    )
    if cache.store(prints, devices_only):
        log.debug(f"inventory cache: written in {cache.cache_dir()}")
    return inventory, DETECTED


def detect_machine() -> Inventory:
    """Only the machine itself (the CPU detector): what a spec of the ``cpu`` class reads.

    The device detectors are reported as not run, and none of their libraries is loaded.
    """
    wanted, why_not = _selection(None)
    the_cpu, cpu_report = _cpu(wanted, why_not)
    reports = [
        cpu_report
        if d.name == _CPU
        else DetectorReport(d.name, UNAVAILABLE, "not needed: only the machine was asked about")
        for d in registered()
    ]
    return Inventory(cpu=the_cpu, detectors=tuple(reports))


#: The detector that always runs afresh: cheap, and its answer depends on the process.
_CPU = "cpu"


def _cpu(wanted: set[str], why_not: str) -> tuple[Cpu, DetectorReport]:
    for detector in registered():
        if detector.name == _CPU:
            if _CPU not in wanted:
                return Cpu(), DetectorReport(_CPU, UNAVAILABLE, why_not)
            found, report = detector.run()
            return (found if isinstance(found, Cpu) else Cpu()), report
    return Cpu(), DetectorReport(_CPU, UNAVAILABLE, "no cpu detector")


def detect_inventory(sources: Sequence[str] | None = None) -> Inventory:
    """Detect this machine's hardware with ``sources`` (default: all, or $AUTOPKGTEST_HW_DETECTORS).

    Unknown names are ignored with a warning; a detector that is not run is
    listed as ``unavailable`` so the report says why its devices are missing.
    """
    wanted, why_not = _selection(sources)
    reports: list[DetectorReport] = []
    the_cpu = Cpu()
    groups: list[list[Device]] = []
    for detector in registered():
        name = detector.name
        if name not in wanted:
            reports.append(DetectorReport(name, UNAVAILABLE, why_not))
            continue
        started = time.monotonic()
        found, report = detector.run()
        if isinstance(found, Cpu):
            the_cpu = found
        elif isinstance(found, list):
            groups.append(found)
        took = (time.monotonic() - started) * 1000
        log.debug(f"detector {name}: {report.status} in {took:.0f} ms: {report.detail}")
        reports.append(report)
    devices_out = tuple(classify(d) for d in merge(groups))
    return Inventory(cpu=the_cpu, devices=devices_out, detectors=tuple(reports))


def _selection(sources: Sequence[str] | None, quiet: bool = False) -> tuple[set[str], str]:
    if sources is not None:
        names: Sequence[Any] = sources
        why_not = "not requested"
    elif os.environ.get(ENV_VAR) is not None:
        text = os.environ[ENV_VAR]
        names = [n.strip() for n in text.split(",") if n.strip()]
        why_not = f"not in {ENV_VAR}={text}"
    else:
        return set(DETECTORS), ""
    unknown = [n for n in names if n not in DETECTORS]
    if unknown and not quiet:
        log.warning(
            f"unknown detector {', '.join(map(repr, unknown))} ignored"
            f" (known: {', '.join(DETECTORS)})"
        )
    return {n for n in names if n in DETECTORS}, why_not


__all__ = [
    "DETECTED",
    "DETECTORS",
    "ENV_VAR",
    "FROM_CACHE",
    "detect_host",
    "detect_inventory",
    "detect_machine",
]
