#!/bin/sh
# Set up a Debian 12 or 13 machine to develop, test and run autopkgtest-hw.
# Installs Debian packages (as root), creates .venv (system site packages, so
# Debian's python3-debian, python3-pyudev, python3-pyopencl and python3-gi are
# used as a packaged install would use them) and the settings that unshare
# and podman testbeds need.  Safe to run again.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="
    autopkgtest mmdebstrap uidmap podman runc qemu-system-x86 qemu-utils
    python3-venv python3-debian python3-pyudev python3-pyopencl python3-gi
    umockdev gir1.2-umockdev-1.0 pocl-opencl-icd ocl-icd-libopencl1 clinfo
    gcc libc6-dev build-essential debhelper dh-python pybuild-plugin-pyproject
    python3-all python3-setuptools python3-pytest help2man lintian devscripts
    python3-argparse-manpage
    fakeroot dpkg-dev zstd ca-certificates
    sbuild schroot python3-pexpect python3-yaml
    debci debci-collector ruby-webrick rabbitmq-server amqp-tools python3-pika python3-apt
    vulkan-tools mesa-vulkan-drivers vainfo
"

if [ "$(id -u)" -ne 0 ]; then
    echo "tools/setup.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -qq
    # Installing rabbitmq-server (and debci) must not start system services:
    # the fleet tests start their own broker on a free loopback port.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=yes
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing || status=$?
    if [ -n "$own_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    [ "$status" -eq 0 ] || exit "$status"
fi

# unshare testbeds map root to a subordinate id range.
for f in /etc/subuid /etc/subgid; do
    grep -q '^root:' "$f" 2>/dev/null || echo "root:100000:65536" >> "$f"
done

# podman here: runc (crun refuses this machine's cgroup layout), cgroupfs, no ulimits.
mkdir -p /etc/containers
if [ ! -f /etc/containers/containers.conf ] || ! grep -q 'default_ulimits' /etc/containers/containers.conf; then
    cat >> /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev,nvidia]'
echo "tools/setup.sh: ready (.venv/bin has autopkgtest-hw and autopkgtest-virt-hwgpu)"
