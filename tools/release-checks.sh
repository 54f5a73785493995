#!/bin/sh
# The end-to-end checks of one release leg, run by tools/test-release.sh as
# root inside a trixie or sid root (never on a developer's machine itself: it
# installs the package and builds with the null testbed there).
#
#   sh release-checks.sh RELEASE DIR
#
# DIR holds the built autopkgtest-hw .deb/.dsc, testbed.tar (the release's
# testbed for "hwgpu unshare") and, for sid, sbuild-chroot.tar.  Results go to
# DIR/out.  Each check names itself; the first failure stops the leg.
set -eu
release=$1
dir=$2
out=$dir/out
mkdir -p "$out"
cd "$dir"

check() {
    check_name=$1
    check_start=$(date +%s)
    echo
    echo "== $release: $check_name"
}
passed() {
    echo "check $check_name $(($(date +%s) - check_start))" >> "$out/times.txt"
    echo "ok: $check_name"
}
fail() {
    echo "release-checks $release: FAILED: $check_name: $*" >&2
    exit 1
}
# wanted ID: whether the check ID (unshare, build, sbuild) is not in
# $AUTOPKGTEST_HW_RELEASE_SKIP (tools/test-release.sh passes it in).
wanted() {
    case " ${AUTOPKGTEST_HW_RELEASE_SKIP:-} " in
        *" $1 "*)
            echo
            echo "== $release: skipped: $1 (AUTOPKGTEST_HW_RELEASE_SKIP)"
            echo "skipped $1" >> "$out/times.txt"
            return 1
            ;;
    esac
}
first_file() { # first_file GLOB...: the first that is a file, or nothing
    for f in "$@"; do
        [ ! -f "$f" ] || {
            echo "$f"
            return 0
        }
    done
}
result() { # result SUMMARY TEST -> PASS, SKIP, FAIL... for TEST
    awk -v t="$2" '$1 == t { print $2 }' "$1"
}
# hwdemo_outcome SUMMARY LOG: the example's run (exit status in $rc) ended as
# it must without a GPU: exit 2, plain and opencl-cpu passed, cuda-smoke
# skipped with its needs-hw: reason.
hwdemo_outcome() {
    [ "$rc" -eq 2 ] || { tail -n 60 "$2"; fail "exit $rc, not 2 (a test skipped)"; }
    [ "$(result "$1" plain)" = PASS ] || fail "plain did not pass"
    [ "$(result "$1" opencl-cpu)" = PASS ] || fail "opencl-cpu did not pass"
    grep -q '^cuda-smoke  *SKIP .*needs-hw:cuda' "$1" ||
        fail "cuda-smoke not skipped with its needs-hw: reason"
}

# "sh release-checks.sh RELEASE DIR example" (AUTOPKGTEST_HW_RELEASE_EXTRA=example
# in tools/test-release.sh): only the README's main job, on a fresh root of
# the release with the checkout in /root/autopkgtest-hw and no .deb.
if [ "${3:-}" = example ]; then
    check "sh tools/run-example.sh (the README's main job) on a $release host"
    src=/root/autopkgtest-hw
    # Output to a file, as a user's "> log"; tools/setup.sh's share of the
    # time is when its "ready" line shows up there.
    : > "$out/example.log"
    (
        while ! grep -q 'tools/setup.sh: ready' "$out/example.log"; do
            sleep 1
        done
        echo "check example-setup $(($(date +%s) - check_start))" >> "$out/times.txt"
    ) &
    watcher=$!
    rc=0
    (cd "$src" && sh tools/run-example.sh "$out/example-output") > "$out/example.log" 2>&1 || rc=$?
    kill "$watcher" 2> /dev/null || true
    summary=$out/example-output/summary
    cat "$summary" || true
    grep -q 'tools/setup.sh: ready' "$out/example.log" ||
        { tail -n 60 "$out/example.log"; fail "tools/setup.sh did not finish"; }
    hwdemo_outcome "$summary" "$out/example.log"
    versions=""
    for p in podman runc autopkgtest python3; do
        versions="$versions $p=$(dpkg-query -W -f='${Version}' "$p" 2> /dev/null || echo none)"
    done
    echo "versions:$versions" | tee "$out/example-versions.txt"
    passed
    echo "release-checks $release: example passed"
    exit 0
fi

deb=$(ls "$dir"/autopkgtest-hw_*_all.deb)
dsc=$(ls "$dir"/autopkgtest-hw_*.dsc)
examples=/usr/share/doc/autopkgtest-hw/examples

