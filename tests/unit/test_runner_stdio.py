"""After autopkgtest's log tee closes descriptors 1 and 2 at exit, its exit code still stands."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What autopkgtest does at exit with --output-dir (its tee cleanup closes
# descriptors 1 and 2), then what this process writes afterwards (Python
# reports there the pipes it frees after atexit).  At exit the handlers run
# last in, first out: cleanup, reopen_closed_stdio (registered before
# autopkgtest runs, as run_autopkgtest does), then late.
SCRIPT = textwrap.dedent(
    """
    import atexit, os, sys
    from autopkgtest_hw.source.runner import reopen_closed_stdio

    def late():
        os.write(1, b"late stdout\\n")
        os.write(2, b"late stderr\\n")
        print("late print", flush=True)
        print("late print", file=sys.stderr, flush=True)
        open(sys.argv[1], "w").close()  # every write above went through

    def cleanup():
        os.close(1)
        os.close(2)

    atexit.register(late)
    atexit.register(reopen_closed_stdio)
    atexit.register(cleanup)
    sys.exit(2)
    """
)


def run(code: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, check=False
    )


def test_closed_stdio_is_reopened_on_dev_null_after_autopkgtests_cleanup(tmp_path: Path) -> None:
    done = tmp_path / "done"
    proc = run(SCRIPT, str(done))
    assert proc.returncode == 2, proc.stderr  # autopkgtest's code, not 120
    assert done.exists()
    assert proc.stdout == b"" and proc.stderr == b""  # to /dev/null: the tee is gone


def test_without_it_the_late_writes_fail(tmp_path: Path) -> None:
    done = tmp_path / "done"
    run(SCRIPT.replace("atexit.register(reopen_closed_stdio)\n", ""), str(done))
    assert not done.exists()


def test_open_stdio_is_left_alone() -> None:
    code = (
        "from autopkgtest_hw.source.runner import reopen_closed_stdio\n"
        "reopen_closed_stdio()\n"
        "print('still here', flush=True)\n"
    )
    proc = run(code)
    assert proc.returncode == 0
    assert proc.stdout == b"still here\n"
