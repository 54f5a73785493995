"""The host inventory cache: detection's answer, kept until something that can change it changes.

The device detectors (udev, NVML, OpenCL) cost tens of milliseconds, PoCL's
start-up most of them; the machine rarely changes between two runs.  So the
devices and the detectors' reports are kept in one file, keyed by a
fingerprint of everything that can change the answer:

* the boot (``/proc/sys/kernel/random/boot_id``): a reboot may bring anything;
* the PCI functions with their ``uevent`` (ids, class) and bound driver, and
  the version of each bound driver's module;
* the NVIDIA driver version, each GPU's ``information`` and the MIG instances
  under ``/proc/driver/nvidia``, the device nodes under ``/dev`` (``dri/``,
  ``kfd``, ``nvidia*``, ``nvidia-caps/``), the KFD topology, the udev hardware database;
* the OpenCL ICD files (name, inode, size, times, content) and the libraries
  they name, ``libnvidia-ml.so.1``, ``/etc/ld.so.cache``, the Python bindings;
* the CPU (``/proc/cpuinfo`` less its clock lines, the CPUs this process may use);
* the environment the libraries read (``LD_LIBRARY_PATH``, ``OCL_ICD_VENDORS``,
  ``POCL_*``, ``UMOCKDEV_DIR``, ...), the detector selection and this code itself.

The CPU detector is cheap and always runs afresh.  An answer in which a
detector failed (status ``error``: a driver hiccup, a bug) is not kept.  The file lives in
``/var/cache/autopkgtest-hw`` for root, ``$XDG_CACHE_HOME/autopkgtest-hw``
(``~/.cache``) for others, or ``$AUTOPKGTEST_HW_CACHE_DIR``; it is written
atomically (a new file renamed over the old) and used only in a directory
that this user owns and nobody else may write, so another user cannot plant
an answer or a symlink.  Anything unreadable, malformed or stale is ignored,
and detection runs and rewrites it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from autopkgtest_hw import __version__
from autopkgtest_hw.base import log
from autopkgtest_hw.spec.inventory import Inventory, InventoryError

#: Overrides where the cache lives (tests; hosts with an unusual layout).
DIR_ENV = "AUTOPKGTEST_HW_CACHE_DIR"
SYSTEM_DIR = "/var/cache/autopkgtest-hw"
FILE_NAME = "host-inventory.json"
#: The format of the file; another value is a stale file.
FORMAT = 1
#: A cache file larger than this is not ours.
MAX_BYTES = 4 << 20

#: Environment variables that the detectors' libraries read.
ENV_VARS = (
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "UMOCKDEV_DIR",
    "OCL_ICD_VENDORS",
    "OCL_ICD_FILENAMES",
    "OPENCL_VENDOR_PATH",
    "CUDA_VISIBLE_DEVICES",
    "AUTOPKGTEST_HW_DETECTORS",
)
ENV_PREFIXES = ("POCL_", "NVIDIA_", "ROCR_", "HIP_", "GPU_DEVICE_ORDINAL")
#: Python modules of the detectors: installing or upgrading one changes the answer.
BINDINGS = ("pyudev", "pynvml", "pyopencl")
LIBRARIES = ("libnvidia-ml.so.1", "libOpenCL.so.1", "libudev.so.1")
LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/powerpc64le-linux-gnu",
    "/usr/lib/riscv64-linux-gnu",
    "/usr/lib/s390x-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/lib",
)
HWDB = ("/etc/udev/hwdb.bin", "/usr/lib/udev/hwdb.bin", "/lib/udev/hwdb.bin")


@dataclass(frozen=True)
class Sources:
    """Where the fingerprint reads the machine (tests point these into a fixture tree)."""

    boot_id: str = "/proc/sys/kernel/random/boot_id"
    pci: str = "/sys/bus/pci/devices"
    modules: str = "/sys/module"
    nvidia_version: str = "/proc/driver/nvidia/version"
    nvidia_proc: str = "/proc/driver/nvidia"
    dev: str = "/dev"
    kfd_topology: str = "/sys/class/kfd/kfd/topology"
    icd_dirs: tuple[str, ...] = ("/etc/OpenCL/vendors",)
    cpuinfo: str = "/proc/cpuinfo"
    lib_dirs: tuple[str, ...] = LIB_DIRS
    hwdb: tuple[str, ...] = HWDB
    #: ldconfig rewrites it whenever a library is installed or removed anywhere.
    ld_cache: str = "/etc/ld.so.cache"


def fingerprint(src: Sources | None = None, selection: str = "") -> dict[str, str]:
    """Each component of the fingerprint, by name, as a short digest."""
    src = src or Sources()
    env = {k: v for k, v in os.environ.items() if k in ENV_VARS or k.startswith(ENV_PREFIXES)}
    drivers: set[str] = set()
    parts = {
        "boot": _read(src.boot_id),
        "pci": "\n".join(_pci(src.pci, drivers)),
        "drivers": "\n".join(
            f"{d} {_read(f'{src.modules}/{d}/version')} {_read(f'{src.modules}/{d}/srcversion')}"
            for d in sorted(drivers)
        ),
        "nvidia": _read(src.nvidia_version) + "\n".join(_nvidia(src.nvidia_proc)),
        "nodes": "\n".join(_nodes(src.dev)),
        "kfd": "\n".join(_kfd(src.kfd_topology)),
        "opencl": "\n".join(_icds(src.icd_dirs, src.lib_dirs)),
        "libraries": "\n".join(
            _stat_line(os.path.join(d, lib)) for lib in LIBRARIES for d in _lib_dirs(src.lib_dirs)
        )
        + "\n"
        + "\n".join(_stat_line(p) for p in (*src.hwdb, src.ld_cache)),
        "bindings": "\n".join(_bindings()),
        "cpu": _cpu(src.cpuinfo),
        "environment": json.dumps(sorted(env.items())) + f"\n{os.geteuid()}\n{selection}",
        "code": "\n".join(_code()),
    }
    return {
        k: hashlib.sha256(v.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        for k, v in parts.items()
    }


def _read(path: str, limit: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError as exc:
        return f"<{exc.errno}>"


def _pci(root: str, drivers: set[str]) -> Iterator[str]:
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        yield f"<{exc.errno}>"
        return
    for name in names:
        base = os.path.join(root, name)
        try:
            driver = os.path.basename(os.readlink(os.path.join(base, "driver")))
            drivers.add(driver)
        except OSError:
            driver = "-"
        uevent = _read(os.path.join(base, "uevent"), 4096)
        if uevent.startswith("<"):  # no uevent (a bare fixture tree): the ids instead
            uevent = " ".join(
                _read(os.path.join(base, a), 64).strip() for a in ("vendor", "device", "class")
            )
        yield f"{name} {driver} {' '.join(uevent.split())}"


def _nvidia(proc: str) -> Iterator[str]:
    """Each GPU's information file and the MIG capabilities (instances) the driver lists."""
    gpus = os.path.join(proc, "gpus")
    with contextlib.suppress(OSError):
        for gpu in sorted(os.listdir(gpus)):
            yield _read(os.path.join(gpus, gpu, "information"), 4096)
    caps = os.path.join(proc, "capabilities")
    if os.path.isdir(caps):
        for top, dirs, files in os.walk(caps):
            dirs.sort()
            yield from (os.path.join(top, f) for f in sorted(files))


