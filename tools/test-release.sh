#!/bin/sh
# A release leg: autopkgtest-hw installed from its .deb into a Debian trixie or
# sid root and checked there with that release's own tools.
#
#   tools/test-release.sh [--worktree] trixie|sid [OUTDIR]
#
#  1. builds the package with tools/build-deb.sh (HEAD, or the working tree
#     with --worktree);
#  2. makes the release's root with mmdebstrap (--variant=apt, the packages
#     below, no recommends) and the lean testbed tarballs the checks use, each
#     cached under ~/.cache/autopkgtest-hw/ keyed by release, architecture and
#     package list (a second run reuses them; delete them to refresh);
#  3. enters the root through an overlay, so the cached root is never
#     changed (private mount and PID namespaces: nothing is left mounted or
#     running when it ends), and runs
#     tools/release-checks.sh there: install the .deb with apt, detection,
#     lint/plan/route, "autopkgtest-hw run -- hwgpu null|unshare", the
#     package's own autopkgtests, "autopkgtest-hw build" with the release's
#     sbuild; for sid also the source package built by sid's sbuild in unshare
#     mode in a clean sid chroot, and sid's lintian.
#
# AUTOPKGTEST_HW_RELEASE_SKIP="unshare build sbuild" leaves out those checks
# (the hwgpu unshare run, autopkgtest-hw build, sid's sbuild and lintian).
# AUTOPKGTEST_HW_RELEASE_EXTRA="example" adds one that is off by default: the
# README's main job ("sh tools/run-example.sh", tools/setup.sh and all) in a
# fresh overlay of the root, as on a host of that release (a few hundred MB of
# packages and wheels are downloaded).
# OUTDIR (default ./release-output/RELEASE) gets the logs, the summaries and
# times.txt (seconds per step).  Exits non-zero with the failing step named.
# Needs root (mmdebstrap, overlay mounts, chroot), and network access to
# Debian's archive (mmdebstrap's default mirror, or the one in AUTOPKGTEST_HW_MIRROR).
set -eu

usage() {
    echo "usage: tools/test-release.sh [--worktree] trixie|sid [OUTDIR]" >&2
    exit 2
}

worktree=""
if [ "${1:-}" = --worktree ]; then
    worktree=--worktree
    shift
fi
[ $# -ge 1 ] && [ $# -le 2 ] || usage
release=$1
case "$release" in
    trixie | sid) ;;
    *) usage ;;
esac
cd "$(dirname "$0")/.."
top=$PWD
outdir=${2:-release-output/$release}

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
unset PYTHONPATH VIRTUAL_ENV PYTHONHOME || true
export LC_ALL=C.UTF-8

