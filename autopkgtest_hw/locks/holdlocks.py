"""Run before each testbed command: receive the device locks, then become the command.

``python3 -S holdlocks.py SOCKET COMMAND...`` (see ``keeper``).  It imports
nothing of the package and no site packages, so it costs a few milliseconds;
its arguments are plain paths, so they read the same to autopkgtest (which
unquotes the reply word before it splits it at commas) and to sbuild (which
does not).  A command whose keeper is gone is not run: exit 255.
"""

import os
import socket
import sys

NO_LOCKS = 255
#: The keeper's answer to a process outside the virt server's client's tree.
NOT_YOURS = b"not yours"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: python3 -S holdlocks.py SOCKET COMMAND...\n")
        return 2
    fds: list[int] = []
    why = "none were handed over"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(argv[0])
            data, fds = socket.recv_fds(conn, 16, 64)[:2]
    except OSError as exc:
        why = exc.strerror or str(exc)
    else:
        if data == NOT_YOURS:
            sys.stderr.write(
                "autopkgtest-virt-hwgpu: the device locks are handed only to the processes"
                " of the testbed's client (autopkgtest, sbuild, the porterbox session);"
                " not running this command\n"
            )
            return NO_LOCKS
    if not fds:
        sys.stderr.write(
            f"autopkgtest-virt-hwgpu: the device locks are gone ({why}): the virt server"
            " ended; not running this command\n"
        )
        return NO_LOCKS
    for fd in fds:
        os.set_inheritable(fd, True)
    try:
        os.execvp(argv[1], argv[1:])
    except OSError as exc:
        sys.stderr.write(f"autopkgtest-virt-hwgpu: cannot run {argv[1]}: {exc.strerror}\n")
        return 127
    return 0  # pragma: no cover - not reached


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
