"""Bounds on every input read from a file, and a reader that keeps to them.

Each bound is far above anything real and far below what would hurt: a file
that breaks one gets a clear error naming the bound (docs/security.md lists
them).  Files are read only if they are regular files (a FIFO would block, a
device such as /dev/zero would never end), opened without blocking and read
no further than the bound.
"""

from __future__ import annotations

import errno
import os
import stat

#: debian/control and debian/tests/control (linux's debian/control is about 0.5 MB).
MAX_CONTROL_BYTES = 4 * 2**20
#: An inventory file (``detect --json``; about 1 KB per device).
MAX_INVENTORY_BYTES = 8 * 2**20
#: Devices in one inventory (the largest machines have 16 GPUs; MIG splits each in 7).
MAX_DEVICES = 4096
#: Characters of one string in an inventory (a model name, a path).
MAX_STRING = 4096
#: Items of one list in an inventory device (OpenCL extensions: about 100).
MAX_LIST = 1024
#: Devices one run may lock at once (each lock is an open file).
MAX_LOCKS = 1024


class InputTooLarge(ValueError):
    """Raised by :func:`read_file` when a file is larger than its bound."""


def read_file(path: str, limit: int) -> bytes:
    """The bytes of the regular file ``path``; OSError, or InputTooLarge past ``limit``.

    A FIFO, socket or device is refused with OSError(EINVAL) whose strerror
    says so, before anything is read from it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO or device is never read)")
        if st.st_size > limit:
            raise InputTooLarge(f"{st.st_size} bytes, more than the {limit} bytes allowed")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise InputTooLarge(f"more than the {limit} bytes allowed")
        return b"".join(chunks)
    finally:
        os.close(fd)
