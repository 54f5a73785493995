"""The lock directory, opened once and checked; lock files opened only relative to it.

Every user's runs share one directory (``/run/lock/autopkgtest-hw``), so
anything in it may have been planted by another local user.  The rules (see
docs/security.md):

* the directory is opened with ``O_NOFOLLOW``; it must be owned by root or by
  us, and if others may write to it, it must be sticky (like ``/tmp``).  An
  existing directory's mode is never changed; only a directory we create is
  made ``1777`` (the default one, shared) -- a private ``--lock-dir`` that
  already exists stays as it is;
* a lock file is opened with ``openat`` relative to that directory's
  descriptor, ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY``, and used only if it is a
  regular file with one link: a symlink, FIFO, device or hard link planted by
  another user is refused (root removes a planted symlink), so nothing is ever
  written or truncated through a name someone else chose;
* who may open a lock file is who may open the device: it gets the group and
  the group/other read-write bits of the device's nodes (``/dev/nvidia0``
  0666: everybody; ``/dev/dri/renderD128`` root:render 0660: the render
  group; no node on this host: only its owner and root).  Holding an flock
  needs only a read descriptor, so a user who could read the file could block
  the device; a user who can open the device can use it anyway, so locking it
  gives them nothing more;
* after the flock is taken, the name must still be the file we locked (a
  file removed and re-created in between is retried), and root takes over a
  lock file another user created once it holds it exclusively.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from autopkgtest_hw.base.errors import HwError

#: Modes of the directories we create: the default one is shared like /tmp.
SHARED_DIR_MODE = 0o1777


class LockDirError(HwError):
    """The lock directory or a lock file in it cannot be trusted or used."""


@dataclass(frozen=True)
class Access:
    """Who may open a device's lock file: its group and mode."""

    gid: int | None
    mode: int


def device_access(nodes: Sequence[str]) -> Access:
    """The lock file's group and mode: the read-write access the device's nodes give.

    A user may open the lock file iff they may open every node of the device
    for reading and writing; with no node on this host, only the owner (and
    root) may.
    """
    sts = []
    for n in nodes:
        with contextlib.suppress(OSError):
            sts.append(os.stat(n))
    if not sts:
        return Access(None, 0o600)
    mode = 0o600
    if all(st.st_mode & 0o006 == 0o006 for st in sts):
        mode |= 0o066
    gids = {st.st_gid for st in sts}
    gid = gids.pop() if len(gids) == 1 else None
    if gid is not None and all(st.st_mode & 0o060 == 0o060 for st in sts):
        mode |= 0o060
    return Access(gid, mode)


class LockDir:
    """An open, checked lock directory (``with LockDir(path) as d: ...``)."""

    def __init__(self, path: str, create: bool = True) -> None:
        self.path = path
        self.fd = open_dir(path, create)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> LockDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subdir(self, name: str, create: bool = True) -> LockDir:
        """A directory inside this one, checked the same way (the ticket queue)."""
        sub = LockDir.__new__(LockDir)
        sub.path = os.path.join(self.path, name)
        sub.fd = _open_checked_dir(sub.path, name, self.fd, create)
        return sub

    def open_file(self, name: str, access: Access, *, create: bool = True) -> int:
        """A descriptor of the lock file ``name``: regular, one link, never through a symlink."""
        return open_lock_file(self.fd, self.path, name, access, create=create)

    def same_file(self, name: str, fd: int) -> bool:
        """Whether ``name`` still is the file open as ``fd`` (not removed or replaced)."""
        try:
            a = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            b = os.fstat(fd)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def take_over(self, fd: int, access: Access) -> None:
        """As root, holding ``fd`` exclusively: make the file root's with the device's access."""
        if os.geteuid() != 0:
            return
        with contextlib.suppress(OSError):
            st = os.fstat(fd)
            gid = access.gid if access.gid is not None else 0
            if st.st_uid != 0 or st.st_gid != gid:
                os.fchown(fd, 0, gid)
            if stat.S_IMODE(st.st_mode) != access.mode:
                os.fchmod(fd, access.mode)


def open_dir(path: str, create: bool) -> int:
    """A descriptor of the checked lock directory ``path``, created if asked and missing."""
    parent, name = os.path.split(os.path.abspath(path))
    if create:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise LockDirError(
                f"cannot create the lock directory {path}: {exc.strerror}"
                " (choose another one with --lock-dir)"
            ) from None
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise LockDirError(
            f"cannot open the lock directory {path}: {exc.strerror}"
            " (choose another one with --lock-dir)"
        ) from None
    try:
        return _open_checked_dir(path, name, pfd, create)
    finally:
        os.close(pfd)


