"""The host inventory cache: detection's answer, kept until something that can change it changes.

The device detectors (udev, NVML, OpenCL, Vulkan, VA-API) cost tens of
milliseconds to seconds, PoCL's start-up and vulkaninfo most of them; the
machine rarely changes between two runs.  So the devices and the detectors'
reports are kept in one file, keyed by a fingerprint of everything that can
change the answer.  The fingerprint is built from the registry: each detector
declares its inputs (:class:`.base.Inputs`: tools on PATH, libraries, Python
modules, environment variables, files and directories, device nodes), and
the fingerprint has one component per detector that reads exactly those.
Besides them, what every detector depends on:

* ``boot``: ``/proc/sys/kernel/random/boot_id`` (a reboot may bring anything);
* ``pci``: the PCI functions with their ``uevent`` (ids, class, driver) and the
  version of each bound driver's module;
* ``cpu``: ``/proc/cpuinfo`` less its clock lines, and the CPUs this process may use;
* ``process``: the user, the loader's variables (``LD_LIBRARY_PATH``,
  ``LD_PRELOAD``), ``/etc/ld.so.cache`` (ldconfig rewrites it whenever a
  library is installed anywhere) and the detector selection;
* ``code``: this package's detection code.

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
import fnmatch
import functools
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from autopkgtest_hw import __version__
from autopkgtest_hw.base import log
from autopkgtest_hw.detect.base import Detector, Inputs, registered
from autopkgtest_hw.spec.hardware import LIBRARY_DIRS
from autopkgtest_hw.spec.inventory import Inventory, InventoryError

#: Overrides where the cache lives (tests; hosts with an unusual layout).
DIR_ENV = "AUTOPKGTEST_HW_CACHE_DIR"
SYSTEM_DIR = "/var/cache/autopkgtest-hw"
FILE_NAME = "host-inventory.json"
#: The format of the file; another value is a stale file.
FORMAT = 1
#: A cache file larger than this is not ours.
MAX_BYTES = 4 << 20

#: The loader's variables: they change which library any detector loads.
LOADER_ENV = ("LD_LIBRARY_PATH", "LD_PRELOAD")
#: Where the dynamic loader finds libraries (below the fingerprint's root).
LIB_DIRS = LIBRARY_DIRS
BOOT_ID = "/proc/sys/kernel/random/boot_id"
PCI_DEVICES = "/sys/bus/pci/devices"
MODULES = "/sys/module"
CPUINFO = "/proc/cpuinfo"
LD_CACHE = "/etc/ld.so.cache"
#: Lines of /proc/cpuinfo that change from one read to the next.
_VOLATILE = ("cpu mhz", "bogomips")
#: Bounds on what one declared input reads: matches of a pattern, entries of a
#: directory (all levels), bytes of a file's content, levels below a directory.
MAX_MATCHES = 256
MAX_ENTRIES = 1024
MAX_CONTENT = 4096
MAX_DEPTH = 4
#: A file's content is fingerprinted up to MAX_CONTENT bytes: kernel files
#: (their stat says nothing) and small ones (ICDs, manifests); a larger file by its stat.
_KERNEL_FS = ("/proc/", "/sys/")
_LIBRARY_RE = re.compile(rb"[\w./+-]*\.so(?:\.[0-9]+)*\b")


def fingerprint(
    selection: Iterable[str] | None = None, root: str = "/", detectors: Iterable[Detector] = ()
) -> dict[str, str]:
    """Each component of the fingerprint, by name, as a short digest.

    ``selection``: the names of the detectors that run (default: all);
    ``detectors``: the registered ones (default: the registry's);
    ``root``: where the machine's files are (tests point it into a fixture tree).
    """
    _stat_line.cache_clear()  # what one fingerprint saw, never the last one's
    at = _Root(root)
    chosen = tuple(detectors) or registered()
    names = sorted(d.name for d in chosen) if selection is None else sorted(selection)
    drivers: set[str] = set()
    parts = {
        "boot": _read(at(BOOT_ID), 256),
        "pci": "\n".join(_pci(at(PCI_DEVICES), drivers)),
        "cpu": _cpu(at(CPUINFO)),
        "process": "\n".join(
            [
                f"uid {os.geteuid()}",
                f"detectors {','.join(names)}",
                *(f"{k}={os.environ.get(k)}" for k in LOADER_ENV),
                _stat_line(at(LD_CACHE)),
            ]
        ),
        "code": "\n".join(_code()),
    }
    parts["pci"] += "".join(
        f"\n{d} {_read(at(f'{MODULES}/{d}/{what}'), 256)}"
        for d in sorted(drivers)
        for what in ("version", "srcversion")
    )
    for d in chosen:
        if d.cached and d.name in names:
            parts[f"detector {d.name}"] = "\n".join(_inputs(d.inputs, at))
    return {
        k: hashlib.sha256(v.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        for k, v in parts.items()
    }


class _Root:
    """Absolute machine paths, below a fixture root in tests."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._listings: dict[str, list[str]] = {}
        self._matches: dict[str, list[str]] = {}

    def matches(self, pattern: str) -> list[str]:
        """glob's answer, sorted; each directory listed once (detectors share nodes)."""
        found = self._matches.get(pattern)
        if found is None:
            head, tail = os.path.split(pattern)
            if glob.has_magic(head):
                found = sorted(itertools.islice(glob.iglob(pattern), MAX_MATCHES))
            else:
                names = self._listings.get(head)
                if names is None:
                    names = self._listings[head] = _listing(head)
                found = [os.path.join(head, n) for n in fnmatch.filter(names, tail)]
            self._matches[pattern] = found
        return found

    def __call__(self, path: str) -> str:
        if self.root in ("", "/"):
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def lib_dirs(self) -> list[str]:
        extra = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
        return [*extra, *(self(d) for d in LIB_DIRS)]


def _inputs(inputs: Inputs, at: _Root) -> Iterator[str]:
    """One line per thing a detector's declared inputs name, as it is now."""
    for tool in inputs.tools:
        found = shutil.which(tool)
        yield f"tool {tool} " + (_stat_line(os.path.realpath(found)) if found else "-")
    for lib in inputs.libraries:
        yield from (f"lib {_stat_line(os.path.join(d, lib))}" for d in at.lib_dirs())
    yield from _modules(inputs.modules)
    for name in inputs.env:
        if name.endswith("*"):
            prefix = name[:-1]
            yield from (
                f"env {k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(prefix)
            )
        else:
            yield f"env {name}={os.environ.get(name)}"
    for pattern in inputs.paths:
        for path in _expand(pattern, at):
            yield from itertools.islice(_path_lines(path, at, MAX_DEPTH), MAX_ENTRIES)
    for pattern in inputs.nodes:
        for path in _expand(pattern, at):
            yield _node_line(path)


def _expand(pattern: str, at: _Root) -> list[str]:
    """The paths a declared pattern names now (bounded), or the pattern itself if none."""
    if pattern.startswith("$"):
        value = os.environ.get(pattern[1:], "")
        return [p for p in value.split(":") if p][:MAX_MATCHES] or [pattern]
    path = at(pattern)
    if not glob.has_magic(path):
        return [path]
    return at.matches(path)[:MAX_MATCHES] or [pattern]


def _path_lines(path: str, at: _Root, depth: int) -> Iterator[str]:
    try:
        st = os.lstat(path)
    except OSError as exc:
        yield f"{path} <{exc.errno}>"
        return
    if stat.S_ISLNK(st.st_mode):
        try:
            yield f"{path} -> {os.readlink(path)}"
        except OSError as exc:
            yield f"{path} -> <{exc.errno}>"
        if depth < MAX_DEPTH:
            return  # a link inside a directory: its target is not walked (a declared one is)
        try:
            st = os.stat(path)
        except OSError:
            return
    if stat.S_ISDIR(st.st_mode):
        yield f"{path}/ {st.st_ino} {st.st_mtime_ns}"
        if depth > 0:
            yield from _directory(path, at, depth)
        return
    kernel = path.startswith(tuple(at(p) for p in _KERNEL_FS))
    if not kernel:
        yield _stat_line(path)
    if stat.S_ISREG(st.st_mode) and (kernel or st.st_size <= MAX_CONTENT):
        content = _read_bytes(path, MAX_CONTENT)
        yield f"{path}: {content.decode('utf-8', 'replace')}"
        yield from _named_libraries(content, at)


def _directory(path: str, at: _Root, depth: int) -> Iterator[str]:
    try:
        with os.scandir(path) as it:
            names = sorted(e.name for e in itertools.islice(it, MAX_ENTRIES))
    except OSError as exc:
        yield f"{path}/ <{exc.errno}>"
        return
    for name in names:
        yield from _path_lines(os.path.join(path, name), at, depth - 1)


def _listing(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in itertools.islice(it, 4 * MAX_ENTRIES))
    except OSError:
        return []


def _named_libraries(content: bytes, at: _Root) -> Iterator[str]:
    """The libraries an ICD or a manifest names: upgrading one changes what loads."""
    for match in itertools.islice(_LIBRARY_RE.finditer(content), 8):
        name = match.group().decode("utf-8", "replace")
        if name.startswith("/"):
            yield f"named {_stat_line(at(name))}"
        else:
            yield from (f"named {_stat_line(os.path.join(d, name))}" for d in at.lib_dirs())


def _node_line(path: str) -> str:
    """A device node with its owner and mode (who may open it decides what a detector sees)."""
    return _stat_line(path, node=True)


def _read_bytes(path: str, limit: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        return f"<{exc.errno}>".encode()
    try:
        with os.fdopen(fd, "rb") as f:  # reads what is there, not ``limit`` bytes at once
            return f.read(limit)
    except OSError as exc:
        return f"<{exc.errno}>".encode()


def _read(path: str, limit: int = 65536) -> str:
    return _read_bytes(path, limit).decode("utf-8", "replace")


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


@functools.lru_cache(maxsize=4096)  # detectors share nodes and library directories
def _stat_line(path: str, node: bool = False) -> str:
    """A file as its inode, size and times; a ``node`` as its mode, owner and device number."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path} -"
    if node:
        return f"{path} {st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_rdev}"
    return f"{path} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _modules(names: Iterable[str]) -> Iterator[str]:
    """Each Python module where this interpreter finds it: installing one changes the answer."""
    for name in names:
        for entry in sys.path:
            if not entry or not os.path.isdir(entry):
                continue
            for candidate in (f"{name}.py", f"{name}/__init__.py"):
                line = _stat_line(os.path.join(entry, candidate))
                if not line.endswith(" -"):
                    yield f"module {line}"


def _cpu(cpuinfo: str) -> str:
    text = _read(cpuinfo, 8 << 20)
    kept = [line for line in text.splitlines() if not line.lower().startswith(_VOLATILE)]
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = []
    return "\n".join(kept) + f"\n{allowed}"


def _code() -> Iterator[str]:
    """This package's detection code: an upgrade may change what it finds."""
    yield __version__
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    for sub in ("detect", "spec", ""):
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
