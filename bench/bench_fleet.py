#!/usr/bin/env python3
"""Fleet utilisation: N queued GPU jobs on M profiles with per-device locks, real debci workers.

A real RabbitMQ broker (own data directory, loopback port), M profiles each
with D NVIDIA-like device nodes (mknod) and a saved inventory, and K real
debci-workers per device (Debian's debci-worker, our hwgpu backend, null
testbeds, ``--gpu I --lock-timeout``): while one job holds a device's lock,
the next worker of that device prepares its run and waits on the lock.
``autopkgtest-hw enqueue`` routes N packages (each needing ``cuda``, test of
S seconds) to the shortest queues.  A sampler reads /proc/locks every 20 ms
(it takes no lock itself) to see which device locks are held.

Device-time busy = held time summed over devices / (devices x window), the
window running from the end of enqueue to the last lock release.  Prints
numbers; asserts nothing.  Needs root (mknod, null testbeds).

Usage: .venv/bin/python bench/bench_fleet.py [--profiles 2] [--devices 1] [--workers 2]
       [--jobs 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.fixtures import fake_nvidia, make_char_device, save_inventory  # noqa: E402
from tests.fleet.broker_support import RabbitMQ  # noqa: E402
from tests.fleet.fleet_support import (  # noqa: E402
    ARCH,
    CentralDebci,
    Worker,
    cli,
    collect_results,
    make_debci_tree,
    make_package,
    wait_consumers,
)

SAMPLE = 0.02


def lock_inodes(paths: list[Path]) -> dict[str, Path]:
    """'maj:min:inode' as /proc/locks writes it -> lock file."""
    out = {}
    for p in paths:
        st = os.stat(p)
        out[f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"] = p
    return out


class Sampler(threading.Thread):
    def __init__(self, inodes: dict[str, Path]) -> None:
        super().__init__(daemon=True)
        self.inodes = inodes
        self.samples: list[tuple[float, frozenset[str]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            held = set()
            with open("/proc/locks") as f:
                for line in f:
                    words = line.split()
                    if len(words) > 5 and words[1] == "FLOCK" and words[5] in self.inodes:
                        held.add(words[5])
            self.samples.append((time.monotonic(), frozenset(held)))
            time.sleep(SAMPLE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2)
    parser.add_argument("--devices", type=int, default=1, help="devices per profile")
    parser.add_argument("--workers", type=int, default=2, help="workers per device")
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="each test's run time")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_fleet.py needs root (device nodes, null testbeds)")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        broker = RabbitMQ(base / "rabbitmq")
        broker.start()
        workers: list[Worker] = []
        try:
            tree = make_debci_tree(base / "debci")
            central = CentralDebci(base / "central", broker.url, [ARCH])
            sources = base / "sources"
            locks = base / "locks"
            locks.mkdir()
            stanzas = []
            inventories = {}
            minor = 0
            for p in range(args.profiles):
                devices = []
                for d in range(args.devices):
                    node = make_char_device(base / "dev", f"nvidia{minor}", minor)
                    dev = fake_nvidia(node, d, f"0000:{0x10 + minor:02x}:00.0")
                    # Distinct UUIDs: the lock file is named after the device's identity.
                    uuid = f"GPU-00000000-0000-0000-0000-{minor:012d}"
                    devices.append(dataclasses.replace(dev, uuid=uuid))
                    minor += 1
                inventories[p] = save_inventory(base / f"gpu{p}.json", *devices)
                stanzas.append(
                    f"Profile: gpu{p}\nArchitecture: {ARCH}\nInventory: {inventories[p]}\n"
                )
            fleet = base / "fleet"
            fleet.write_text("\n".join(stanzas))
            names = []
            for j in range(args.jobs):
                name = f"job{j:03d}"
                test = f"sleep {args.seconds}"
                make_package(sources, name, {"t": ("needs-hw:cuda", test)}, hwspec="cuda")
                names.append(name)
            for p in range(args.profiles):
                cli("profile", "--fleet", str(fleet), "--declare", "--amqp", broker.url, f"gpu{p}")
                for d in range(args.devices):
                    for k in range(args.workers):
                        settings = {
                            "debci_hwgpu_local_sources": str(sources),
                            "debci_hwgpu_profile": f"gpu{p}",
                            "debci_hwgpu_args": f"--inventory {inventories[p]} --gpu {d}"
                            f" --lock-dir {locks} --lock-timeout 3600",
                        }
                        workers.append(
                            Worker(
                                tree,
                                base,
                                f"w{p}-{d}-{k}",
                                broker.url,
                                tag=f"gpu{p}",
                                settings=settings,
                            )
                        )
            for p in range(args.profiles):
                queue = f"debci-tests-{ARCH}-hwgpu_gpu{p}"
                wait_consumers(broker.url, queue, args.devices * args.workers, workers)
            # The lock files exist once a device was locked; make them now so the
            # sampler knows their inodes (hwgpu opens the same files).
            from autopkgtest_hw.locks.allocate import lock_name
            from autopkgtest_hw.spec.inventory import Inventory

            lock_files = []
            for p in range(args.profiles):
                for dev in Inventory.load(inventories[p]).devices:
                    path = locks / lock_name(dev)
                    path.touch()
                    lock_files.append(path)
            sampler = Sampler(lock_inodes(lock_files))
            sampler.start()
            t_enqueue = time.monotonic()
            cli(
                "enqueue",
                "--fleet",
                str(fleet),
                "--debci-config",
                str(central.config),
                *(str(sources / n) for n in names),
            )
            t0 = time.monotonic()
            results = collect_results(broker.url, args.jobs, within=600 + args.jobs * 60)
            t_results = time.monotonic()
            sampler.stop.set()
            sampler.join()
        finally:
            for w in workers:
                w.stop()
            broker.stop()
    busy_samples = [(t, h) for t, h in sampler.samples if t >= t0]
    last_busy = max(t for t, h in busy_samples if h)
    window = [(t, h) for t, h in busy_samples if t <= last_busy]
    n_dev = len(lock_files)
    busy = sum(len(h) for _, h in window) / (n_dev * len(window))
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    per_profile: dict[str | None, int] = {}
    for r in results:
        per_profile[r.profile] = per_profile.get(r.profile, 0) + 1
    print(
        f"{args.jobs} jobs of {args.seconds:g} s on {args.profiles} profiles x {args.devices}"
        f" device(s), {args.workers} worker(s) per device ({len(workers)} debci-workers),"
        f" {os.cpu_count()} CPUs"
    )
    print(f"enqueue took {t0 - t_enqueue:.2f} s; results {statuses}; per profile {per_profile}")
    print(
        f"window {last_busy - t0:.1f} s (enqueue done -> last lock released),"
        f" all results after {t_results - t0:.1f} s"
    )
    print(
        f"device-time busy: {busy:.3f}  (ideal makespan {args.jobs * args.seconds / n_dev:.1f} s)"
    )


if __name__ == "__main__":
    main()
