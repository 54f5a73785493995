"""Today's debci in its own release: a trixie or sid root filesystem, built once, cached.

``root(suite)`` is a directory made with mmdebstrap holding that release's
debci, debci-collector, debci-worker, rabbitmq-server and autopkgtest, kept
under ~/.cache/autopkgtest-hw/ (built once, 6 to 9 minutes from the Debian
mirror).  The legs run only with ``AUTOPKGTEST_HW_DEBCI_ROOTS=1`` (both) or
the suites, comma-separated (``=trixie,sid``, what .ci/run sets).
``run_in_root`` runs a command there as root in new mount and PID
namespaces, with this checkout at /srv/autopkgtest-hw: when it ends, every
process it started (broker, workers, collector, web app) ends with it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path.home() / ".cache" / "autopkgtest-hw"
ENV_BUILD = "AUTOPKGTEST_HW_DEBCI_ROOTS"
SRC = "/srv/autopkgtest-hw"
PACKAGES = (
    "debci debci-collector debci-worker rabbitmq-server amqp-tools autopkgtest"
    " python3-pika python3-debian python3-apt python3-pytest ruby-webrick procps"
)
#: Bound for building a root (download and install, 2 cores).
BUILD_WITHIN = 1800


def wanted(suite: str) -> bool:
    """``AUTOPKGTEST_HW_DEBCI_ROOTS``: ``1`` (every leg) or the suites, comma-separated."""
    value = os.environ.get(ENV_BUILD, "")
    return value == "1" or suite in value.split(",")


def path(suite: str) -> Path:
    return CACHE / f"debci-{suite}-amd64"


def root(suite: str) -> Path | None:
    """The root (cached, or built now); None unless the legs are asked for."""
    dest = path(suite)
    if not wanted(suite):
        return None
    stamp = dest / "etc" / "autopkgtest-hw-packages"
    if stamp.exists() and stamp.read_text().strip() == PACKAGES:
        return dest
    if shutil.which("mmdebstrap") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".debci-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text().strip() == PACKAGES):
            _build(suite, dest)
    return dest


def _build(suite: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    if not dest.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=apt",
                "--mode=root",
                # A machine whose clock is ahead of the mirror's Valid-Until.
                '--aptopt=Acquire::Check-Valid-Until "false"',
                suite,
                str(tmp),  # mmdebstrap's default mirror: Debian's archive
            ],
            check=True,
            timeout=BUILD_WITHIN,
            stdout=subprocess.DEVNULL,
        )
        tmp.rename(dest)
    # Packages go in with the root's own apt; no service starts in a chroot
    # (policy-rc.d), and rackup is its own package since rack 3.
    policy = dest / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    script = (
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq;"
        f" apt-get install -y -qq --no-install-recommends {PACKAGES} >/dev/null;"
        " apt-get install -y -qq ruby-rackup >/dev/null 2>&1 || true"
    )
    run_in_root(dest, ["sh", "-c", script], timeout=BUILD_WITHIN, check=True)
    (dest / "etc" / "autopkgtest-hw-packages").write_text(PACKAGES + "\n")


OUT = "/srv/out"


def run_in_root(
    dest: Path,
    argv: list[str],
    *,
    timeout: float,
    check: bool = False,
    out: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``argv`` in the root: own mount and PID namespaces, this checkout at SRC
    (and ``out``, a directory of the host, at OUT)."""
    checkout = Path(__file__).resolve().parents[2]
    out_mount = ""
    if out is not None:
        out_mount = f' mkdir -p "$r{OUT}"; mount --bind "{out}" "$r{OUT}";'

    setup = (
        'set -e; r="$1"; shift;'
        ' mount --bind /proc "$r/proc" 2>/dev/null || mount -t proc proc "$r/proc";'
        ' mount --rbind /dev "$r/dev"; mount --rbind /sys "$r/sys";'
        ' mount -t tmpfs tmpfs "$r/tmp"; mount -t tmpfs tmpfs "$r/run";'
        ' mkdir -p "$r/run/lock";'
        f' mkdir -p "$r{SRC}"; mount --bind "$0" "$r{SRC}";{out_mount}'
        ' cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true;'
        ' exec chroot "$r" "$@"'
    )
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            setup,
            str(checkout),
            str(dest),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )
