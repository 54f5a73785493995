"""A profile's debci architecture ARCH+PROFILE: built by the fleet, split by the hwgpu backend.

debci 4 ignores ``debci-worker --tag``: a profile's workers run as the
architecture ``ARCH+PROFILE`` and consume its queue; the backend
(debci/backends/hwgpu/arch.sh) takes the testbed's architecture from before
the ``+`` and refuses anything but exactly ``ARCH`` or ``ARCH+PROFILE``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from autopkgtest_hw.cli import main
from autopkgtest_hw.fleet.broker import BrokerError, debci_queue_scheme
from autopkgtest_hw.fleet.profiles import PER_ARCH, TAGGED, FleetError, read_fleet

ROOT = Path(__file__).resolve().parents[2]
ARCH_SH = ROOT / "debci" / "backends" / "hwgpu" / "arch.sh"
SHELLS = [s for s in ("dash", "bash") if shutil.which(s)] or ["sh"]


def split(word: str, shell: str = "sh") -> tuple[str, str] | None:
    """What the backend makes of ``word``: (arch, profile), or None when refused."""
    script = (
        f'. "{ARCH_SH}"; LC_ALL=C.UTF-8;'
        ' if hwgpu_split_arch "$1"; then printf "%s\\n%s\\n" "$hwgpu_arch" "$hwgpu_arch_profile";'
        " else exit 3; fi"
    )
    proc = subprocess.run(
        [shell, "-c", script, "split", word], capture_output=True, text=True, check=False
    )
    if proc.returncode == 3:
        return None
    assert proc.returncode == 0, proc.stderr
    arch, profile = proc.stdout.split("\n")[:2]
    return arch, profile


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("amd64", ("amd64", "")),  # debci 3's workers, and debci's own jobs
        ("amd64+h100", ("amd64", "h100")),
        ("arm64+mi210.site-2", ("arm64", "mi210.site-2")),
        ("x32+a", ("x32", "a")),
        ("kfreebsd-amd64+p", ("kfreebsd-amd64", "p")),
    ],
)
def test_the_real_architecture_is_before_the_plus(
    shell: str, word: str, expected: tuple[str, str]
) -> None:
    assert split(word, shell) == expected


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "word",
    [
        "",
        "+",
        "+h100",
        "amd64+",
        "amd64+h100+x",  # only one "+"
        "amd64++h100",
        "amd64+.h100",
        "amd64+-h100",
        "amd64+h_100",
        "amd64+H100",
        "AMD64+h100",
        "-amd64+h100",
        "amd64+h100/../x",
        "amd64+../../etc",
        "amd64+h 100",
        "amd64+h100\nx",
        "amd64\n",
        "amd64+h100;id",
        "amd64+$(id)",
        "amd64+`id`",
        "amd64+h100*",
        "amd64+h1[0]",
        "amd64+\u00e9",
        "a" * 33,
        "amd64+" + "p" * 65,
    ],
)
def test_anything_else_is_refused(shell: str, word: str) -> None:
    assert split(word, shell) is None


def test_longest_words_allowed() -> None:
    assert split("a" * 32 + "+" + "p" * 64) == ("a" * 32, "p" * 64)


def _fleet(tmp_path: Path, name: str = "h100") -> Path:
    (tmp_path / "fleet").write_text(
        textwrap.dedent(
            f"""\
            Profile: {name}
            Architecture: amd64
            Inventory: detect

            Profile: cpu
            Architecture: amd64
            Ordinary: yes
            """
        )
    )
    return tmp_path / "fleet"


@pytest.mark.parametrize("name", ["h100", "mi210.site-2", "a", "p" * 64])
def test_what_the_fleet_builds_the_backend_splits_back(tmp_path: Path, name: str) -> None:
    fleet = read_fleet(str(_fleet(tmp_path, name)), PER_ARCH)
    profile = fleet.get(name)
    assert profile is not None
    assert split(profile.debci_arch) == ("amd64", name)
    # debci 4's worker of the profile runs as ARCH+PROFILE and consumes its queue,
    # the one debci 4 publishes that architecture's jobs and retries to.
    assert profile.worker_options == ("--arch", f"amd64+{name}")
    assert profile.queue == f"debci-tests-amd64+{name}-hwgpu"


def test_the_schemes_name_each_profile_queue(tmp_path: Path) -> None:
    tagged = read_fleet(str(_fleet(tmp_path)))  # debci 3, the default
    h100 = tagged.get("h100")
    assert h100 is not None
    assert (h100.queue, h100.worker_options) == ("debci-tests-amd64-hwgpu_h100", ("--tag", "h100"))
    for scheme in (TAGGED, PER_ARCH):
        cpu = read_fleet(str(_fleet(tmp_path)), scheme).get("cpu")
        assert cpu is not None  # debci's own workers: unchanged
        assert (cpu.queue, cpu.worker_options, cpu.debci_arch) == (
            "debci-tests-amd64-lxc",
            (),
            "amd64",
        )
    with pytest.raises(FleetError, match="unknown queue scheme"):
        read_fleet(str(_fleet(tmp_path)), "nope")


@pytest.mark.parametrize("name", ["h100+x", "a+b"])
def test_a_profile_name_has_no_plus(tmp_path: Path, name: str) -> None:
    with pytest.raises(FleetError, match=r"fleet:1: invalid Profile: .*no '\+' in a name"):
        read_fleet(str(_fleet(tmp_path, name)))


def test_profile_command_prints_the_worker_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = str(_fleet(tmp_path))
    for scheme, options, queue in (
        (TAGGED, "--tag h100", "debci-tests-amd64-hwgpu_h100"),
        (PER_ARCH, "--arch amd64+h100", "debci-tests-amd64+h100-hwgpu"),
    ):
        argv = ["profile", "--fleet", fleet, "--debci-queues", scheme, "h100"]
        assert main([*argv, "--worker-options"]) == 0
        assert capsys.readouterr().out == options + "\n"
        assert main([*argv, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert (info["queue"], info["queues"]) == (queue, scheme)
        assert info["worker_options"] == options.split()
    assert main(["profile", "--fleet", fleet, "--worker-options", "cpu"]) == 1
    assert "started without --tag" in capsys.readouterr().err


def _fake_debci(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "debci"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.parametrize(
    ("body", "scheme"),
    [
        # debci 3.6 and 3.12: the worker's queue is debci_amqp_queue plus --tag's suffix
        ('[ "$1 $2" = "config amqp_queue" ] && echo amqp_queue=debci-tests-amd64-lxc\n', TAGGED),
        # debci 4.4: no such key (and no tags)
        ("echo 'E: key amqp_queue not found!' >&2; exit 1\n", PER_ARCH),
    ],
)
def test_the_scheme_is_the_installed_debci_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, scheme: str
) -> None:
    _fake_debci(tmp_path, body, monkeypatch)
    assert debci_queue_scheme() == scheme


def test_a_debci_that_cannot_say_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_debci(tmp_path, "echo 'E: no $debci_base_dir' >&2; exit 1\n", monkeypatch)
    with pytest.raises(BrokerError, match="'debci config amqp_queue' failed"):
        debci_queue_scheme()


def test_without_debci_there_is_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert debci_queue_scheme() is None