def _open_checked_dir(path: str, name: str, parent_fd: int, create: bool) -> int:
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LockDirError(
                f"cannot create the lock directory {path}: {exc.strerror}"
                " (choose another one with --lock-dir)"
            ) from None
        else:
            # Ours, just made: shared by every user's runs, like /tmp.  Set
            # through a descriptor of what we made, never by name.
            with contextlib.suppress(OSError):
                dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
                try:
                    if os.fstat(dfd).st_uid == os.geteuid():
                        os.fchmod(dfd, SHARED_DIR_MODE)
                finally:
                    os.close(dfd)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=parent_fd)
    except OSError as exc:
        why = exc.strerror
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            why = "not a directory (a symbolic link or a file is not trusted)"
        raise LockDirError(
            f"cannot use the lock directory {path}: {why} (choose another one with --lock-dir)"
        ) from None
    st = os.fstat(fd)
    problem = None
    if st.st_uid not in (0, os.geteuid()):
        problem = f"it belongs to uid {st.st_uid}, not to root or to us"
    elif st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        problem = "others may write to it and it is not sticky (chmod +t): anybody could swap locks"
    if problem:
        os.close(fd)
        raise LockDirError(
            f"refusing the lock directory {path}: {problem} (choose another one with --lock-dir)"
        )
    return fd


def open_lock_file(dir_fd: int, dir_path: str, name: str, access: Access, *, create: bool) -> int:
    """Open ``name`` in the directory ``dir_fd`` for locking (see the module's rules)."""
    path = os.path.join(dir_path, name)
    base = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    for _ in range(10):
        created = False
        try:
            fd = os.open(name, base | os.O_RDWR, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                fd = os.open(name, base | os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
                created = True
            except FileExistsError:
                continue  # somebody made it just now: open theirs
        except PermissionError:
            # Not ours to write: another user's run made it for a device we may not use
            # (or a run of ours may only read it).
            try:
                fd = os.open(name, base | os.O_RDONLY, dir_fd=dir_fd)
            except OSError:
                raise LockDirError(
                    f"cannot open the lock file {path}: permission denied (only users who may"
                    " open the device may lock it; see docs/security.md)"
                ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP and _remove_planted_link(dir_fd, name):
                continue
            what = (
                "it is a symbolic link, which is never followed"
                if exc.errno == errno.ELOOP
                else exc.strerror
            )
            raise LockDirError(
                f"cannot open the lock file {path}: {what} (remove it, or choose another"
                " --lock-dir)"
            ) from None
        st = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(st.st_mode):
            problem = "it is not a regular file"
        elif st.st_nlink != 1:
            problem = f"it has {st.st_nlink} hard links"
        if problem:
            os.close(fd)
            raise LockDirError(
                f"refusing the lock file {path}: {problem} (planted? remove it, or choose"
                " another --lock-dir)"
            )
        if created:
            with contextlib.suppress(OSError):
                if access.gid is not None and access.gid != st.st_gid:
                    os.fchown(fd, -1, access.gid)
                os.fchmod(fd, access.mode)
        # Blocking operations are wanted from here on (none: flock has its own flag).
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd
    raise LockDirError(f"cannot open the lock file {path}: it keeps changing under us")


def _remove_planted_link(dir_fd: int, name: str) -> bool:
    """Remove a symlink planted where a lock file belongs (root may, in a sticky dir)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            return False
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        return False
    from autopkgtest_hw.base import log

    log.warning(f"removed a symbolic link planted as the lock file {name} (owner uid {st.st_uid})")
    return True


def may_use(uid: int, nodes: Sequence[str]) -> bool:
    """Whether user ``uid`` may open every node of a device for reading and writing."""
    if uid == 0:
        return True
    try:
        pw = pwd.getpwuid(uid)
        groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except (KeyError, OSError):
        groups = set()
    found = False
    for n in nodes:
        try:
            st = os.stat(n)
        except OSError:
            continue
        found = True
        if st.st_uid == uid:
            bits = 0o600
        elif st.st_gid in groups:
            bits = 0o060
        else:
            bits = 0o006
        if st.st_mode & bits != bits:
            return False
    return found


def squatted(fd: int, holder_uids: set[int], nodes: Sequence[str]) -> bool:
    """As root: the lock file ``fd`` was made, and is held, only by users barred from the device.

    Such a lock guards nothing (its holders cannot open the device) and only
    blocks the device; root may remove it and lock a new file.
    """
    if os.geteuid() != 0 or not holder_uids:
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    if st.st_uid == 0 or may_use(st.st_uid, nodes):
        return False
    return not any(may_use(u, nodes) for u in holder_uids)
