"""What a spec means, as maintainers of GPU packages mean it (issue 11, SPEC.md draft 2).

One test (or a few) per decision; each fails without it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autopkgtest_hw.detect.merge import classify
from autopkgtest_hw.spec import rocm
from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory
from autopkgtest_hw.spec.language import SpecError, parse
from autopkgtest_hw.spec.matcher import _Glob, match, unanswerable

from .devices import CPU, H100_OPENCL, MI210, T4, inv

#: An RX 6800 as the kernel reports it: 17,163,091,968 bytes of VRAM, no ICD on the host.
RX6800 = classify(
    Device(
        vendor="amd",
        model="Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]",
        pci_address="0000:03:00.0",
        pci_id="1002:73bf",
        pci_class="0x030000",
        memory=17_163_091_968,
        arch="gfx1030",
        driver="amdgpu",
        device_nodes=("/dev/dri/card0", "/dev/dri/renderD128", "/dev/kfd"),
        sources=("udev",),
    )
)
#: The server's BMC display chip.
AST = classify(
    Device(
        vendor="1a03",
        model="ASPEED Graphics Family",
        pci_address="0000:02:00.0",
        pci_id="1a03:2000",
        pci_class="0x030000",
        driver="ast",
        device_nodes=("/dev/dri/card1",),
        sources=("udev",),
    )
)
#: A T4 as NVML reports it: 15,360 MiB.
T4_NVML = dataclasses.replace(T4, memory=15360 << 20)
ARM = Cpu(arch="arm64", model="Neoverse-N1", vendor="arm", cores=80, memory=256 << 30)


def verdict(token: str, inventory: Inventory) -> str:
    v = match(parse(token), inventory)
    return ("satisfied: " if v.satisfied else "not satisfied: ") + v.detail


# -- 1. sizes ----------------------------------------------------------------


def test_decimal_sizes_hold_on_cards_sold_as_16_gb() -> None:
    assert match(parse("rocm:mem>=16G"), inv(RX6800)).satisfied
    assert match(parse("cuda:mem>=16G"), inv(T4_NVML)).satisfied
    assert match(parse("cuda:mem>=16GB"), inv(T4_NVML)).satisfied
    assert not match(parse("cuda:mem>=16Gi"), inv(T4_NVML)).satisfied
    assert not match(parse("cuda:mem>=16GiB"), inv(T4_NVML)).satisfied


@pytest.mark.parametrize(
    ("memory", "token", "shown"),
    [
        (15360 << 20, "cuda:mem>=24G", "mem 16.1G"),
        (15360 << 20, "cuda:mem>=16T", "mem 0.01T"),
    ],
)
def test_not_satisfied_never_shows_the_asked_figure(memory: int, token: str, shown: str) -> None:
    text = verdict(token, inv(dataclasses.replace(T4, memory=memory)))
    assert text.startswith("not satisfied") and f"Tesla T4, {shown})" in text


@pytest.mark.parametrize(
    ("memory", "token", "shown"),
    [  # RAM is compared as reported (a device's mem by its nominal size: test_spec_memory)
        (15_999_999_999, "cpu:mem>=16G", "mem 15.99G"),
        (16_000_000_001, "cpu:mem<=16G", "mem 16.000000001G"),
        ((16 << 30) - 1, "cpu:mem>=16Gi", "mem 15.99Gi"),
        ((16 << 30) + 1, "cpu:mem<=16GiB", "mem 16.0000000009GiB"),
    ],
)
def test_not_satisfied_never_shows_the_asked_ram_figure(
    memory: int, token: str, shown: str
) -> None:
    text = verdict(token, Inventory(cpu=dataclasses.replace(CPU, memory=memory)))
    assert text.startswith("not satisfied") and text.endswith(f", {shown}")


@given(st.integers(min_value=1, max_value=1 << 50), st.sampled_from(["K", "M", "G", "Gi", "TB"]))
@settings(max_examples=300, deadline=None)
def test_any_size_not_satisfied_differs_from_the_asked_one(memory: int, unit: str) -> None:
    device = dataclasses.replace(T4, memory=memory)
    for op in (">", "<", "!="):
        v = match(parse(f"cuda:mem{op}16{unit}"), inv(device))
        if not v.satisfied and memory != parse_bytes(f"16{unit}"):
            assert f"mem 16{unit})" not in v.detail


def parse_bytes(text: str) -> int:
    from autopkgtest_hw.spec.sizes import parse_size

    return parse_size(text)


# -- 2. a class is hardware plus the kernel driver ----------------------------


def test_opencl_cpu_holds_on_any_cpu_a_debian_opencl_runtime_supports() -> None:
    gpu_server = Inventory(cpu=ARM, devices=(H100_OPENCL,))  # no PoCL on the host
    assert verdict("opencl:type=cpu", gpu_server) == (
        "satisfied: 1 OpenCL device fits (Neoverse-N1 via PoCL, type cpu)"
    )
    assert not match(parse("opencl:type=cpu"), Inventory(cpu=Cpu(arch="hppa"))).satisfied


def test_runtime_details_of_the_cpu_are_unknown_and_the_verdict_says_what_to_install() -> None:
    text = verdict("opencl:type=cpu:version>=3.0:fp64", Inventory(cpu=ARM))
    assert text.startswith("not satisfied: machine has 1 OpenCL device (Neoverse-N1 via PoCL,")
    assert "version unknown, fp64 unknown" in text
    assert "install the device's OpenCL ICD (pocl-opencl-icd for CPUs" in text


def test_an_amd_gpu_without_an_icd_on_the_host_is_an_opencl_gpu() -> None:
    assert "opencl" in RX6800.classes
    assert match(parse("opencl"), inv(RX6800)).satisfied
    text = verdict("opencl:version>=2.0", inv(RX6800))
    assert "version unknown" in text and "python3-pyopencl on the host to know" in text


def test_a_gpu_whose_driver_has_no_opencl_runtime_in_debian_is_not_one() -> None:
    nouveau = classify(
        Device(vendor="nvidia", pci_class="0x030000", driver="nouveau", sources=("udev",))
    )
    assert "opencl" not in nouveau.classes and "vulkan" in nouveau.classes


# -- 3. vulkan:version only from a Vulkan source -------------------------------


def test_vulkan_version_is_not_the_opencl_version() -> None:
    text = verdict("vulkan:version>=3.0", inv(H100_OPENCL))
    assert text.startswith("not satisfied") and "version unknown" in text
    assert "install vulkan-tools" in text
    seen = dataclasses.replace(H100_OPENCL, vulkan_version="1.3")
    assert match(parse("vulkan:version>=1.3"), inv(seen)).satisfied
    assert not match(parse("vulkan:version>=3.0"), inv(seen)).satisfied


# -- 4. display-only devices ---------------------------------------------------


def test_an_inventory_recorded_by_an_older_version_reads_by_todays_classes() -> None:
    old_ast = dataclasses.replace(AST, classes=("gpu", "vulkan"))  # as draft 1 classed it
    assert not match(parse("gpu:count>=2"), inv(RX6800, old_ast)).satisfied
    handwritten = Device(classes=("gpu",), model="a GPU")  # no detector facts: as stated
    assert match(parse("gpu"), inv(handwritten)).satisfied


def test_a_bmc_display_chip_is_recorded_but_is_no_gpu() -> None:
    server = inv(RX6800, AST)
    assert AST.classes == ()
    assert not match(parse("gpu:count>=2"), server).satisfied
    assert match(parse("gpu"), inv(AST)).satisfied is False


# -- 7. ROCm targets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "arch", "holds"),
    [
        ("rocm:gfx10-3-generic", "gfx1030", True),
        ("rocm:gfx10-3-generic", "gfx1036", True),
        ("rocm:gfx10-3-generic", "gfx1100", False),
        ("rocm:arch=gfx11-generic/gfx9-4-generic", "gfx942", True),
        ("rocm:gfx11-generic", "gfx1151", True),
        ("rocm:gfx9-generic", "gfx906", True),
        ("rocm:gfx9-generic", "gfx90a", False),  # MI200 is not in gfx9-generic
        ("rocm:gfx12-generic", "gfx1201", True),
        ("rocm:gfx10-1-generic", "gfx1010", True),
        ("rocm:arch!=gfx11-generic", "gfx1100", False),
    ],
)
def test_generic_targets_match_the_devices_llvm_covers(token: str, arch: str, holds: bool) -> None:
    device = dataclasses.replace(MI210, arch=arch, classes=("gpu", "rocm"))
    assert match(parse(token), inv(device)).satisfied is holds


def test_every_generic_target_covers_real_processors() -> None:
    for generic, covered in rocm.GENERIC_COVERS.items():
        assert generic.endswith("-generic") and covered
        parse(f"rocm:{generic}")


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        ("rocm:gfx90a:xnack+", "target feature 'xnack+' is not a constraint", "rocm:gfx90a"),
        ("rocm:gfx90a:sramecc-", "target feature 'sramecc-'", "rocm:gfx90a"),
        ("rocm:gfx90a/gfx942", "several architectures", "arch=gfx90a/gfx942"),
        ("cuda:sm_80/sm_90", "several architectures", "arch=sm_80/sm_90"),
        ("rocm:gfx10-generic", "not an LLVM generic target", "gfx10-3-generic"),
        ("rocm:arch=gfx13-generic", "not an LLVM generic target", None),
        (
            "needs-hw:${rocm:GPU-Architecture}",
            "debian/tests/control is never substituted",
            None,
        ),
    ],
)
def test_rocm_team_forms_get_an_error_with_the_accepted_form(
    text: str, message: str, suggestion: str | None
) -> None:
    with pytest.raises(SpecError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.suggestion == suggestion


def test_the_substitution_error_says_what_to_write() -> None:
    with pytest.raises(SpecError) as info:
        parse("needs-hw:rocm:arch=${rocm:GPU-Architecture}")
    assert "needs-hw:rocm:arch=gfx90a/gfx1030" in info.value.message
    assert info.value.column == len("needs-hw:rocm:arch=") + 1


# -- 8. drivers ---------------------------------------------------------------------


def test_module_tells_nouveau_from_nvidia() -> None:
    nvk = classify(
        Device(
            vendor="nvidia",
            model="GA102 [GeForce RTX 3090]",
            pci_class="0x030000",
            pci_address="0000:01:00.0",
            driver="nouveau",
            sources=("udev",),
        )
    )
    assert match(parse("vulkan:module=nouveau"), inv(nvk)).satisfied
    assert not match(parse("vulkan:module=nvidia"), inv(nvk)).satisfied
    assert match(parse("gpu:vendor=nvidia:module!=nvidia"), inv(nvk)).satisfied
    assert match(parse("cuda:module=nvidia"), inv(T4)).satisfied


def test_driver_versions_no_detector_reads_are_reported_for_lint() -> None:
    assert unanswerable(parse("cuda:driver>=535")) == []
    assert unanswerable(parse("sycl:driver>=1.0")) == [
        "sycl:driver>=1.0: Intel's i915 and xe kernel drivers report no version"
    ]
    (rocm_line,) = unanswerable(parse("rocm:driver>=6.0|cuda"))
    assert "amdgpu-dkms" in rocm_line
    assert unanswerable(parse("cuda:nvlink>=4")) == [
        "cuda:nvlink>=4: unknown key 'nvlink' (a newer autopkgtest-hw may know it)"
    ]


def test_an_unknown_driver_version_says_why() -> None:
    text = verdict("rocm:driver>=6.0", inv(MI210))
    assert "driver unknown" in text and "amdgpu-dkms" in text


# -- 10. video ----------------------------------------------------------------------


def test_video_codecs_from_a_runtime_else_unknown() -> None:
    seen = dataclasses.replace(
        RX6800,
        video_decode=("h264", "hevc", "vp9", "av1"),
        video_encode=("h264", "hevc"),
        video_known=("decode", "encode"),
    )
    assert "video" in seen.classes
    assert match(parse("video:decode=av1"), inv(seen)).satisfied
    assert match(parse("video:encode=hevc/av1"), inv(seen)).satisfied
    assert not match(parse("video:encode=av1"), inv(seen)).satisfied
    assert match(parse("video:encode!=av1"), inv(seen)).satisfied
    text = verdict("video:decode=h264", inv(RX6800))
    assert "decode unknown" in text and "install vainfo" in text


def test_video_codec_names_are_checked() -> None:
    with pytest.raises(SpecError) as info:
        parse("video:decode=h265")
    assert info.value.suggestion == "h264"  # difflib's nearest; the message lists them all
    assert "hevc" in info.value.message


# -- issue 9: bounded input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cuda:count>=" + "9" * 4301, "a spec is at most 1000 characters; this one has 4313"),
        ("cuda:count>=" + "9" * 500, "count needs a whole number of at most 9 digits"),
        ("cpu:cores>=" + "1" * 10, "cores needs a whole number of at most 9 digits"),
        ("cpu:mem>=" + "9" * 10**6 + "G", "a spec is at most 1000 characters"),
        ("cpu:mem>=" + "9" * 900 + "G", "mem needs a size like 16G or 16Gi"),
        ("cuda:cc>=" + "1." * 20 + "1", "cc needs a version like 8.0"),
        ("gpu:model=" + "*a" * 500_000, "a spec is at most 1000 characters"),
        ("cpu/" + "9" * 990, "unknown class"),  # found by the fuzz target: echoed twice
        ("cuda:" + "k" * 990, "is neither a constraint"),
    ],
)
def test_huge_values_are_spec_errors(text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse(text)
    assert message in info.value.message
    assert len(str(info.value)) < 1300  # the error never echoes more than a 1000-character spec
    assert time.perf_counter() - start < 5  # a sanity bound, not a benchmark


def test_a_long_glob_matches_without_backtracking() -> None:
    spec = parse("gpu:model=" + "*a" * 490 + "*b")
    device = dataclasses.replace(T4, model="a" * 5000)
    assert not match(spec, inv(device)).satisfied  # exponential with fnmatch's regex


@given(
    st.text(alphabet="ab*", max_size=12),
    st.text(alphabet="ab", max_size=12),
)
@settings(max_examples=2000, deadline=None)
def test_the_glob_agrees_with_fnmatch(pattern: str, text: str) -> None:
    assert _Glob(pattern).matches(text) == fnmatch.fnmatchcase(text, pattern)


# -- issue 10: one parse per distinct token ------------------------------------------


def test_a_spec_is_parsed_once_and_errors_stay_the_same() -> None:
    assert parse("cuda:cc>=8.0") is parse("cuda:cc>=8.0")
    messages = []
    for _ in range(2):
        with pytest.raises(SpecError) as info:
            parse("cdua")
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert CPU.arch == "amd64"


def test_features_are_unknown_only_where_no_icd_reported_the_device() -> None:
    with_icd = verdict("opencl:fp64", inv(MI210))  # an ICD listed it, without fp64
    assert "no fp64" in with_icd and "install" not in with_icd
    without = verdict("opencl:fp64", inv(RX6800))
    assert "fp64 unknown" in without and "python3-pyopencl on the host" in without