check "install the .deb with apt"
apt-get install -y -q --no-install-recommends "$deb" > "$out/install.log" 2>&1 ||
    { cat "$out/install.log"; fail "apt-get install $deb failed"; }
[ "$(command -v autopkgtest-hw)" = /usr/bin/autopkgtest-hw ] || fail "no /usr/bin/autopkgtest-hw"
autopkgtest-hw --version
passed

check "the release's tools"
for p in autopkgtest sbuild python3-debian python3 pocl-opencl-icd mesa-vulkan-drivers \
    vainfo lintian; do
    v=$(dpkg-query -W -f='${Version}' "$p" 2> /dev/null) || continue
    printf '%s=%s ' "$p" "$v"
done | sed 's/^/versions: /; s/ $/\n/' | tee "$out/versions.txt"
passed

check "adt_compat knows this autopkgtest"
python3 - << 'PY'
from autopkgtest_hw.source import adt_compat

at = adt_compat.locate()
adt_compat.install(at)  # raises AdtCompatError (with its fix) where autopkgtest moved
import testdesc  # noqa: E402  (the release's own, from its library)

assert testdesc.Test.check_testbed_compat._autopkgtest_hw
known = "tested" if adt_compat.tested(at.version) else "not in TESTED, internals check out"
print(f"adt_compat: {at.describe()}: {known} (tested: {adt_compat.SUPPORTED})")
PY
passed

check "detect: CPU, OpenCL on PoCL, Vulkan on Mesa, VA-API"
autopkgtest-hw detect | tee "$out/detect.txt"
autopkgtest-hw detect --json > "$out/detect.json"
python3 - "$out/detect.json" "$out/detect.txt" << 'PY'
import json
import re
import sys

inv = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
problems = []
if not inv["cpu"]["cores"] >= 1:
    problems.append(f"no CPU cores: {inv['cpu']}")
ocl = [d for d in inv["devices"] if "opencl" in d.get("classes", [])]
if not any(d.get("opencl_type") == "cpu" for d in ocl):
    problems.append(f"no OpenCL CPU device (PoCL): {ocl}")
for detector in ("cpu", "udev", "opencl"):
    if not re.search(rf"^  {detector} +ok ", text, re.M):
        problems.append(f"the {detector} detector is not ok")
# No GPU here: vaapi has no render node, and vulkan (Mesa's llvmpipe only) may
# time out on a loaded machine; each must say why, not fail.
for detector in ("vulkan", "vaapi"):
    if not re.search(rf"^  {detector} +(ok|unavailable) ", text, re.M):
        problems.append(f"the {detector} detector neither ran nor said why not")
if problems:
    sys.exit("detect: " + "; ".join(problems))
print("detect: ok")
PY
passed

check "lint, plan, route with this python-debian"
autopkgtest-hw lint "$examples/hwdemo"
autopkgtest-hw plan "$examples/hwdemo" | tee "$out/plan.txt"
grep -q "opencl-cpu" "$out/plan.txt" || fail "plan does not mention opencl-cpu"
autopkgtest-hw route --no-broker --fleet "$examples/fleet" --matrix "$examples/hwdemo" | tee "$out/route.txt"
grep -q "^hwdemo  *pocl " "$out/route.txt" || fail "hwdemo not routed to pocl"
passed

check "the package's own autopkgtests (autopkgtest-hw run, hwgpu null)"
# The unpacked source, as ci.debian.net has it (a .dsc would make autopkgtest
# install build-essential first, to build a tree no test here needs).
dpkg-source -x "$dsc" "$dir/src" > /dev/null
rc=0
autopkgtest-hw run --summary-file="$out/own-tests.summary" "$dir/src/" "$deb" -- hwgpu null \
    > "$out/own-tests.log" 2>&1 || rc=$?
cat "$out/own-tests.summary" || true
[ "$rc" -eq 0 ] || { tail -n 60 "$out/own-tests.log"; fail "autopkgtest exited $rc"; }
for t in commands opencl-cpu example-null; do
    [ "$(result "$out/own-tests.summary" $t)" = PASS ] || fail "$t did not pass"
done
passed

if wanted unshare; then
    check "autopkgtest-hw run hwdemo -- hwgpu unshare (a $release testbed)"
    cp -r "$examples/hwdemo" "$dir/hwdemo"
    rc=0
    autopkgtest-hw run --setup-commands='apt-get update -q' --summary-file="$out/unshare.summary" \
        "$dir/hwdemo" -- hwgpu unshare --tarball "$dir/testbed.tar" > "$out/unshare.log" 2>&1 || rc=$?
    cat "$out/unshare.summary" || true
    hwdemo_outcome "$out/unshare.summary" "$out/unshare.log"
    passed
