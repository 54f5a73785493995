"""Look inside a testbed with plain POSIX sh: its CPU, RAM, architecture and device nodes.

The testbed may have no Python, so the probe is one ``sh -c`` script run
through the inner server's auxverb (the ``print-execute-command`` reply).  It
prints sections that :func:`parse` reads back.
"""

from __future__ import annotations

import glob
import os
import selectors
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.detect.cpu import MACHINE_TO_DPKG, parse_cpuinfo, parse_memtotal, this_machine
from autopkgtest_hw.spec.hardware import GPU_NODE_DIRS, GPU_NODE_NAMES
from autopkgtest_hw.spec.inventory import Cpu

#: Node states the script reports.
PRESENT = "char"
NOT_CHAR = "not-char"
MISSING = "missing"

#: Sections: the CPU of the testbed, then one line per node asked for (``$@``),
#: then every GPU node it sees, then the PCI functions the testbed sees (a VM's
#: guest addresses and drivers). Shell built-ins only where a loop runs (``read``,
#: ``cd -P``, ``${x##*/}``): a fork per PCI function cost tens of milliseconds on a busy host.
SCRIPT = r"""
echo '@@nproc'
nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || true
echo '@@arch'
dpkg --print-architecture 2>/dev/null || echo "uname:$(uname -m)"
echo '@@meminfo'
while IFS= read -r line; do
  case "$line" in MemTotal:*) echo "$line"; break;; esac
done < /proc/meminfo
echo '@@cpuinfo'
while IFS= read -r line; do
  [ -z "$line" ] && break
  echo "$line"
done < /proc/cpuinfo
echo '@@nodes'
for n in "$@"; do
  if [ -c "$n" ]; then echo "char $n"
  elif [ -e "$n" ]; then echo "not-char $n"
  else echo "missing $n"; fi
done
echo '@@gpunodes'
for d in @GPU_NODE_DIRS@ $(for n in "$@"; do dirname "$n"; done); do
  for f in @GPU_NODE_NAMES@; do
    [ -c "$f" ] && echo "$f"
  done
done
echo '@@pci'
for d in /sys/bus/pci/devices/*; do
  [ -r "$d/vendor" ] || continue
  read -r vendor < "$d/vendor"
  read -r device < "$d/device"
  drv=-
  if [ -L "$d/driver" ] && cd -P "$d/driver" 2>/dev/null; then drv=${PWD##*/}; fi
  echo "${d##*/} $vendor $device $drv"
done
cd /
echo '@@end'
""".replace("@GPU_NODE_DIRS@", " ".join(GPU_NODE_DIRS)).replace(
    "@GPU_NODE_NAMES@", " ".join(f'"$d"/{name}' for name in GPU_NODE_NAMES)
)

#: A probe that takes longer than this is a testbed that does not answer.
TIMEOUT = 120
#: Bytes of the probe's output read (a real testbed prints a few KiB; its stderr is
#: kept up to ERR_LIMIT): a testbed that prints more is stopped, not read into memory.
MAX_OUTPUT = 1 << 20
ERR_LIMIT = 64 << 10


class ProbeError(HwError):
    """The probe could not run in the testbed, or printed nothing we can read."""


@dataclass(frozen=True)
class PciFunction:
    address: str
    pci_id: str  # vvvv:dddd, lowercase
    driver: str | None


@dataclass(frozen=True)
class ProbeResult:
    cpu: Cpu
    nodes: dict[str, str] = field(default_factory=dict)  # node -> PRESENT/NOT_CHAR/MISSING
    pci: tuple[PciFunction, ...] = ()
    #: Every GPU node the testbed sees (nvidiaN, cardN, renderDN, accelN in /dev, /dev/dri,
    #: /dev/accel and the directories of the nodes asked for).
    gpu_nodes: tuple[str, ...] = ()

    def foreign_gpu_nodes(self, allocated: Sequence[str]) -> list[str]:
        """GPU nodes the testbed sees that are not among the ``allocated`` ones."""
        mine = set(allocated)
        return [n for n in self.gpu_nodes if n not in mine]

    def missing(self, nodes: Sequence[str]) -> list[str]:
        """The nodes that are not character devices in the testbed, with why."""
        out = []
        for n in nodes:
            state = self.nodes.get(n, MISSING)
            if state == NOT_CHAR:
                out.append(f"{n} (exists but is not a character device)")
            elif state != PRESENT:
                out.append(f"{n} (missing)")
        return out


def command(auxverb: Sequence[str], nodes: Sequence[str]) -> list[str]:
    return [*auxverb, "sh", "-c", SCRIPT, "autopkgtest-hw-probe", *nodes]


