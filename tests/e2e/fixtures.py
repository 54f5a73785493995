"""What the end-to-end tests share: packages, inventories, fake GPUs, server and run drivers.

The virt-server tests (test_virtserver_*) drive ``autopkgtest-virt-hwgpu``
through the protocol or through the real autopkgtest; the run tests
(test_run*) run ``autopkgtest-hw run`` as a user does.  Both find this
checkout's programs first on PATH.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from autopkgtest_hw.locks.allocate import lock_name
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

ROOT = Path(__file__).resolve().parent.parent.parent
VIRT_DIR = ROOT / "virt-server"
HWGPU = VIRT_DIR / "autopkgtest-virt-hwgpu"
VENV_BIN = Path(sys.executable).parent
AUTOPKGTEST_HW = VENV_BIN / "autopkgtest-hw"

HAVE_AUTOPKGTEST = shutil.which("autopkgtest") is not None
IS_ROOT = os.geteuid() == 0


def needs_root_and_autopkgtest(why: str) -> pytest.MarkDecorator:
    """The skip mark of the tests that make device nodes and testbeds."""
    return pytest.mark.skipif(
        not (HAVE_AUTOPKGTEST and IS_ROOT), reason=f"needs autopkgtest and root ({why})"
    )


def _checkout_env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{VIRT_DIR}:{VENV_BIN}:{e.get('PATH', '')}"
    return e


#: Major number of the NVIDIA character devices (/dev/nvidia0 is 195:0).
NVIDIA_MAJOR = 195


def env() -> dict[str, str]:
    """PATH finds this checkout's autopkgtest-virt-hwgpu first; all detectors run."""
    e = _checkout_env()
    e.pop("AUTOPKGTEST_HW_DETECTORS", None)
    return e


def one_fake_gpu(tmp_path: Path, minor: int) -> tuple[str, str, str]:
    """(inventory file, device node, lock file) of one fake GPU in a directory of its own."""
    node = make_char_device(tmp_path / f"gpu{minor}", f"nvidia{minor}", minor)
    dev = fake_nvidia(node, index=minor)
    inv = save_inventory(tmp_path / "inv.json", dev)
    return inv, node, str(tmp_path / "locks" / lock_name(dev))


def make_package(parent: Path, tests: dict[str, str], restrictions: str = "") -> Path:
    """A source package whose tests are shell scripts (no dependencies, no build)."""
    src = parent / "vsdemo"
    (src / "debian" / "tests").mkdir(parents=True)
    (src / "debian" / "control").write_text(
        textwrap.dedent(
            """\
            Source: vsdemo
            Maintainer: Test <test@example.org>

            Package: vsdemo
            Architecture: all
            Description: virt server test package
             Only has tests.
            """
        )
    )
    (src / "debian" / "changelog").write_text(
        "vsdemo (1.0) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- Test <test@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n"
    )
    (src / "debian" / "files").write_text("")  # a built tree: nothing to build or unpack
    write_shell_tests(src, {name: (restrictions, script) for name, script in tests.items()})
    return src


def write_shell_tests(src: Path, tests: dict[str, tuple[str, str]]) -> None:
    """``src``'s debian/tests: a ``set -e`` shell script a test; name -> (restrictions, script)."""
    stanzas = []
    for name, (restrictions, script) in tests.items():
        path = src / "debian" / "tests" / name
        path.write_text("#!/bin/sh\nset -e\n" + script + "\n")
        path.chmod(0o755)
        stanza = f"Tests: {name}\nDepends:\n"
        if restrictions:
            stanza += f"Restrictions: {restrictions}\n"
        stanzas.append(stanza)
    (src / "debian" / "tests" / "control").write_text("\n".join(stanzas))


def make_char_device(directory: Path, name: str, minor: int, major: int = NVIDIA_MAJOR) -> str:
    """A real character device node (like /dev/nvidiaN) in a directory of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    return str(path)


def fake_nvidia(node: str, index: int = 0, address: str = "0000:65:00.0") -> Device:
    return Device(
        classes=("gpu", "cuda", "vulkan"),
        vendor="nvidia",
        model="NVIDIA H100 PCIe",
        pci_address=address,
        pci_id="10de:2331",
        pci_class="0x030200",
        memory=80 * 2**30,
        arch="sm_90",
        compute_capability="9.0",
        driver="nvidia",
        driver_version="550.54.15",
        cuda_version="12.4",
        device_nodes=(node,),
        iommu_group="42",
        uuid=f"GPU-00000000-0000-0000-0000-00000000000{index}",
        index=index,
        sources=("udev", "nvml"),
    )


def save_inventory(path: Path, *devices: Device, cpu: Cpu | None = None) -> str:
    cpu = cpu if cpu is not None else Cpu(arch="amd64", cores=2)
    inv = Inventory(cpu=cpu, devices=tuple(devices))
    path.write_text(inv.to_json())
    return str(path)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, str]

    def capabilities(self) -> list[str]:
        """The words of autopkgtest's 'testbed capabilities: [...]' debug line."""
        m = re.search(r"testbed capabilities: \[(.*)\]", self.stderr)
        assert m, f"no capabilities line in:\n{self.stderr[-3000:]}"
        return re.findall(r"'([^']*)'", m.group(1))

    def hw_inventory(self) -> Inventory | None:
        words = [unquote(w) if w.startswith("hw") else w for w in self.capabilities()]
        return Inventory.from_capabilities(words)