fi

if wanted build; then
    check "autopkgtest-hw build with this sbuild (autopkgtest chroot mode, hwgpu null)"
    mkdir -p "$dir/hwbuild-src" "$dir/hwbuild-out"
    cp -r "$examples/hwbuild" "$dir/hwbuild-src/"
    (cd "$dir/hwbuild-src" && dpkg-source -b hwbuild > /dev/null)
    dist=$release
    [ "$release" = sid ] && dist=unstable
    rc=0
    (cd "$dir/hwbuild-out" && autopkgtest-hw build --dist "$dist" --sbuild-arg=--no-run-lintian \
        --sbuild-arg=--no-run-piuparts --sbuild-arg=--no-apt-update \
        "$dir/hwbuild-src/hwbuild_1.0.dsc" -- null) > "$out/build.log" 2>&1 || rc=$?
    # autopkgtest-hw build names sbuild's log (HWBUILD_VERSION_ARCH-DATE.build); keep it.
    build_log=$(first_file "$dir"/hwbuild-out/hwbuild_1.0_*Z.build)
    [ -z "$build_log" ] || cp "$build_log" "$out/hwbuild.build"
    [ "$rc" -eq 0 ] || {
        tail -n 60 "$out/build.log"
        [ -z "$build_log" ] || tail -n 60 "$build_log"
        fail "autopkgtest-hw build exited $rc"
    }
    [ -n "$build_log" ] || fail "sbuild left no .build log"
    grep -q '^Status: successful' "$out/hwbuild.build" || fail "sbuild's log does not say Status: successful"
    ls "$dir"/hwbuild-out/hwbuild_1.0_*.deb > /dev/null 2>&1 || fail "no hwbuild .deb was built"
    # dh_auto_test runs "make check" (make -jN check), which runs the kernel.
    grep -q "^ *dh_auto_test" "$out/hwbuild.build" || fail "dh_auto_test did not run"
    grep -q "^hwbuild-vadd: [0-9]* sums correct on OpenCL device" "$out/hwbuild.build" ||
        fail "the build-time OpenCL test did not pass"
    passed
fi

if [ "$release" = sid ] && wanted sbuild; then
    check "sbuild (sid's) in unshare mode: the source package in a clean unstable chroot"
    mkdir -p "$dir/sbuild-out"
    rc=0
    (cd "$dir/sbuild-out" && sbuild --chroot-mode=unshare --chroot="$dir/sbuild-chroot.tar" \
        --dist=unstable --arch-all --no-run-lintian --no-run-piuparts --no-run-autopkgtest \
        "$dsc") > "$out/sbuild.log" 2>&1 || rc=$?
    # sbuild's own log of the build (PACKAGE_VERSION_ARCH.build) is the record.
    build_log=$(first_file "$dir"/sbuild-out/autopkgtest-hw_*.build)
    [ -z "$build_log" ] || cp "$build_log" "$out/sbuild.build"
    [ "$rc" -eq 0 ] || { tail -n 60 "$out/sbuild.log"; fail "sbuild exited $rc"; }
    [ -n "$build_log" ] || fail "sbuild left no .build log"
    grep -q '^Status: successful' "$out/sbuild.build" || fail "sbuild's log does not say Status: successful"
    # What unshare mode (and only it) does with --chroot=TARBALL.
    grep -qF "I: Unpacking $dir/sbuild-chroot.tar" "$out/sbuild.build" ||
        fail "sbuild's log does not show the unshare-mode chroot unpacked from sbuild-chroot.tar"
    ls "$dir"/sbuild-out/autopkgtest-hw_*_all.deb > /dev/null 2>&1 || fail "sbuild built no _all.deb"
    passed

    check "lintian (sid's) on what sid's sbuild built"
    changes=$(ls "$dir"/sbuild-out/autopkgtest-hw_*.changes)
    rc=0
    lintian --fail-on error,warning "$changes" "$dsc" > "$out/lintian.txt" || rc=$?
    cat "$out/lintian.txt"
    [ "$rc" -eq 0 ] || fail "lintian reports an error or warning (exit $rc)"
    lintian --pedantic -I --show-overrides "$changes" "$dsc" > "$out/lintian-pedantic.txt" || true
    cat "$out/lintian-pedantic.txt"
    passed
fi
echo "release-checks $release: all passed"
