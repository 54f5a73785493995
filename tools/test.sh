#!/bin/sh
# Set up (tools/setup.sh), lint, type-check and run the whole test suite.
# Extra arguments go to pytest.  Exits non-zero if pytest collected nothing.
set -eu
cd "$(dirname "$0")/.."
sh tools/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "tools/test.sh: pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