def autopkgtest(
    src: Path,
    out: Path,
    virt: list[str],
    *extra: str,
    timeout: int = 600,
    program: Path | None = None,
) -> Run:
    """The real autopkgtest (with --debug so the capabilities are logged).

    ``program`` is another autopkgtest (6.0 laid out as a checkout); default the system's.
    """
    argv = [str(program) if program else "autopkgtest", "--debug", "--no-built-binaries"]
    proc = subprocess.run(
        [*argv, *extra, str(src), "--output-dir", str(out), "--", *virt],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
        timeout=timeout,
    )
    summary: dict[str, str] = {}
    if (out / "summary").exists():
        for line in (out / "summary").read_text().splitlines():
            name, _, result = line.partition(" ")
            summary[name] = result.strip()
    return Run(proc.returncode, proc.stdout, proc.stderr, summary)


#: Generous bound for a process that was told to go to actually be gone.
GONE_WITHIN = 60.0


class Server:
    """autopkgtest-virt-hwgpu under our control, speaking the protocol."""

    def __init__(self, args: list[str], stderr: Path) -> None:
        self.stderr_path = stderr
        self._err = open(stderr, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(HWGPU), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=env(),
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().rstrip("\n")

    def cmd(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        return self.line()

    def inner_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        [pid] = children.split()
        return int(pid)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._err.close()


def process_gone(pid: int) -> bool:
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True  # exited; only its parent's wait is missing
        except OSError:
            return True
        time.sleep(0.1)
    return False


def lock_is_free(path: str) -> bool:
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def opened(s: Server) -> str:
    assert s.line() == "ok"  # the banner comes first
    reply = s.cmd("open").split()
    assert reply[0] == "ok", s.stderr
    return unquote(reply[1])


# -- autopkgtest-hw run -------------------------------------------------------


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    summary: list[str]

    def line(self, test: str) -> str:
        """The one summary line of ``test`` (autopkgtest may print a SKIP twice)."""
        lines = {ln for ln in self.summary if ln.split(None, 1)[0] == test}
        assert len(lines) == 1, f"summary lines for {test}: {lines}\n{self.stderr[-4000:]}"
        return lines.pop()

    def result(self, test: str) -> str:
        return self.line(test).split(None, 1)[1]


def hw_env(program: Path | None) -> dict[str, str]:
    """The environment of ``autopkgtest-hw run`` with ``program`` as its autopkgtest."""
    env = _checkout_env()
    env.pop("AUTOPKGTEST_HW_AUTOPKGTEST", None)
    if program is not None:
        env["AUTOPKGTEST_HW_AUTOPKGTEST"] = str(program)
    return env


def run_hw(args: list[str], program: Path | None, summary: Path, timeout: int = 900) -> Result:
    """``autopkgtest-hw run --summary-file=SUMMARY ARGS`` with ``program`` as autopkgtest."""
    proc = subprocess.run(
        [str(AUTOPKGTEST_HW), "run", f"--summary-file={summary}", *args],
        env=hw_env(program),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    lines = summary.read_text().splitlines() if summary.exists() else []
    return Result(proc.returncode, proc.stdout, proc.stderr, lines)


def make_tests_tree(where: Path, stanzas: list[str], scripts: dict[str, str] | None = None) -> Path:
    """A source tree with only debian/tests (autopkgtest runs it as built-tree, no build)."""
    tests = where / "debian" / "tests"
    tests.mkdir(parents=True)
    (tests / "control").write_text("\n".join(s.strip() + "\n" for s in stanzas))
    for name, text in (scripts or {}).items():
        path = tests / name
        path.write_text(text)
        path.chmod(0o755)
    return where


def command_test(
    name: str, restrictions: str = "", command: str = "true", depends: str = ""
) -> str:
    text = f"Test-Command: {command}\nFeatures: test-name={name}\nDepends: {depends}\n"
    if restrictions:
        text += f"Restrictions: {restrictions}\n"
    return text


POCL_CPU = {
    "classes": ["opencl"],
    "model": "pthread-AMD EPYC 7B13",
    "opencl_version": "3.0",
    "opencl_type": "cpu",
    "opencl_platform": "Portable Computing Language",
    "opencl_extensions": ["cl_khr_fp64"],
}
TESLA_T4 = {
    "classes": ["gpu", "cuda", "vulkan"],
    "vendor": "nvidia",
    "model": "Tesla T4",
    "pci_address": "0000:3b:00.0",
    "pci_id": "10de:1eb8",
    "memory": 16106127360,
    "arch": "sm_75",
    "compute_capability": "7.5",
    "driver": "nvidia",
    "driver_version": "535.104.05",
    "cuda_version": "12.2",
}


def write_inventory(path: Path, devices: list[dict[str, object]]) -> Path:
    """A saved inventory, as ``autopkgtest-hw detect --json`` writes it."""
    data = {
        "version": 1,
        "cpu": {"arch": "amd64", "vendor": "amd", "cores": 2, "memory": 8 << 30},
        "devices": devices,
        "detectors": [{"name": "saved", "status": "ok", "detail": "test", "devices": 0}],
    }
    path.write_text(json.dumps(data))
    return path


def have_hwgpu() -> bool:
    """Whether autopkgtest-virt-hwgpu is there (it is being written alongside)."""
    found = shutil.which("autopkgtest-virt-hwgpu", path=hw_env(None)["PATH"])
    return found is not None and importlib.util.find_spec("autopkgtest_hw.virt.server") is not None
