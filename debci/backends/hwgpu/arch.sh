# shellcheck shell=sh
# Sourced by the hwgpu backend's scripts, never run.
#
# A fleet profile's debci 4 workers run with debci_arch=ARCH+PROFILE
# (debci-worker --arch amd64+h100): debci 4 ignores --tag, and that
# architecture's queue, debci-tests-ARCH+PROFILE-BACKEND, is where it
# publishes the profile's jobs and retries.  debci passes that word on to the
# backend as the job's architecture; the testbed's is the ARCH before the "+".
# debci 3's workers run with the plain ARCH (they take a profile's jobs with
# --tag).
#
# hwgpu_split_arch WORD sets hwgpu_arch (the dpkg architecture) and
# hwgpu_arch_profile (the profile, or empty).  It returns 1, changing neither,
# unless WORD is ARCH or ARCH+PROFILE with exactly one "+", ARCH a dpkg
# architecture name (a-z 0-9 -, at most 32) and PROFILE a fleet profile name
# (a-z 0-9 . -, at most 64), each starting with a letter or digit.
hwgpu_split_arch() {
    _hwgpu_a=${1%%+*}
    _hwgpu_p=""
    case "$1" in
        *+*) _hwgpu_p=${1#*+} ;;
    esac
    case "$_hwgpu_a" in
        '' | [!a-z0-9]* | *[!a-z0-9-]*) return 1 ;;
    esac
    [ "${#_hwgpu_a}" -le 32 ] || return 1
    case "$1" in
        *+*)
            case "$_hwgpu_p" in
                '' | [!a-z0-9]* | *[!a-z0-9.-]*) return 1 ;;
            esac
            [ "${#_hwgpu_p}" -le 64 ] || return 1
            ;;
    esac
    hwgpu_arch=$_hwgpu_a
    hwgpu_arch_profile=$_hwgpu_p
    return 0
}
