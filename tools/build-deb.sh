#!/bin/sh
# Build the Debian package autopkgtest-hw (source and binary) from a clean
# export of a git commit, put the results in OUTDIR and run lintian on them.
#
#   tools/build-deb.sh [--worktree] OUTDIR [COMMIT]
#
# COMMIT defaults to HEAD (git archive).  --worktree exports the working tree
# instead: tracked and untracked files that git does not ignore (for trying
# changes before committing them); never .venv, caches or build leftovers.
# Exits non-zero if the build fails or lintian reports an error or warning.
# Needs the Build-Depends of debian/control (tools/setup.sh installs them).
set -eu

usage() {
    echo "usage: tools/build-deb.sh [--worktree] OUTDIR [COMMIT]" >&2
    exit 2
}

worktree=no
if [ "${1:-}" = --worktree ]; then
    worktree=yes
    shift
fi
[ $# -ge 1 ] && [ $# -le 2 ] || usage
outdir=$1
ref=${2:-HEAD}
cd "$(dirname "$0")/.."
top=$PWD

# Debian's own python3 and tools, as on a build daemon: not a pyenv shim or
# a virtual environment that happens to be first on PATH.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
unset PYTHONPATH VIRTUAL_ENV PYTHONHOME || true
export LC_ALL=C.UTF-8

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/build-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src=$work/autopkgtest-hw

if [ "$worktree" = yes ]; then
    echo "build-deb: exporting the working tree (tracked and untracked, not ignored)" >&2
    mkdir "$src"
    git ls-files -z --cached --others --exclude-standard > "$work/files"
    # --ignore-failed-read: a tracked file deleted in the working tree is left out.
    tar -c --null -T "$work/files" --ignore-failed-read -f "$work/src.tar"
    tar -x -C "$src" -f "$work/src.tar"
else
    echo "build-deb: exporting $(git rev-parse --short "$ref") with git archive" >&2
    git archive --format=tar --prefix=autopkgtest-hw/ -o "$work/src.tar" "$ref"
    tar -x -C "$work" -f "$work/src.tar"
fi

cd "$src"
version=$(dpkg-parsechangelog -S Version)
echo "build-deb: dpkg-buildpackage -us -uc (autopkgtest-hw $version)" >&2
dpkg-buildpackage -us -uc > "$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (log above)" >&2
    exit 1
}
cd "$work"
cp build.log "$outdir/build.log"
for f in autopkgtest-hw_"$version"*; do
    [ -f "$f" ] && cp "$f" "$outdir/"
done
changes=$outdir/autopkgtest-hw_${version}_$(dpkg --print-architecture).changes
ls -l "$outdir" >&2

echo "build-deb: lintian $changes" >&2
cd "$top"
# debian/control follows the current Policy, sid's.  An older lintian
# (bookworm's knows Policy 4.6.2, trixie's 4.7.2) says only that it is older
# than the package: newer-standards-version is about the checker.  sid's own
# lintian judges the package without exceptions (tools/test-release.sh sid).
status=0
lintian --fail-on error,warning --suppress-tags newer-standards-version "$changes" \
    > "$outdir/lintian.txt" || status=$?
cat "$outdir/lintian.txt"
if [ "$status" -ne 0 ]; then
    echo "build-deb: lintian reports an error or warning (exit $status, above)" >&2
    exit 1
fi
echo "build-deb: ok: $outdir/autopkgtest-hw_${version}_all.deb" >&2
