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
  regular file with one link; as root, anything else planted at a lock name
  (symlink, FIFO, socket, device, directory, a hard-linked file nobody holds)
  is removed first, and a user gets an error naming it, so nothing is ever
  written or truncated through a name someone else chose;
* who may open a lock file is who may open the device: it gets the group of
  the device's nodes and read access for those who may read and write them
  (``/dev/nvidia0`` 0666: everybody; ``/dev/dri/renderD128`` root:render
  0660: the render group; no node on this host: only its owner and root).
  Holding an flock needs only a read descriptor, so a user who could read
  the file could block the device; a user who can open the device can use
  it anyway, so locking it gives them nothing more.  Only the owner may write
  the file: nobody else can rewrite the holder record in it.  The owner or
  root sets the mode again at every open, so it follows the device's nodes;
* after the flock is taken, the name must still be the file we locked (a
  file removed and re-created in between is retried), root takes over a
  lock file another user created once it holds it exclusively, and a lock
  file nobody holds any more is removed at release (it is made anew, with
  the device's mode of then, by the next run).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe

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
    """The lock file's group and mode: read access for those with read-write access to the device.

    A user may open the lock file (and so flock it) iff they may open every
    node of the device for reading and writing; with no node on this host,
    only the owner (and root) may.  Only the file's owner may write it: the
    holder record in it is then the owner's word, which nobody else can
    rewrite.
    """
    sts = []
    for n in nodes:
        with contextlib.suppress(OSError):
            sts.append(os.stat(n))
    if not sts:
        return Access(None, 0o600)
    mode = 0o600
    if all(st.st_mode & 0o006 == 0o006 for st in sts):
        mode |= 0o044
    gids = {st.st_gid for st in sts}
    gid = gids.pop() if len(gids) == 1 else None
    if gid is not None and all(st.st_mode & 0o060 == 0o060 for st in sts):
        mode |= 0o040
    return Access(gid, mode)


def apply_access(fd: int, access: Access) -> None:
    """Give the open lock file ``fd`` the device's group and mode, as far as we may.

    Done by the file's owner or root whenever it opens the file, so a file
    made while a node's mode was different follows the node.  Where the group
    cannot be set (a user who is not in it), the group bits follow the
    others' bits: they then grant nothing the others do not have.
    """
    try:
        st = os.fstat(fd)
    except OSError:
        return
    if os.geteuid() not in (0, st.st_uid):
        return
    mode = access.mode
    group_ok = access.gid is None or access.gid == st.st_gid
    if access.gid is not None and not group_ok:
        with contextlib.suppress(OSError):
            os.fchown(fd, -1, access.gid)
            group_ok = True
    if access.gid is None or not group_ok:
        mode = (mode & ~0o070) | ((mode & 0o007) << 3)
    if stat.S_IMODE(st.st_mode) != mode:
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)


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
        """A directory inside this one, checked the same way (the ticket queue).

        Root first removes whatever another user planted at the name (a file,
        a FIFO, a link, a directory of theirs or one others may swap things
        in), so nobody can keep root from queueing.
        """
        if create and os.geteuid() == 0:
            self._clear_untrusted_dir(name)
        sub = LockDir.__new__(LockDir)
        sub.path = os.path.join(self.path, name)
        sub.fd = _open_checked_dir(sub.path, name, self.fd, create)
        return sub

    def _clear_untrusted_dir(self, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return
        trusted = not st.st_mode & 0o022 or st.st_mode & stat.S_ISVTX
        if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and trusted:
            return
        self._remove(name, st)

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

    def clear_planted(self, name: str) -> bool:
        """As root: remove what was planted at the lock name ``name``; False while it is held.

        Anything but a regular file with one link is no lock file: a FIFO,
        socket, device, symlink or directory is removed (a directory with
        what is in it, never following a link), and so is a hard-linked file
        once nobody holds its lock (while somebody does, it is busy: removing
        it would split the lock in two).
        """
        if os.geteuid() != 0:
            return True
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return True
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            return True
        if stat.S_ISREG(st.st_mode):
            if not self._unlink_unheld(name):
                return False
            self._removed(name, st)
            return True
        self._remove(name, st)
        return True

    def _remove(self, name: str, st: os.stat_result) -> None:
        """Remove what another user planted at ``name`` (as root), saying so."""
        if stat.S_ISDIR(st.st_mode):
            # Out of the way at once (a rename is one step), then removed as far as it
            # goes: rmtree works through descriptors and never follows a link.
            aside = f".planted-{os.urandom(8).hex()}"
            try:
                os.rename(name, aside, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except OSError as exc:
                raise LockDirError(
                    f"cannot move away the directory planted at {os.path.join(self.path, name)}:"
                    f" {exc.strerror} (remove it by hand)"
                ) from None
            with contextlib.suppress(OSError, RecursionError):
                shutil.rmtree(aside, dir_fd=self.fd)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)
        self._removed(name, st)

    def _removed(self, name: str, st: os.stat_result) -> None:
        from autopkgtest_hw.base import log

        what = _kind(st.st_mode)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            what = f"a file with {st.st_nlink} hard links"
        log.warning(
            f"removed {what} of uid {st.st_uid} found at {safe(os.path.join(self.path, name))}"
            " (nothing else belongs there)"
        )

    def _unlink_unheld(self, name: str) -> bool:
        """Unlink ``name`` if nobody holds an flock on it; False if somebody does."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        try:
            if self.same_file(name, fd):
                os.unlink(name, dir_fd=self.fd)
        finally:
            os.close(fd)
        return True

    def remove_if_free(self, name: str) -> None:
        """Remove the lock file ``name`` if nobody holds it (ours or root's: at release).

        A file that outlives its holders keeps the mode its device had when it
        was made; removed, the next run makes it anew with the mode the device
        has then.  A run that opened it before is not split from us: after its
        flock it finds the name gone and locks the new file.
        """
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode) or os.geteuid() not in (0, st.st_uid):
            return
        with contextlib.suppress(OSError):
            self._unlink_unheld(name)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    return "a file"


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
        try:
            fd = os.open(name, base | os.O_RDWR, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                fd = os.open(name, base | os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
            except FileExistsError:
                continue  # somebody made it just now: open theirs
        except PermissionError:
            # Not ours to write: another user's run made it for a device we may not use
            # (or a run of ours may only read it).
            try:
                fd = os.open(name, base | os.O_RDONLY, dir_fd=dir_fd)
            except OSError:
                raise LockDirError(
                    f"cannot open the lock file {path}: permission denied ({_why_denied(access)};"
                    " see docs/security.md)"
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
                f"refusing the lock file {path}: {problem} (planted by another user? root"
                " removes it on its next run; or choose another --lock-dir)"
            )
        apply_access(fd, access)
        # Blocking operations are wanted from here on (none: flock has its own flag).
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd
    raise LockDirError(f"cannot open the lock file {path}: it keeps changing under us")


def _why_denied(access: Access) -> str:
    """Why a lock file we could not open is closed to us, as far as we can tell."""
    group = access.gid is not None and access.gid in os.getgroups() and access.mode & 0o040
    if access.mode & 0o004 or group:
        return (
            "the device's nodes let you open it now, but the lock file kept the mode they had"
            " when it was made; its owner's or root's next run of the device sets it anew"
        )
    return "only users who may open the device may lock it"


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
