"""A command imports only what it uses: the GPU libraries and python-debian stay unloaded.

Each case runs the real command line in a fresh interpreter and reads its
``sys.modules`` afterwards, so start-up cost cannot creep back unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("pyopencl", "pynvml", "pyudev", "debian", "apt_pkg", "numpy")

PROBE = """
import contextlib, io, json, sys
from autopkgtest_hw import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = cli.main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


def loaded(*argv: str, detectors: str | None = None) -> tuple[int, set[str]]:
    env = dict(os.environ)
    env.pop("AUTOPKGTEST_HW_DETECTORS", None)
    if detectors is not None:
        env["AUTOPKGTEST_HW_DETECTORS"] = detectors
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, check=False
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout.splitlines()[-1])
    return data["rc"], {m.split(".")[0] for m in data["modules"]}


def test_match_cpu_loads_no_gpu_library_and_no_python_debian() -> None:
    rc, modules = loaded("match", "cpu")
    assert rc == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("spec", ["cpu:cores>=1", "cpu:mem>=1M|cpu:cores>=1"])
def test_any_machine_spec_loads_no_gpu_library(spec: str) -> None:
    rc, modules = loaded("match", spec)
    assert rc == 0
    assert not modules & set(HEAVY)


def test_detect_from_the_cache_loads_no_gpu_library() -> None:
    rc, _ = loaded("detect", detectors="cpu,udev,nvml,opencl")
    assert rc == 0
    rc, second = loaded("detect", detectors="cpu,udev,nvml,opencl")
    assert rc == 0
    assert not second & set(HEAVY), sorted(second & set(HEAVY))


def test_a_device_spec_still_runs_the_device_detectors() -> None:
    """The guard is not bought by skipping detection: an OpenCL spec loads pyopencl."""
    _, modules = loaded("match", "opencl:type=any", detectors="cpu,opencl")
    assert "pyopencl" in modules


VIRT_PROBE = """
import json, sys
from autopkgtest_hw.virt import entry, proxy

STDLIB = {"argparse", "logging", "shutil", "dataclasses"}
seen = []

def spy(self, argv, **kwargs):
    seen.append(sorted(m for m in sys.modules if m.startswith("autopkgtest_hw.") or m in STDLIB))
    raise OSError(2, "stopped by the test")

proxy.InnerServer.__init__ = spy
rc = entry.main(sys.argv[1:])
print(json.dumps({"rc": rc, "seen": seen}))
"""

#: What a null/ssh inner server must not wait for.
LATE = (
    "autopkgtest_hw.locks.allocate",
    "autopkgtest_hw.locks.keeper",
    "autopkgtest_hw.virt.backends",
    "autopkgtest_hw.virt.server",
    "autopkgtest_hw.detect",
    "autopkgtest_hw.spec.matcher",
    # Nor for the option parser or anything it needs (entry.scan_inner finds INNER).
    "argparse",
    "logging",
    "shutil",
    "dataclasses",
)


def test_virt_server_starts_a_null_inner_server_before_importing_allocation() -> None:
    """The entry module starts null first; allocation and the adapters load while it starts."""
    proc = subprocess.run(
        [sys.executable, "-c", VIRT_PROBE, "--inventory", "/nonexistent.json", "null"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout.splitlines()[-1])
    assert data["rc"] == 1
    assert "cannot start" in proc.stderr and "stopped by the test" in proc.stderr
    [before_start] = data["seen"]
    assert not set(before_start) & set(LATE), sorted(set(before_start) & set(LATE))


def test_the_lock_keeper_is_imported_only_when_a_lock_is_held() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, autopkgtest_hw.virt.server;"
            " print('autopkgtest_hw.locks.keeper' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "False"


def test_the_entry_modules_copies_agree_with_their_sources() -> None:
    """entry.py repeats two facts so as not to import their modules: they must stay equal."""
    from autopkgtest_hw.locks import allocate
    from autopkgtest_hw.virt import entry
    from autopkgtest_hw.virt.backends import Backend

    assert entry.DEFAULT_LOCK_DIR == allocate.DEFAULT_LOCK_DIR
    quiet = {name for name, cls in Backend.registry.items() if not cls.passes_arguments}
    assert set(entry.EARLY_KINDS) >= quiet - {"fallback"}
    for kind in entry.EARLY_KINDS:
        cls = Backend.registry.get(kind)
        assert cls is None or not cls.passes_arguments


def test_the_entry_modules_value_options_are_the_parsers() -> None:
    """scan_inner skips exactly the options that take a value: else it guesses INNER wrong."""
    from autopkgtest_hw.virt import entry

    parser = entry.build_parser()
    takes_value = {
        flag
        for action in parser._actions
        if action.option_strings and action.nargs != 0
        for flag in action.option_strings
    }
    assert takes_value == entry.VALUE_OPTIONS


@pytest.mark.parametrize(
    "argv",
    [
        ["null"],
        ["-d", "null"],
        ["--gpu", "0", "--gpu=cuda", "--inventory", "x.json", "-d", "null", "-d", "--x"],
        ["--lock-timeout", "60", "--shared", "ssh", "-H", "host", "--", "-x"],
        ["--hold-for", "1h", "--cdi-dir", "/etc/cdi", "podman", "debian:sid"],
        ["--", "null"],
        ["--count", "2", "unshare", "-t", "sid.tar"],
    ],
)
def test_scan_inner_finds_what_the_parser_finds(argv: list[str]) -> None:
    from autopkgtest_hw.virt import entry

    args = entry.build_parser().parse_args(argv)
    assert entry.scan_inner(argv) == (args.inner, args.inner_args)


@pytest.mark.parametrize("argv", [[], ["--help"], ["-d", "--version"], ["--gpu", "0"]])
def test_scan_inner_leaves_help_and_no_inner_to_the_parser(argv: list[str]) -> None:
    from autopkgtest_hw.virt import entry

    assert entry.scan_inner(argv) is None
