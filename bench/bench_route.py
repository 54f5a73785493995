#!/usr/bin/env python3
"""Routing throughput: all of sid's Sources against a fleet of 20 profiles, whole process.

Fetches sid's main Sources with apt through a private configuration (the
system's own Debian mirror, deb-src, suite sid; the system's apt state is
left alone) into ~/.cache/autopkgtest-hw/sid-sources/, or uses --sources, or
a synthetic index from gen_sources.py when neither is possible.  A few
hundred packages with autopkgtests get a synthetic Requires-Hwspec (seeded),
then ``autopkgtest-hw route --sources ... --no-broker --json`` runs as a
whole process N times per policy; the median and best wall times are
printed with what the routing decided.  Prints numbers; asserts nothing.

Usage: .venv/bin/python bench/bench_route.py [--runs 5] [--hw 300] [--sources FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory  # noqa: E402

GiB = 1 << 30
SPECS = [
    "cuda",
    "cuda:cc>=8.0",
    "cuda:cc>=7.0:mem>=16G",
    "cuda:sm_90",
    "rocm",
    "rocm:gfx90a",
    "rocm:arch=gfx1030/gfx1100",
    "rocm:gfx942, opencl",
    "cuda|rocm",
    "opencl",
    "opencl:type=cpu",
    "gpu:vendor=intel",
    "vulkan",
    "cuda:count>=2",
    "rocm:gfx1151",  # no profile has it: reported as unroutable
]


def cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "autopkgtest-hw" / "sid-sources"
    path.mkdir(parents=True, exist_ok=True)
    return path


def system_mirror() -> str | None:
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    for text in texts:
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M)
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M)
        for uri in uris:
            if "security" not in uri and uri.rstrip("/").endswith("/debian"):
                return uri
    return None


def fetch_sid_sources() -> Path | None:
    """sid's main Sources through apt, decompressed; None when apt cannot get it."""
    work = cache()
    out = work / "Sources"
    if out.is_file() and time.time() - out.stat().st_mtime < 7 * 86400:
        return out
    mirror = system_mirror()
    if mirror is None:
        return None
    for d in ("lists/partial", "cache/archives/partial"):
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "sid.sources").write_text(
        f"Types: deb-src\nURIs: {mirror}\nSuites: sid\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    apt = [
        "apt-get",
        "-q",
        f"-oDir::Etc::sourcelist={work / 'sid.sources'}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={work / 'lists'}",
        f"-oDir::Cache={work / 'cache'}",
        "-oDir::State::status=/dev/null",
        "-oAcquire::Languages=none",
        "-oAPT::Sandbox::User=root",
        "update",
    ]
    if subprocess.run(apt, capture_output=True, check=False).returncode != 0:
        return None
    lists = sorted((work / "lists").glob("*_sid_main_source_Sources*"))
    if not lists:
        return None
    with open(out, "wb") as f:
        proc = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(lists[0])], stdout=f, check=False
        )
    return out if proc.returncode == 0 else None


def with_hwspecs(src: Path, dest: Path, n: int, seed: int) -> int:
    """Copy the index, giving ``n`` packages with autopkgtests a Requires-Hwspec."""
    text = src.read_text(encoding="utf-8", errors="surrogateescape")
    stanzas = text.split("\n\n")
    with_tests = [i for i, s in enumerate(stanzas) if "\nTestsuite: autopkgtest" in s]
    rng = random.Random(seed)
    chosen = rng.sample(with_tests, min(n, len(with_tests)))
    for i in chosen:
        stanzas[i] = stanzas[i].rstrip("\n") + f"\nRequires-Hwspec: {rng.choice(SPECS)}"
    dest.write_text("\n\n".join(stanzas), encoding="utf-8", errors="surrogateescape")
    return len(chosen)


def nvidia(cc: str, model: str, mem: int, count: int = 1) -> tuple[Device, ...]:
    return tuple(
        Device(
            classes=("gpu", "cuda", "opencl", "vulkan"),
            vendor="nvidia",
            model=model,
            memory=mem * GiB,
            arch="sm_" + cc.replace(".", ""),
            compute_capability=cc,
            opencl_type="gpu",
            index=i,
        )
        for i in range(count)
    )


def amd(gfx: str, model: str, mem: int) -> tuple[Device, ...]:
    return (
        Device(
            classes=("gpu", "rocm", "opencl", "vulkan"),
            vendor="amd",
            model=model,
            memory=mem * GiB,
            arch=gfx,
            opencl_type="gpu",
        ),
    )


