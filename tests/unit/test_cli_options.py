"""One definition per option, and one place that turns an error into an exit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw import cli
from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.virt import server

COMMANDS = Path(cli.__file__).parent / "commands"


def _hw(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _virt(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autopkgtest_hw.virt.server", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("run", "argv"),
    [
        (_virt, ["--count", "{}", "null"]),
        (_hw, ["build", "--count", "{}", "pkg.dsc", "null"]),
        (_hw, ["shell", "--count", "{}", "null"]),
    ],
    ids=["hwgpu", "build", "shell"],
)
@pytest.mark.parametrize(
    ("value", "says"), [("0", "must be at least 1"), ("two", "not a number: 'two'")]
)
def test_count_means_the_same_in_every_command(
    run: object, argv: list[str], value: str, says: str
) -> None:
    proc = run(*[w.format(value) for w in argv])  # type: ignore[operator]
    assert proc.returncode == Exit.USAGE, proc.stderr
    assert f"argument --count: {says}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--lock-dir", "--inventory", "--no-cache", "--lock-timeout"])
def test_shared_options_read_alike_everywhere(option: str) -> None:
    helps = set()
    for name in ("build", "shell", "status"):
        parser = cli.build_parser(name)
        sub = next(a for a in parser._actions if a.dest == "command").choices[name]  # type: ignore[union-attr]
        for action in sub._actions:
            if option in action.option_strings:
                helps.add((action.help, action.default, action.type))
    for action in server.build_parser()._actions:
        if option in action.option_strings:
            helps.add((action.help, action.default, action.type))
    assert len(helps) == 1, helps


def test_shell_passes_its_options_to_the_virt_server_as_it_reads_them() -> None:
    from autopkgtest_hw.commands import shell

    parser = cli.build_parser("shell")
    args = parser.parse_args(
        ["shell", "--count", "2", "--lock-timeout", "1.5", "--no-cache", "--", "null"]
    )
    argv = shell.virt_argv(args, 60, [], [])
    tail = argv[argv.index("--count") :]
    assert tail[:2] == ["--count", "2"]
    assert "--no-cache" in tail
    assert tail[tail.index("--lock-timeout") + 1] == "1.5"
    parsed = server.build_parser().parse_args(tail)
    assert (parsed.count, parsed.lock_timeout, parsed.no_cache) == (2, 1.5, True)


def _catches_and_exits(handler: ast.ExceptHandler) -> bool:
    """``except ...: log.error(...); return <code>``: cli.main's job, done again."""
    logs = any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "error"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "log"
        for n in ast.walk(handler)
    )
    returns = any(isinstance(n, ast.Return) for n in ast.walk(handler))
    return logs and returns


def test_errors_reach_cli_main_once() -> None:
    offenders = []
    for path in sorted(COMMANDS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and _catches_and_exits(node):
                names = ast.unparse(node.type) if node.type else "everything"
                if "OSError" in names or "FileNotFoundError" in names:
                    continue  # require's exec: the shell's 126/127, not an HwError
                offenders.append(f"{path.name}:{node.lineno}: except {names}")
    assert offenders == []