def _nodes(dev: str) -> Iterator[str]:
    """The GPU device nodes with their owner and mode (NVML and KFD care who may open them)."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        names += sorted(n for n in os.listdir(dev) if n.startswith("nvidia") or n == "kfd")
    for sub in ("nvidia-caps", "dri"):
        with contextlib.suppress(OSError):
            names += sorted(f"{sub}/{n}" for n in os.listdir(os.path.join(dev, sub)))
    for name in names:
        try:
            st = os.stat(os.path.join(dev, name))
        except OSError:
            yield f"{name} -"
            continue
        yield f"{name} {st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_rdev}"


def _kfd(topology: str) -> Iterator[str]:
    """The KFD topology the udev detector reads gfx targets from (a few small files)."""
    yield _read(os.path.join(topology, "generation_id"))
    nodes = os.path.join(topology, "nodes")
    with contextlib.suppress(OSError):
        for node in sorted(os.listdir(nodes)):
            yield f"{node} {_read(os.path.join(nodes, node, 'properties'))}"


def _stat_line(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path} -"
    return f"{path} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _lib_dirs(defaults: Iterable[str]) -> list[str]:
    extra = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    return [*extra, *defaults]


def _icds(dirs: Iterable[str], lib_dirs: Iterable[str]) -> Iterator[str]:
    wanted = list(dirs)
    for var in ("OCL_ICD_VENDORS", "OPENCL_VENDOR_PATH"):
        if os.environ.get(var):
            wanted.append(os.environ[var])
    for d in wanted:
        try:
            names = sorted(os.listdir(d)) if os.path.isdir(d) else [""]
        except OSError as exc:
            yield f"{d} <{exc.errno}>"
            continue
        for name in names:
            path = os.path.join(d, name) if name else d
            library = _read(path, 4096).strip()
            yield f"{_stat_line(path)} {library}"
            if library.startswith("/"):
                yield _stat_line(library)
            elif library and not library.startswith("<"):
                yield from (_stat_line(os.path.join(ld, library)) for ld in _lib_dirs(lib_dirs))


def _bindings() -> Iterator[str]:
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        for name in BINDINGS:
            for candidate in (f"{name}.py", f"{name}/__init__.py"):
                line = _stat_line(os.path.join(entry, candidate))
                if not line.endswith(" -"):
                    yield line


def _cpu(cpuinfo: str) -> str:
    text = _read(cpuinfo, 8 << 20)
    kept = [
        line for line in text.splitlines() if not line.lower().startswith(("cpu mhz", "bogomips"))
    ]
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = []
    return "\n".join(kept) + f"\n{allowed}"


def _code() -> Iterator[str]:
    """This package's detection code: an upgrade may change what it finds."""
    yield __version__
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    for sub in ("detect", ""):
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(os.path.join(package, sub)), key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    yield _stat_line(entry.path)