def run(auxverb: Sequence[str], nodes: Sequence[str], timeout: float = TIMEOUT) -> ProbeResult:
    """Run the probe through ``auxverb``; raise ProbeError if it fails."""
    argv = command(auxverb, nodes)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise ProbeError(f"cannot run the testbed's auxverb {auxverb[0]!r}: {exc}") from None
    with proc:
        try:
            stdout, stderr = _read_bounded(proc, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    out = stdout.decode("utf-8", "replace")
    if "@@end" not in out:
        err = stderr.decode("utf-8", "replace").strip()
        raise ProbeError(
            f"the probe exited with status {proc.returncode}" + (f": {err[-500:]}" if err else "")
        )
    return parse(out)


def on_this_host(nodes: Sequence[str], sysfs: str = "/sys") -> ProbeResult:
    """What :data:`SCRIPT` reports, read in this process: for a testbed that is this host.

    The same facts from the same places (the CPUs this process may use, dpkg's
    architecture, /proc, the nodes, /sys/bus/pci), without a shell, ``nproc``
    and ``dpkg`` started through the testbed on every ``open`` (null).
    """
    cpu = this_machine()
    states = {n: _node_state(n) for n in nodes}
    gpu_nodes: list[str] = []
    for d in (*GPU_NODE_DIRS, *(os.path.dirname(n) for n in nodes)):
        for name in GPU_NODE_NAMES:
            gpu_nodes += [f for f in sorted(glob.glob(os.path.join(d, name))) if _is_char(f)]
    pci = []
    devices = os.path.join(sysfs, "bus/pci/devices")
    try:
        functions = sorted(os.listdir(devices))
    except OSError:
        functions = []
    for address in functions:
        d = os.path.join(devices, address)
        try:
            with open(os.path.join(d, "vendor")) as v, open(os.path.join(d, "device")) as i:
                pci_id = f"{_hex4(v.readline())}:{_hex4(i.readline())}"
        except OSError:
            continue
        link = os.path.join(d, "driver")
        driver = os.path.basename(os.path.realpath(link)) if os.path.islink(link) else None
        pci.append(PciFunction(address, pci_id, driver))
    return ProbeResult(
        cpu=cpu, nodes=states, pci=tuple(pci), gpu_nodes=tuple(dict.fromkeys(gpu_nodes))
    )


def _node_state(node: str) -> str:
    try:
        mode = os.stat(node).st_mode
    except OSError:
        return MISSING
    return PRESENT if stat.S_ISCHR(mode) else NOT_CHAR


def _is_char(path: str) -> bool:
    return _node_state(path) == PRESENT


def _read_bounded(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """The probe's stdout and stderr, at most MAX_OUTPUT and ERR_LIMIT bytes, within ``timeout``."""
    assert proc.stdout is not None and proc.stderr is not None
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    sizes = dict.fromkeys(chunks, 0)
    limits = {proc.stdout.fileno(): MAX_OUTPUT, proc.stderr.fileno(): ERR_LIMIT}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProbeError(f"the probe did not finish in {timeout:.0f} s")
            for key, _ in sel.select(left):
                fd = int(key.fd)
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(fd)
                    continue
                sizes[fd] += len(data)
                if sizes[fd] <= limits[fd]:
                    chunks[fd].append(data)
                elif fd == proc.stdout.fileno():
                    raise ProbeError(
                        f"the probe printed more than {MAX_OUTPUT >> 20} MiB: the testbed's shell"
                        " or its auxverb prints what the probe did not (check the inner server)"
                    )
    return b"".join(chunks[proc.stdout.fileno()]), b"".join(chunks[proc.stderr.fileno()])


def parse(text: str) -> ProbeResult:
    """Read the probe's output back into a CPU, node states and PCI functions."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    cores = _first_int(sections.get("nproc", []))
    arch = _arch(sections.get("arch", []))
    memory = parse_memtotal(sections.get("meminfo", []))
    info = parse_cpuinfo("\n".join(sections.get("cpuinfo", [])) + "\n\n")
    cpu = Cpu(
        arch=arch,
        model=info.get("model"),
        vendor=info.get("vendor"),
        flags=tuple(info.get("flags", "").split()),
        cores=cores,
        memory=memory,
    )
    nodes: dict[str, str] = {}
    for line in sections.get("nodes", []):
        state, _, node = line.partition(" ")
        if node:
            nodes[node] = state
    pci = []
    for line in sections.get("pci", []):
        parts = line.split()
        if len(parts) == 4:
            address, vendor, device, driver = parts
            pci_id = f"{_hex4(vendor)}:{_hex4(device)}"
            pci.append(PciFunction(address, pci_id, None if driver == "-" else driver))
    gpu_nodes = tuple(dict.fromkeys(n for n in sections.get("gpunodes", []) if n))
    return ProbeResult(cpu=cpu, nodes=nodes, pci=tuple(pci), gpu_nodes=gpu_nodes)


def _first_int(lines: list[str]) -> int | None:
    for line in lines:
        if line.strip().isdigit():
            return int(line.strip())
    return None


def _arch(lines: list[str]) -> str | None:
    for line in lines:
        line = line.strip()
        if line.startswith("uname:"):
            machine = line[len("uname:") :]
            return MACHINE_TO_DPKG.get(machine, machine.lower() or None)
        if line:
            return line
    return None


def _hex4(text: str) -> str:
    text = text.strip().lower()
    return text[2:] if text.startswith("0x") else text
