"""The debci e2e (test_debci_jobs.py) on today's newer debci: trixie's and sid's.

Each leg runs that same module inside a root filesystem of the release
(debci_roots.py: built once with mmdebstrap, cached), with the release's own
debci, rabbitmq-server, Ruby and autopkgtest, and this checkout's code.  A
leg skips, saying why, when its root is not cached and building is not
allowed (AUTOPKGTEST_HW_DEBCI_ROOTS=1 runs the legs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .debci_roots import ENV_BUILD, OUT, SRC, root, run_in_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroots and namespaces need root")

#: The whole leg: broker, debci, workers and the module's two tests.
LEG_WITHIN = 1200

SETUP = f"""
set -e
mkdir -p /tmp/bin
ln -sf /usr/bin/python3 /tmp/bin/python3
cat > /tmp/bin/autopkgtest-hw <<'END'
#!/tmp/bin/python3
import sys
sys.path.insert(0, "{SRC}")
from autopkgtest_hw.cli import main
sys.exit(main())
END
chmod +x /tmp/bin/autopkgtest-hw
cd {SRC}
dpkg-query -W debci rabbitmq-server autopkgtest
export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={SRC}
exec /tmp/bin/python3 -m pytest -p no:cacheprovider -q -x --basetemp={OUT}/pytest \\
    tests/fleet/test_debci_jobs.py
"""


@pytest.mark.parametrize("suite", ["trixie", "sid"])
def test_the_debci_e2e_in_the_release(suite: str, tmp_path: Path) -> None:
    dest = root(suite)
    if dest is None:
        pytest.skip(f"the {suite} leg runs with {ENV_BUILD}=1 or ={suite} (builds the root once)")
    start = time.monotonic()
    proc = run_in_root(dest, ["sh", "-c", SETUP], timeout=LEG_WITHIN, out=tmp_path)
    took = time.monotonic() - start
    print(f"{suite}: {took:.0f} s\n{proc.stdout[-1500:]}")
    logs = "".join(
        f"--- {p.relative_to(tmp_path)}\n{p.read_text(errors='replace')[-1500:]}\n"
        for p in sorted(tmp_path.glob("pytest/*/*/*.log")) + sorted(tmp_path.glob("pytest/*/*.log"))
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:] + logs
    assert "2 passed" in proc.stdout
