"""The site's porterbox policy: who may open sessions, on which devices, for how long.

``/etc/autopkgtest-hw/porterbox.conf``, ``key = value`` lines::

    max-for = 8h            # the longest a session may last, extensions included
    default-for = 1h        # --for when none is given
    warn-before = 10m 1m    # warnings in the session before its end
    allow = alice @porterbox                     # users and @groups; no allow line: everyone
    allow = @students gpus=0,1 max-for=2h        # their devices (--gpu selectors) and maximum

The first ``allow`` line that names the user (or one of their groups)
applies.  The file is read only when root owns it and only root can write it
and its directory: a policy another user could have written is refused.
``AUTOPKGTEST_HW_PORTERBOX_CONF`` names another file, honoured for root only
(a test of the site's policy); every other user gets the site's file.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from dataclasses import dataclass, field

from autopkgtest_hw.base.duration import parse_duration
from autopkgtest_hw.base.errors import Exit, HwError
from autopkgtest_hw.base.text import safe

SITE_CONF = "/etc/autopkgtest-hw/porterbox.conf"
ENV_CONF = "AUTOPKGTEST_HW_PORTERBOX_CONF"
DEFAULT_FOR = 3600.0
DEFAULT_MAX_FOR = 8 * 3600.0
DEFAULT_WARN_BEFORE = (600.0, 60.0)
#: Bounds on the file: lines read, characters per line.
MAX_LINES = 200
MAX_LINE = 1000


class ConfigError(HwError):
    """The site's porterbox.conf is unreadable, unsafe or wrong."""


class NotAllowed(HwError):
    """The policy does not let this user open this session."""

    exit_status = Exit.REFUSED


@dataclass(frozen=True)
class Rule:
    """One ``allow`` line."""

    users: frozenset[str]
    groups: frozenset[str]
    gpus: tuple[str, ...] | None = None
    max_for: float | None = None

    def matches(self, user: str, groups: set[str]) -> bool:
        return user in self.users or bool(self.groups & groups) or "*" in self.users


@dataclass(frozen=True)
class Policy:
    path: str
    max_for: float = DEFAULT_MAX_FOR
    default_for: float = DEFAULT_FOR
    warn_before: tuple[float, ...] = DEFAULT_WARN_BEFORE
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def rule_for(self, user: str, groups: set[str]) -> Rule | None:
        """The rule that applies to ``user``; None: not allowed."""
        if not self.rules:
            return Rule(frozenset({"*"}), frozenset())
        return next((r for r in self.rules if r.matches(user, groups)), None)

    def who(self) -> str:
        names = [*(u for r in self.rules for u in sorted(r.users))]
        names += [f"@{g}" for r in self.rules for g in sorted(r.groups)]
        return ", ".join(safe(n, 40) for n in names[:20]) or "nobody"


def conf_path() -> str:
    """The file to read: the site's, or for root the one the environment names."""
    named = os.environ.get(ENV_CONF)
    if named and os.getuid() == 0:
        return named
    return SITE_CONF


def _check_owner(path: str, st: os.stat_result) -> None:
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{safe(path)} is not owned by root or is writable by others: a porterbox policy"
            " must be root's alone (chown root:root, chmod go-w)"
        )


def load(path: str | None = None) -> Policy:
    """The policy; the defaults when the file does not exist."""
    path = path or conf_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return Policy(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {safe(path)}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{safe(path)} is not a regular file")
        _check_owner(path, st)
        directory = os.path.dirname(os.path.abspath(path))
        _check_owner(directory, os.stat(directory))
        lines = [f.readline(MAX_LINE) for _ in range(MAX_LINES)]
    return parse(path, lines)


def parse(path: str, lines: list[str]) -> Policy:
    values: dict[str, object] = {}
    rules: list[Rule] = []
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, eq, value = (part.strip() for part in line.partition("="))
        where = f"{safe(path)}:{number}"
        if not eq:
            raise ConfigError(f"{where}: not 'key = value': {safe(line, 80)}")
        try:
            if key in ("max-for", "default-for"):
                values[key] = parse_duration(value)
            elif key == "warn-before":
                values[key] = tuple(
                    sorted((parse_duration(v) for v in value.split()), reverse=True)
                )
            elif key == "allow":
                rules.append(_rule(value))
            else:
                raise ValueError(f"unknown key {safe(key, 40)!r}")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    max_for = float(values.get("max-for", DEFAULT_MAX_FOR))  # type: ignore[arg-type]
    default_for = float(values.get("default-for", min(DEFAULT_FOR, max_for)))  # type: ignore[arg-type]
    warn = values.get("warn-before", DEFAULT_WARN_BEFORE)
    assert isinstance(warn, tuple)
    return Policy(path, max_for, default_for, warn, tuple(rules))


def _rule(value: str) -> Rule:
    users: set[str] = set()
    groups: set[str] = set()
    gpus: tuple[str, ...] | None = None
    max_for: float | None = None
    for word in value.split():
        if word.startswith("gpus="):
            gpus = tuple(g for g in word[5:].split(",") if g)
        elif word.startswith("max-for="):
            max_for = parse_duration(word[8:])
        elif word.startswith("@") and len(word) > 1:
            groups.add(word[1:])
        else:
            users.add(word)
    if not users and not groups:
        raise ValueError("allow names no user and no @group")
    return Rule(frozenset(users), frozenset(groups), gpus, max_for)


def groups_of(uid: int) -> tuple[str, set[str]]:
    """The user's name and the names of their groups (primary and supplementary)."""
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return str(uid), set()
    names = {g.gr_name for g in grp.getgrall() if pw.pw_name in g.gr_mem}
    with contextlib.suppress(KeyError):
        names.add(grp.getgrgid(pw.pw_gid).gr_name)
    return pw.pw_name, names


@dataclass(frozen=True)
class Grant:
    """What this user may open: for how long at most, on which devices (None: any)."""

    max_for: float
    gpus: tuple[str, ...] | None


def grant(policy: Policy, uid: int, wanted_gpus: list[str]) -> Grant:
    """What ``uid`` may have; NotAllowed with the reason and the remedy otherwise."""
    user, groups = groups_of(uid)
    rule = policy.rule_for(user, groups)
    if rule is None:
        raise NotAllowed(
            f"user {safe(user, 40)} may not open porterbox sessions on this host"
            f" ({safe(policy.path)} allows {policy.who()});"
            " ask the porterbox's administrators to add you"
        )
    limit = min(policy.max_for, rule.max_for or policy.max_for)
    if rule.gpus is not None:
        outside = [g for g in wanted_gpus if g not in rule.gpus]
        if outside:
            raise NotAllowed(
                f"user {safe(user, 40)} may not use --gpu {safe(outside[0], 60)} here;"
                f" allowed: --gpu {' / '.join(safe(g, 60) for g in rule.gpus)}"
            )
    return Grant(limit, rule.gpus)
