"""The site's porterbox policy: root's file only, who may, for how long, on which devices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopkgtest_hw.porterbox import config

ROOT = os.geteuid() == 0


def write(tmp_path: Path, text: str, mode: int = 0o644) -> str:
    path = tmp_path / "porterbox.conf"
    path.write_text(text)
    path.chmod(mode)
    tmp_path.chmod(0o755)
    return str(path)


def test_the_policy_is_read_with_rules_limits_and_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# site\nmax-for = 4h\ndefault-for = 30m\nwarn-before = 1m 10m\n"
        "allow = alice @staff\nallow = @students gpus=0,1 max-for=2h\n",
    )
    policy = config.load(path)
    assert (policy.max_for, policy.default_for, policy.warn_before) == (14400, 1800, (600, 60))
    assert policy.rule_for("alice", set()) is not None
    student = policy.rule_for("bob", {"students"})
    assert student is not None and student.gpus == ("0", "1") and student.max_for == 7200
    assert policy.rule_for("mallory", {"users"}) is None


def test_without_allow_lines_everyone_may(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "max-for = 1h\n")).rule_for("anyone", set()) is not None
    assert config.load(str(tmp_path / "absent.conf")).max_for == config.DEFAULT_MAX_FOR


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("max-for = forever\n", "not a duration"),
        ("colour = blue\n", "unknown key"),
        ("allow = gpus=0\n", "names no user"),
        ("just words\n", "not 'key = value'"),
    ],
)
def test_a_wrong_line_is_named(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(config.ConfigError, match=error) as exc:
        config.load(write(tmp_path, text))
    assert ":1:" in str(exc.value)


@pytest.mark.skipif(not ROOT, reason="needs root (a file of another owner)")
def test_a_policy_another_user_could_write_is_refused(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="writable by others"):
        config.load(write(tmp_path, "max-for = 2400h\n", mode=0o666))
    path = write(tmp_path, "max-for = 2400h\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(config.ConfigError, match="not owned by root"):
        config.load(path)


@pytest.mark.skipif(not ROOT, reason="needs root (setpriv to another user)")
def test_the_environment_names_another_file_for_root_only(tmp_path: Path) -> None:
    lax = write(tmp_path, "max-for = 2400h\n")
    code = "from autopkgtest_hw.porterbox import config; print(config.conf_path())"
    env = {**os.environ, config.ENV_CONF: lax, "PYTHONPATH": str(Path(__file__).parents[2])}
    as_root = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert as_root.stdout.strip() == lax
    as_nobody = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    assert as_nobody.stdout.strip() == config.SITE_CONF


def test_a_user_outside_every_rule_is_refused_with_the_remedy(tmp_path: Path) -> None:
    policy = config.load(write(tmp_path, "allow = @nobody-has-this-group\n"))
    with pytest.raises(config.NotAllowed, match="ask the porterbox's administrators"):
        config.grant(policy, os.getuid(), [])


def test_devices_and_maximum_come_from_the_users_rule(tmp_path: Path) -> None:
    me = config.groups_of(os.getuid())[0]
    policy = config.load(write(tmp_path, f"max-for = 8h\nallow = {me} gpus=1 max-for=1h\n"))
    granted = config.grant(policy, os.getuid(), ["1"])
    assert granted.max_for == 3600 and granted.gpus == ("1",)
    with pytest.raises(config.NotAllowed, match="may not use --gpu 0"):
        config.grant(policy, os.getuid(), ["0"])