say() { echo "test-release $release: $*" >&2; }
die() {
    say "FAILED: $*"
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (it unpacks and enters a Debian root)"
for tool in mmdebstrap unshare chroot flock sha256sum; do
    command -v "$tool" > /dev/null || die "$tool is missing (sh tools/setup.sh installs it)"
done

arch=$(dpkg --print-architecture)
# mmdebstrap's default mirrors (Debian's archive, and trixie's security and
# updates suites) unless AUTOPKGTEST_HW_MIRROR names one.
mirror=${AUTOPKGTEST_HW_MIRROR:-}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/autopkgtest-hw
mkdir -p "$cache" "$outdir"
outdir=$(cd "$outdir" && pwd)
: > "$outdir/times.txt"

# The root: the release's tools that the checks use, and what the package and
# the example packages need at run and build time (so nothing is downloaded
# while they run, except by sbuild).  sid's lintian judges the source package.
# (mount: autopkgtest-virt-unshare's helper runs mount(8), which trixie's
# autopkgtest does not depend on.)
root_packages="autopkgtest sbuild uidmap mount dpkg-dev python3-debian python3-pyudev
    python3-pyopencl python3-numpy pocl-opencl-icd ocl-icd-libopencl1 clinfo
    mesa-vulkan-drivers vulkan-tools vainfo debhelper ocl-icd-opencl-dev"
[ "$release" = sid ] && root_packages="$root_packages lintian"
root_packages=$(echo $root_packages)

# sid's Release file carries Valid-Until; a mirror that lags (or a clock
# ahead) must not fail the leg: the packages are still signed.
mm() {
    mmdebstrap --quiet --mode=root --format=tar \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --aptopt='APT::Install-Recommends "false"' "$@"
}

step_start=0
step() {
    step_name=$1
    step_start=$(date +%s)
    say "== $step_name"
}
step_done() {
    echo "$step_name $(($(date +%s) - step_start))" >> "$outdir/times.txt"
}

# cache_path NAME KEYTEXT FORMAT: where NAME is cached (a tar file or a
# directory), keyed by a hash of KEYTEXT (release and package list).
cache_path() {
    key=$(printf '%s\n' "$2" | sha256sum | cut -c1-12)
    if [ "$3" = tar ]; then
        echo "$cache/$1-$arch-$key.tar"
    else
        echo "$cache/$1-$arch-$key"
    fi
}

# make_cached PATH FORMAT MMDEBSTRAP-ARGS...: make PATH with mmdebstrap unless
# it is there, under a lock (a parallel run waits), atomically (a run that is
# killed leaves no half-made root behind to be taken for a whole one).
make_cached() {
    made=$1
    format=$2
    shift 2
    log=$outdir/mmdebstrap-$(basename "$made").log
    (
        flock 9
        [ ! -e "$made" ] || exit 0
        say "making $made (cached for the next run)"
        rm -rf "$made.tmp"
        if ! mm --format="$format" "$@" "$made.tmp" ${mirror:+"$mirror"} > "$log" 2>&1; then
            tail -n 30 "$log" >&2
            rm -rf "$made.tmp"
            exit 1
        fi
        mv "$made.tmp" "$made"
    ) 9> "$made.lock" || {
        say "FAILED: mmdebstrap of $made (log: $log)"
        return 1
    }
}

work=$(mktemp -d "${TMPDIR:-/tmp}/test-release-$release.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step build-deb
sh tools/build-deb.sh $worktree "$work/deb" > "$outdir/build-deb.log" 2>&1 ||
    { tail -n 30 "$outdir/build-deb.log" >&2; die "tools/build-deb.sh failed (log: $outdir/build-deb.log)"; }
step_done

step roots
# The root is kept unpacked: each run sees it through an overlay (below),
# so it is never changed and never unpacked again.
root_dir=$(cache_path "root-$release" "$release $root_packages" directory)
# The testbed for "hwgpu unshare": the same release with the example's test
# dependencies (OpenCL on PoCL), so its test runs without a download.
testbed_packages="pocl-opencl-icd python3-pyopencl python3-numpy"
testbed_tar=$(cache_path "testbed-$release" "$release $testbed_packages" tar)
# sid: what its buildds build in, a buildd-variant unstable chroot.
sbuild_tar=$(cache_path sbuild-unstable "unstable buildd" tar)
# Made side by side: downloads and unpacking overlap (a cold leg's longest part).
make_cached "$root_dir" directory --variant=apt --skip=cleanup/apt/lists \
    --include="$(echo $root_packages | tr ' ' ,)" "$release" &
root_job=$!
make_cached "$testbed_tar" tar --variant=apt \
    --include="$(echo $testbed_packages | tr ' ' ,)" "$release" &
testbed_job=$!
if [ "$release" = sid ]; then
    make_cached "$sbuild_tar" tar --variant=buildd unstable
else
    sbuild_tar=$testbed_tar # nothing is built in an unshare chroot on trixie
fi
wait "$root_job" || die "could not make the $release root"
wait "$testbed_job" || die "could not make the $release testbed"
step_done

# in_root UPPER [SRC DST]... -- CMD...: run CMD in private mount and PID
# namespaces whose root is an overlay: the cached root below, UPPER (this
# run's changes) above, /dev, /sys and a fresh /proc; each host file SRC is
# bound at DST (a path in the root, made in UPPER beforehand).  All of it,
# and every process started inside, goes when CMD ends.
in_root() {
    in_upper=$1
    shift
    in_ow=$(mktemp -d "$work/overlay-work.XXXXXX")
    in_mnt=$(mktemp -d "$work/root.XXXXXX")
    unshare --mount --pid --fork --kill-child --propagation private -- sh -c '
    lower=$1 upper=$2 ow=$3 r=$4
    shift 4
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$ow" "$r" || exit 1
    while [ "$1" != -- ]; do
        mount --bind "$1" "$r/$2" || exit 1
        shift 2
    done
    shift
    mount --rbind /dev "$r/dev" && mount --rbind /sys "$r/sys" &&
        mount -t proc proc "$r/proc" || exit 1
    # pivot_root, not a bare chroot: the kernel refuses a user namespace to a
    # chrooted process, and unshare testbeds and sbuild make one.
    # The host tree is detached inside (the root has python3, not umount).
    cd "$r" && mkdir -p .host && pivot_root . .host || exit 1
    exec chroot . python3 -c "if True:
        import ctypes, os, sys
        if ctypes.CDLL(None).umount2(b\"/.host\", 2) != 0:  # MNT_DETACH
            sys.exit(\"cannot detach /.host\")
        os.rmdir(\"/.host\")
        os.execvp(sys.argv[1], sys.argv[1:])" "$@"' sh "$root_dir" "$in_upper" "$in_ow" "$in_mnt" "$@"
}

# write_host_files UPPER: the host's resolver, and its name in /etc/hosts.
# The host's name resolves in the root (sbuild and autopkgtest's chroot mode
# run "hostname -f", which fails without it): the root shares the host's UTS
# name, and mmdebstrap's /etc/hosts has only localhost.
write_host_files() {
    mkdir -p "$1/etc"
    cp /etc/resolv.conf "$1/etc/resolv.conf" 2> /dev/null || true
    {
        printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$(uname -n)"
        printf '::1\t\tlocalhost ip6-localhost ip6-loopback\n'
        printf 'ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n'
    } > "$1/etc/hosts"
}

# What the checks see in /srv/release: the built package, the script, and
# the cached tarballs (bound read-only in the root: nothing is copied).
upper=$work/upper
mkdir -p "$upper/srv/release" "$upper/etc"
cp "$work"/deb/*.deb "$work"/deb/*.dsc "$work"/deb/*.tar.* tools/release-checks.sh \
    "$upper/srv/release/"
: > "$upper/srv/release/testbed.tar"
: > "$upper/srv/release/sbuild-chroot.tar"
write_host_files "$upper"
for f in subuid subgid; do echo "root:100000:65536" > "$upper/etc/$f"; done

# finish_checks UPPER LOG WHAT: after release-checks.sh ran in the overlay
# whose upper dir is UPPER (its exit status in $rc): its results into OUTDIR,
# its own times.txt (one line per check) after this script's; on failure the
# end of LOG and a stop naming WHAT.
finish_checks() {
    results=$1/srv/release/out
    if [ -f "$results/times.txt" ]; then
        cat "$results/times.txt" >> "$outdir/times.txt"
        rm -f "$results/times.txt"
    fi
    cp -r "$results/." "$outdir/" 2> /dev/null || true
    step_done
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$2" >&2
        die "$3 failed (exit $rc; log: $2)"
    fi
}

step checks
rc=0
in_root "$upper" "$testbed_tar" /srv/release/testbed.tar "$sbuild_tar" /srv/release/sbuild-chroot.tar -- \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
    AUTOPKGTEST_HW_RELEASE_SKIP="${AUTOPKGTEST_HW_RELEASE_SKIP:-}" \
    sh /srv/release/release-checks.sh "$release" /srv/release > "$outdir/checks.log" 2>&1 || rc=$?
finish_checks "$upper" "$outdir/checks.log" "checks inside the $release root"
grep '^versions:' "$outdir/checks.log" >&2 || true

# AUTOPKGTEST_HW_RELEASE_EXTRA="example": the README's main job on a host of
# this release, in a fresh overlay of the same root (no .deb installed, no
# subuid, containers.conf or .venv): a copy of the checkout (git archive of
# HEAD, or the working tree with --worktree) in /root/autopkgtest-hw, where
# "sh tools/run-example.sh" runs as root: tools/setup.sh (apt-get install
# from the release, a .venv with pip from PyPI, the subuid and podman
# settings), then hwdemo through "hwgpu unshare".  Off by default: setup.sh
# downloads a few hundred MB.  The host's cached bookworm testbed tarball, if
# there is one, is bound at the root's ~/.cache/autopkgtest-hw/ (else
# run-example.sh makes it there with mmdebstrap, another download).
case " ${AUTOPKGTEST_HW_RELEASE_EXTRA:-} " in
    *" example "*)
        step example
        ex_upper=$work/example-upper
        ex_src=$ex_upper/root/autopkgtest-hw
        ex_cache=$ex_upper/root/.cache/autopkgtest-hw
        mkdir -p "$ex_upper/srv/release" "$ex_src" "$ex_cache"
        cp tools/release-checks.sh "$ex_upper/srv/release/"
        write_host_files "$ex_upper"
        # The host's own CAs (e.g. a network's TLS proxy), as a host on this
        # network has them: ca-certificates, installed by setup.sh, adds
        # them to the root's bundle, which pip uses to reach PyPI.
        if [ -d /usr/local/share/ca-certificates ]; then
            mkdir -p "$ex_upper/usr/local/share"
            cp -r /usr/local/share/ca-certificates "$ex_upper/usr/local/share/"
        fi
        if [ -n "$worktree" ]; then
            git ls-files -z --cached --others --exclude-standard > "$work/example-files"
            tar -c --null -T "$work/example-files" --ignore-failed-read -f - | tar -x -C "$ex_src"
        else
            git archive --format=tar HEAD | tar -x -C "$ex_src"
        fi
        ex_binds=""
        bookworm_tar=$cache/bookworm-$arch.tar
        if [ -s "$bookworm_tar" ]; then
            : > "$ex_cache/bookworm-$arch.tar"
            ex_binds=yes
        fi
        rc=0
        in_root "$ex_upper" ${ex_binds:+"$bookworm_tar" "/root/.cache/autopkgtest-hw/bookworm-$arch.tar"} -- \
            /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
            sh /srv/release/release-checks.sh "$release" /srv/release example \
            > "$outdir/example-checks.log" 2>&1 || rc=$?
        finish_checks "$ex_upper" "$outdir/example-checks.log" "tools/run-example.sh in the $release root"
        ;;
esac
say "ok (seconds per step: $(tr '\n' ' ' < "$outdir/times.txt"))"