def cache_dir() -> str:
    """Where this user's cache lives: $AUTOPKGTEST_HW_CACHE_DIR, /var/cache for root, else XDG."""
    if os.environ.get(DIR_ENV):
        return os.environ[DIR_ENV]
    if os.geteuid() == 0:
        return SYSTEM_DIR
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "autopkgtest-hw")


def _safe_dir(path: str, create: bool) -> bool:
    """Whether ``path`` is a directory this user owns that no one else may write (not a link)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            os.mkdir(path, 0o755)
        except OSError as exc:
            log.debug(f"inventory cache: cannot create {path}: {exc.strerror}; not cached")
            return False
        st = os.lstat(path)
    except OSError as exc:
        log.debug(f"inventory cache: {path}: {exc.strerror}; not used")
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        log.debug(
            f"inventory cache: {path} is not a directory owned by uid {os.geteuid()} that"
            " only its owner may write; not used"
        )
        return False
    return True


def load(prints: dict[str, str], directory: str | None = None) -> Inventory | None:
    """The cached devices and reports if the file is ours and its fingerprint is ``prints``."""
    directory = directory or cache_dir()
    if not _safe_dir(directory, create=False):
        return None
    path = os.path.join(directory, FILE_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        log.debug(f"inventory cache: no {path} yet")
        return None
    except OSError as exc:
        log.debug(f"inventory cache: cannot open {path}: {exc.strerror}; detecting")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            log.debug(f"inventory cache: {path} is not a file of uid {os.geteuid()}; detecting")
            return None
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        log.debug(f"inventory cache: {path} is larger than {MAX_BYTES} bytes; detecting")
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InventoryError("another format")
        cached = data.get("fingerprint")
        if cached != prints:
            changed = sorted(
                k for k in prints if not isinstance(cached, dict) or cached.get(k) != prints[k]
            )
            log.debug(
                f"inventory cache: stale ({', '.join(changed) or 'format'} changed); detecting"
            )
            return None
        return Inventory.from_dict(data["inventory"])
    except (ValueError, KeyError, InventoryError) as exc:
        log.debug(f"inventory cache: {path} is unreadable ({exc}); detecting")
        return None


def store(prints: dict[str, str], inventory: Inventory, directory: str | None = None) -> bool:
    """Write the cache atomically; False (and a debug message) if it cannot be written."""
    directory = directory or cache_dir()
    if not _safe_dir(directory, create=True):
        return False
    data: dict[str, Any] = {
        "format": FORMAT,
        "fingerprint": prints,
        "inventory": inventory.to_dict(),
    }
    import tempfile  # only when writing: it imports random, hashing, ...

    try:
        fd, tmp = tempfile.mkstemp(prefix=".host-inventory.", dir=directory)
    except OSError as exc:
        log.debug(f"inventory cache: cannot write in {directory}: {exc.strerror}")
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(directory, FILE_NAME))
    except OSError as exc:
        log.debug(f"inventory cache: cannot write in {directory}: {exc.strerror}")
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True
