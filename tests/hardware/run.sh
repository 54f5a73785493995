#!/bin/sh
# Run the hardware suite on a GPU machine that has nothing of this project
# installed: a virtual environment with the few Python packages detection
# needs, this tree on PYTHONPATH, then the suite, `detect` and `detect --json`.
#
#   tests/hardware/run.sh                 # packages from the package index
#   WHEELHOUSE=DIR tests/hardware/run.sh  # offline: wheels made elsewhere with
#       pip download -d DIR nvidia-ml-py pyudev python-debian pytest
#
# Exit status: pytest's (0 passed, 1 failed, 5 nothing ran).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-${TMPDIR:-/tmp}/autopkgtest-hw-hardware-venv}
PACKAGES="nvidia-ml-py pyudev python-debian pytest"
PYTHON=${PYTHON:-python3}

say() { echo "run.sh: $*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "no $PYTHON on this machine"
    exit 1
fi

if [ -n "${WHEELHOUSE:-}" ]; then
    PIP_FROM="--no-index --find-links $WHEELHOUSE"
else
    PIP_FROM=""
fi

# System site packages: a distribution's python3-pyudev or python3-pynvml still counts.
if "$PYTHON" -m venv --system-site-packages "$VENV" >/dev/null 2>&1; then
    PY="$VENV/bin/python"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --disable-pip-version-check $PIP_FROM $PACKAGES \
        || say "pip could not install all of: $PACKAGES (tests needing them will skip or fail)"
elif "$PYTHON" -m pip --version >/dev/null 2>&1; then
    say "no venv module; installing into $VENV/site with pip --target"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install -q --disable-pip-version-check --target "$VENV/site" $PIP_FROM \
        $PACKAGES || say "pip could not install all of: $PACKAGES"
    PY=$PYTHON
    PYTHONPATH="$VENV/site${PYTHONPATH:+:$PYTHONPATH}"
else
    say "neither the venv module nor pip is available; trying with what is installed"
    PY=$PYTHON
fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
unset AUTOPKGTEST_HW_DETECTORS

cd "$ROOT" || exit 1
"$PY" -m pytest -v -s -p no:cacheprovider tests/hardware
rc=$?
echo "=== autopkgtest-hw detect"
"$PY" -m autopkgtest_hw detect
echo "=== autopkgtest-hw detect --json"
"$PY" -m autopkgtest_hw detect --json
echo "=== pytest exit status: $rc"
exit $rc
