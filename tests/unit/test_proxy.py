"""The proxy and the probe: forwarding, the capabilities rewrite and its round trip, the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote

import pytest

from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory
from autopkgtest_hw.virt import probe
from autopkgtest_hw.virt.server import build_parser

ROOT = Path(__file__).resolve().parent.parent.parent
HWGPU = ROOT / "virt-server" / "autopkgtest-virt-hwgpu"

#: An inner server that logs every command it gets and answers like VirtSubproc.
FAKE_INNER = textwrap.dedent(
    """\
    #!/usr/bin/python3
    import os, sys
    log = open(os.environ["FAKE_LOG"], "a")
    log.write("argv " + " ".join(sys.argv[1:]) + "\\n"); log.flush()
    mode = os.environ.get("FAKE_MODE", "")
    if mode == "bad-banner":
        print("error: no image", flush=True); sys.exit(3)
    print("ok", flush=True)
    for line in sys.stdin:
        log.write(line); log.flush()
        cmd = line.split()[0]
        if cmd == "quit":
            sys.exit(0)
        if cmd == "capabilities":
            print("ok revert root-on-testbed", flush=True)
        elif cmd == "open":
            print("ok /tmp/scratch", flush=True)
        elif cmd == "print-execute-command":
            print("ok env", flush=True)
        elif cmd == "copydown" and mode == "die-on-copy":
            sys.exit(12)
        else:
            print("ok", flush=True)
    """
)


def fake_inner(tmp_path: Path) -> Path:
    path = tmp_path / "autopkgtest-virt-fake"
    path.write_text(FAKE_INNER)
    path.chmod(0o755)
    return path


def run_hwgpu(
    tmp_path: Path, args: list[str], commands: str, mode: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "FAKE_LOG": str(tmp_path / "log"), "FAKE_MODE": mode}
    return subprocess.run(
        [sys.executable, str(HWGPU), "--lock-dir", str(tmp_path / "locks"), *args],
        input=commands,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def inventory_file(tmp_path: Path, *devices: Device) -> str:
    path = tmp_path / "inv.json"
    path.write_text(Inventory(cpu=Cpu(arch="amd64"), devices=devices).to_json())
    return str(path)


POCL = Device(
    classes=("opencl",),
    vendor="amd",
    model="pthread-haswell",
    opencl_type="cpu",
    opencl_version="3.0",
    opencl_platform="Portable Computing Language",
    opencl_extensions=("cl_khr_fp64",),
    sources=("opencl",),
)


def test_every_line_forwarded_and_capabilities_round_trip(tmp_path: Path) -> None:
    inner = fake_inner(tmp_path)
    inv = inventory_file(tmp_path, POCL)
    commands = "capabilities\nopen\n\ncapabilities\ncopydown /a/ /b/\nclose\nquit\n"
    proc = run_hwgpu(tmp_path, ["--inventory", inv, str(inner), "--its-own", "opt"], commands)
    assert proc.returncode == 0, proc.stderr
    replies = proc.stdout.splitlines()
    # Banner, then exactly one reply per command (none for the empty line, none for quit).
    assert replies[:3] == ["ok", "ok revert root-on-testbed", "ok /tmp/scratch"]
    assert replies[4:] == ["ok", "ok"]
    words = replies[3].split()
    assert words[:3] == ["ok", "revert", "root-on-testbed"]
    assert all(" " not in unquote(w) or w.startswith("hw") for w in words)
    decoded = Inventory.from_capabilities([unquote(w) for w in words[1:]])
    assert decoded is not None
    assert decoded.devices == (POCL,)  # no device nodes: present in any testbed
    assert decoded.cpu.cores is not None and decoded.cpu.arch  # read inside the "testbed"
    assert "hw:opencl" in [unquote(w) for w in words]
    # The inner server got our commands unchanged, plus our print-execute-command probe.
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0] == "argv --its-own opt"
    assert log[1:] == [
        "capabilities",
        "open",
        "print-execute-command",
        "capabilities",
        "copydown /a/ /b/",
        "close",
        "quit",
    ]


def test_capabilities_before_open_are_left_alone(tmp_path: Path) -> None:
    proc = run_hwgpu(
        tmp_path,
        ["--inventory", inventory_file(tmp_path), str(fake_inner(tmp_path))],
        "capabilities\nquit\n",
    )
    assert proc.stdout.splitlines() == ["ok", "ok revert root-on-testbed"]


def test_inner_banner_failure_ends_before_our_banner(tmp_path: Path) -> None:
    proc = run_hwgpu(
        tmp_path,
        ["--inventory", inventory_file(tmp_path), str(fake_inner(tmp_path))],
        "",
        mode="bad-banner",
    )
    assert proc.stdout == ""
    assert proc.returncode == 3
    assert "starting up (banner 'error: no image')" in proc.stderr


def test_inner_dying_mid_command_passes_its_status_on(tmp_path: Path) -> None:
    inner = fake_inner(tmp_path)
    proc = run_hwgpu(
        tmp_path,
        ["--inventory", inventory_file(tmp_path), str(inner)],
        "open\ncopydown /a /b\ncapabilities\n",
        mode="die-on-copy",
    )
    assert proc.stdout.splitlines() == ["ok", "ok /tmp/scratch"]  # no reply to copydown
    assert proc.returncode == 12
    assert (
        "autopkgtest-virt-fake died while running `copydown': it exited with status 12"
        in proc.stderr
    )


def test_inner_options_belong_to_the_inner_server(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--gpu", "0", "--count", "1", "podman", "-d", "img", "--", "--gpu"]
    )
    assert args.gpu == ["0"] and args.count == 1
    assert args.inner == "podman"
    assert args.inner_args == ["-d", "img", "--", "--gpu"]


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (
            ["no-such-server"],
            1,
            "inner virt server autopkgtest-virt-no-such-server not found on PATH",
        ),
        (["hwgpu"], 1, "INNER cannot be hwgpu itself"),
        (["--count", "0", "null"], 2, "argument --count: must be at least 1"),
        (["--lock-timeout", "soon", "null"], 2, "not a number of seconds: 'soon'"),
        ([], 2, "the following arguments are required: INNER"),
        (
            ["--inventory", "/nonexistent.json", "null"],
            1,
            "cannot read inventory /nonexistent.json",
        ),
        (["--gpu", "7", "--inventory", "INV", "null"], 1, "--gpu 7: no device matches"),
    ],
)
def test_bad_input_is_a_clear_message_not_a_traceback(
    tmp_path: Path, args: list[str], rc: int, message: str
) -> None:
    args = [inventory_file(tmp_path, POCL) if a == "INV" else a for a in args]
    proc = run_hwgpu(tmp_path, args, "")
    assert proc.returncode == rc
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_help_has_the_usage_style_of_autopkgtest_virt_servers() -> None:
    text = build_parser().format_help()
    assert text.startswith(
        "usage: autopkgtest-virt-hwgpu [-h] [-d] [options] INNER [inner options...]"
    )
    for word in (
        "--gpu",
        "--count",
        "--lock-dir",
        "--shared",
        "--lock-timeout",
        "--inventory",
        "examples:",
    ):
        assert word in text


def test_script_runs_from_the_checkout_with_the_system_python() -> None:
    proc = subprocess.run(
        ["/usr/bin/python3", str(HWGPU), "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert "autopkgtest-virt-hwgpu" in proc.stdout


# -- the probe ---------------------------------------------------------------------


ARM64_OUTPUT = """\
@@nproc
8
@@arch
uname:aarch64
@@meminfo
MemTotal:       16303360 kB
@@cpuinfo
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve
CPU implementer\t: 0x41
@@nodes
char /dev/dri/renderD128
missing /dev/kfd
@@pci
0000:00:05.0 0x1002 0x740f amdgpu
0000:00:06.0 0x1af4 0x1041 -
@@end
"""


def test_probe_output_parses_into_cpu_nodes_and_pci() -> None:
    r = probe.parse(ARM64_OUTPUT)
    assert r.cpu == Cpu(
        arch="arm64",
        vendor="arm",
        flags=("fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "sve"),
        cores=8,
        memory=16303360 * 1024,
    )
    assert r.missing(["/dev/dri/renderD128", "/dev/kfd"]) == ["/dev/kfd (missing)"]
    assert r.pci == (
        probe.PciFunction("0000:00:05.0", "1002:740f", "amdgpu"),
        probe.PciFunction("0000:00:06.0", "1af4:1041", None),
    )


@pytest.mark.parametrize("shell", ["/bin/dash", "/bin/bash"])
def test_probe_script_runs_in_a_plain_posix_shell(shell: str, tmp_path: Path) -> None:
    # An auxverb that runs the script's "sh" as the shell under test.
    (tmp_path / "sh").symlink_to(shell)
    auxverb = ["env", f"PATH={tmp_path}:/usr/bin:/bin"]
    r = probe.run(auxverb, ["/dev/null", str(tmp_path), "/nonexistent"])
    assert r.nodes == {"/dev/null": "char", str(tmp_path): "not-char", "/nonexistent": "missing"}
    assert r.cpu.cores and r.cpu.memory and r.cpu.arch
    assert r.pci  # this machine has a PCI bus


def test_probe_failure_is_reported_with_the_testbeds_words() -> None:
    with pytest.raises(probe.ProbeError, match="exited with status 1"):
        probe.run(["false"], [])
    with pytest.raises(probe.ProbeError, match="cannot run the testbed's auxverb"):
        probe.run(["/nonexistent/auxverb"], [])


def test_a_probe_that_prints_without_end_is_stopped_not_read_into_memory(tmp_path: Path) -> None:
    """A testbed that would print 256 MiB: the probe fails with the reason after reading ~1 MiB."""
    written = tmp_path / "written"
    written.write_text("0" * 12)
    auxverb = tmp_path / "auxverb"
    auxverb.write_text(  # the count is overwritten in place: a kill never leaves it empty
        f"#!{sys.executable}\n"
        "import os\n"
        f"fd = os.open({str(written)!r}, os.O_WRONLY)\n"
        "n = 0\n"
        "while n < 256 << 20:\n"
        "    n += os.write(1, bytes(65536))\n"
        "    os.pwrite(fd, b'%012d' % n, 0)\n"
    )
    auxverb.chmod(0o755)
    with pytest.raises(probe.ProbeError, match="the probe printed more than 1 MiB"):
        probe.run([str(auxverb)], [])
    assert int(written.read_text()) < 8 << 20, "the testbed's output was read to its end"
