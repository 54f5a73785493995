#!/bin/sh
# The main job: set up this machine (tools/setup.sh), make a bookworm testbed
# tarball once (cached in ~/.cache/autopkgtest-hw/), then run the example
# package examples/hwdemo through the real autopkgtest and
# autopkgtest-virt-hwgpu wrapping an unshare testbed.  Its OpenCL test runs
# on PoCL; its CUDA test is skipped with the reason.  The exit code is
# autopkgtest's (2: some test was skipped).  Output goes to OUTDIR (default
# ./example-output).
set -eu
cd "$(dirname "$0")/.."
sh tools/setup.sh
outdir=${1:-example-output}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/autopkgtest-hw
tarball=$cache/bookworm-$(dpkg --print-architecture).tar
if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    echo "tools/run-example.sh: making the testbed tarball $tarball (once)" >&2
    mmdebstrap --variant=apt --format=tar --quiet bookworm "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
fi
rm -rf "$outdir"
PATH="$PWD/.venv/bin:$PATH"
export PATH
set +e
# The tarball has no apt lists: update them before installing test deps.
autopkgtest-hw run --setup-commands='apt-get update -q' examples/hwdemo --output-dir "$outdir" \
    -- hwgpu unshare --tarball "$tarball"
rc=$?
set -e
echo
echo "== summary ($outdir/summary), autopkgtest exit code $rc"
cat "$outdir/summary"
exit "$rc"