def fleet_of_20(directory: Path) -> Path:
    profiles: list[tuple[str, str, tuple[Device, ...]]] = [
        ("t4", "amd64", nvidia("7.5", "Tesla T4", 16)),
        ("v100", "amd64", nvidia("7.0", "Tesla V100-SXM2-32GB", 32)),
        ("a100", "amd64", nvidia("8.0", "NVIDIA A100-SXM4-80GB", 80, 2)),
        ("a10", "amd64", nvidia("8.6", "NVIDIA A10", 24)),
        ("l4", "amd64", nvidia("8.9", "NVIDIA L4", 24)),
        ("h100", "amd64", nvidia("9.0", "NVIDIA H100 80GB HBM3", 80, 4)),
        ("gh200", "arm64", nvidia("9.0", "NVIDIA GH200 480GB", 96)),
        ("b200", "amd64", nvidia("10.0", "NVIDIA B200", 180)),
        ("mi50", "amd64", amd("gfx906", "AMD Instinct MI50", 16)),
        ("mi100", "amd64", amd("gfx908", "AMD Instinct MI100", 32)),
        ("mi210", "amd64", amd("gfx90a", "AMD Instinct MI210", 64)),
        ("mi300x", "amd64", amd("gfx942", "AMD Instinct MI300X", 192)),
        ("rx6800", "amd64", amd("gfx1030", "AMD Radeon RX 6800", 16)),
        ("rx7900", "amd64", amd("gfx1100", "AMD Radeon RX 7900 XTX", 24)),
        ("w7600", "amd64", amd("gfx1102", "AMD Radeon Pro W7600", 8)),
        (
            "arc",
            "amd64",
            (
                Device(
                    classes=("gpu", "opencl", "sycl", "vulkan"),
                    vendor="intel",
                    model="Intel Arc A770",
                    opencl_type="gpu",
                ),
            ),
        ),
        (
            "pocl",
            "amd64",
            (Device(classes=("opencl",), model="pthread-cpu", opencl_type="cpu"),),
        ),
        ("pocl-arm64", "arm64", (Device(classes=("opencl",), model="cpu", opencl_type="cpu"),)),
    ]
    stanzas = []
    for name, arch, devices in profiles:
        inv = Inventory(cpu=Cpu(arch=arch, cores=64, memory=512 * GiB), devices=devices)
        (directory / f"{name}.json").write_text(inv.to_json())
        stanzas.append(f"Profile: {name}\nArchitecture: {arch}\nInventory: {name}.json\n")
    for arch in ("amd64", "arm64"):
        stanzas.append(f"Profile: cpu-{arch}\nArchitecture: {arch}\nOrdinary: yes\n")
    fleet = directory / "fleet"
    fleet.write_text("\n".join(stanzas))
    assert len(stanzas) == 20
    return fleet


def run_route(fleet: Path, index: Path, matrix: bool) -> tuple[float, dict[str, object]]:
    argv = [sys.executable, "-m", "autopkgtest_hw", "route", "--fleet", str(fleet)]
    argv += ["--sources", str(index), "--no-broker", "--json"] + (["--matrix"] if matrix else [])
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"route failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hw", type=int, default=300, help="packages given a Requires-Hwspec")
    parser.add_argument("--sources", type=Path, help="a Sources index to use (plain text)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = args.sources or fetch_sid_sources()
        kind = "given" if args.sources else "sid main (fetched with apt)"
        if source is None:
            source = work / "Sources.synthetic"
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "gen_sources.py"), str(source)], check=True
            )
            kind = "synthetic (gen_sources.py)"
        index = work / "Sources"
        given = with_hwspecs(source, index, args.hw, args.seed)
        fleet = fleet_of_20(work)
        size = index.stat().st_size / 1e6
        print(f"index: {kind}, {size:.1f} MB, {given} packages given a Requires-Hwspec")
        print(f"fleet: 20 profiles; {os.cpu_count()} CPUs; {args.runs} runs per policy")
        for matrix in (False, True):
            times = []
            out: dict[str, object] = {}
            for _ in range(args.runs):
                took, out = run_route(fleet, index, matrix)
                times.append(took)
            jobs = out["jobs"]
            assert isinstance(jobs, list)
            gpu_jobs = sum(1 for j in jobs if not str(j["profile"]).startswith("cpu-"))
            print(
                f"{out['policy']:>15}: median {statistics.median(times):.2f} s,"
                f" best {min(times):.2f} s; {out['packages']} packages,"
                f" {out['without_tests']} without tests, {len(jobs)} jobs ({gpu_jobs} on GPU"
                f" profiles), {len(out['unroutable'])} unroutable, {len(out['errors'])} errors"  # type: ignore[arg-type]
            )


if __name__ == "__main__":
    main()
