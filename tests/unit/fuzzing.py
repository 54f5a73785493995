"""How many inputs each fuzz target tries: a bounded number in CI, as many as asked for releases.

``HW_FUZZ_EXAMPLES=1000000 .venv/bin/python -m pytest tests/unit -k fuzz`` is the
release check (docs/security.md): zero crashes in 10^6 inputs per target.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("HW_FUZZ_EXAMPLES", "300"))

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
