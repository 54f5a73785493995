"""A worker's own state beside debci: stopped after failed passthroughs, runtime caches.

The hwgpu backend keeps, in its state directory (``debci_hwgpu_state_dir``,
default ``$debci_data_basedir/hwgpu``): ``tmpfails`` (passthrough failures in
a row), ``disabled`` (why the worker stopped taking jobs) and ``cache/``
(PoCL's and Mesa's caches, in a directory the worker's user owns).
``profile --check`` reads the same directory, so a stopped worker does not
start again until someone has looked, and detects with the same caches.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from autopkgtest_hw.base.text import safe
from autopkgtest_hw.spec.inventory import Inventory

DISABLED = "disabled"
MAX_REASON = 1000


def state_dir(config: dict[str, str]) -> Path | None:
    """The backend's state directory, from debci's configuration values."""
    if config.get("hwgpu_state_dir"):
        return Path(config["hwgpu_state_dir"])
    if config.get("data_basedir"):
        return Path(config["data_basedir"]) / "hwgpu"
    return None


def stopped(state: Path) -> str | None:
    """Why the worker stopped taking jobs, or None.  Never follows a planted link."""
    path = state / DISABLED
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    with os.fdopen(fd, "rb") as f:
        reason = f.read(MAX_REASON).decode(errors="replace").strip()
    return (
        f"stopped taking jobs: {safe(reason)}; fix the device, then remove {path} and"
        " restart the worker"
    )


def use_caches(state: Path) -> None:
    """Point PoCL and Mesa at the state directory's cache, as the backend does."""
    cache = state / "cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    os.environ.setdefault("XDG_CACHE_HOME", str(cache))
    os.environ.setdefault("POCL_CACHE_DIR", str(cache / "pocl"))
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", str(cache / "mesa"))


def user_hints(saved: Inventory, actual: Inventory) -> list[str]:
    """Why devices the profile has may be invisible to this user only."""
    if os.geteuid() == 0:
        return []
    here = {d.ident for d in actual.devices}
    missing = [d for d in saved.devices if d.ident not in here]
    if not missing:
        return []
    user = pwd.getpwuid(os.geteuid()).pw_name
    hints = []
    for d in missing:
        for node in d.device_nodes:
            if os.path.exists(node) and not os.access(node, os.R_OK | os.W_OK):
                hints.append(
                    f"{safe(user)} cannot open {safe(node)}: add {safe(user)} to the node's"
                    " group (video, render) or fix its mode"
                )
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    probe = cache if cache.exists() else cache.parent
    if not os.access(probe, os.W_OK):
        hints.append(
            f"{safe(user)} cannot write {safe(cache)}: PoCL and Mesa need a cache; set"
            " debci_hwgpu_state_dir (or POCL_CACHE_DIR, XDG_CACHE_HOME) to a directory"
            f" {safe(user)} owns"
        )
    return hints
