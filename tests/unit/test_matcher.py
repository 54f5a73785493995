"""Verdicts: the right answer, and a reason that names what was asked and what is there."""

from __future__ import annotations

import pytest

from autopkgtest_hw.spec.inventory import Inventory
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

from .devices import ARC, CPU, MI210, POCL, T4, inv
from .devices import H100_OPENCL as H100

WORKSTATION = inv(T4, POCL)
DGX = inv(H100, H100.__class__(**{**H100.__dict__, "pci_address": "0000:3d:00.0"}))
ROCM = inv(MI210)
MIXED = inv(T4, MI210, ARC, POCL)


@pytest.mark.parametrize(
    ("token", "inventory", "satisfied"),
    [
        ("cuda", WORKSTATION, True),
        ("cuda:cc>=8.0", WORKSTATION, False),
        ("cuda:cc>=8.0", DGX, True),
        ("cuda:sm_90", DGX, True),
        ("cuda:sm_90", WORKSTATION, False),
        ("cuda:cc=9", DGX, True),  # versions compare component-wise: 9 == 9.0
        ("cuda:cc>=7.0:mem>=16G", WORKSTATION, True),  # a "16 GB" T4: 15 GiB = 16.1e9 bytes
        ("cuda:cc>=7.0:mem>=16Gi", WORKSTATION, False),  # binary: 15 GiB < 16 GiB
        ("cuda:cc>=7.0:mem>=16G", DGX, True),
        ("cuda:count>=2", DGX, True),
        ("cuda:count>=2", WORKSTATION, False),
        ("cuda:count>=2", MIXED, False),
        ("rocm:gfx90a", ROCM, True),
        ("rocm:gfx90a", WORKSTATION, False),
        ("rocm:arch=gfx1030/gfx1100", ROCM, False),
        ("rocm:arch=gfx1030/gfx90a", ROCM, True),
        ("cuda|rocm", ROCM, True),
        ("cuda|rocm", inv(POCL), False),
        ("opencl", WORKSTATION, False),  # PoCL is a CPU device: default type is gpu/accelerator
        ("opencl", ROCM, True),
        ("opencl:type=cpu", WORKSTATION, True),
        ("opencl:type=cpu", ROCM, True),  # any amd64 CPU: the test installs PoCL
        ("opencl:type=any:fp64", WORKSTATION, True),
        ("opencl:type=any:fp64", ROCM, False),  # MI210 here lists no fp64 extension
        ("opencl:version>=3.0", DGX, True),
        ("gpu:vendor=intel", MIXED, True),
        ("gpu:vendor=intel", WORKSTATION, False),
        ("gpu:vendor!=nvidia", WORKSTATION, False),
        ("gpu:model=*h100*", DGX, True),
        ("gpu:model=nvidia-h100-80gb-hbm3", DGX, True),
        ("gpu:model=*H100*", WORKSTATION, False),
        ("gpu:pci=10de:2330", DGX, True),
        ("cuda:driver>=535.104", WORKSTATION, True),
        ("cuda:driver>=550", WORKSTATION, False),
        ("cuda:cuda>=12.4", DGX, True),
        ("sycl", MIXED, True),
        ("vulkan", inv(POCL), False),
        ("cpu", inv(), True),
        ("cpu:avx2", inv(), True),
        ("cpu:avx512f", inv(), False),
        ("cpu:cores>=8:mem>=32G", inv(), False),
        ("cpu:cores>=2:mem>=16G", inv(), True),
        ("cpu:arch=amd64/arm64", inv(), True),
        ("cuda:nvlink>=4", DGX, False),  # unknown key: unsatisfiable, never an error
    ],
)
def test_verdicts(token, inventory, satisfied):
    assert match(parse(token), inventory).satisfied is satisfied


def test_reason_names_what_was_asked_and_what_is_there():
    verdict = match(
        parse("cuda:cc>=8.0"), WORKSTATION, label="needs-hw:cuda:cc>=8.0", subject="testbed"
    )
    assert verdict.message == (
        "needs-hw:cuda:cc>=8.0 not satisfied: testbed has 1 CUDA device (Tesla T4, cc 7.5)"
    )


def test_reason_when_the_class_is_absent():
    verdict = match(parse("cuda"), inv(POCL), subject="testbed")
    assert verdict.message == "cuda not satisfied: testbed has no CUDA device"


def test_reason_for_a_count():
    verdict = match(parse("cuda:count>=2:cc>=7.0"), MIXED)
    assert "machine has 1 CUDA device (Tesla T4, cc 7.5)" in verdict.detail
    assert "asked for count>=2" in verdict.detail


def test_reason_lists_each_alternative():
    verdict = match(parse("cuda:cc>=8.0|rocm:gfx1100"), MIXED)
    assert "cuda:cc>=8.0: machine has 1 CUDA device (Tesla T4, cc 7.5)" in verdict.detail
    assert "rocm:gfx1100: machine has 1 ROCm device (AMD Instinct MI210, arch gfx90a)" in (
        verdict.detail
    )


def test_reason_for_memory_uses_the_unit_of_the_spec():
    verdict = match(parse("cuda:mem>=24G"), WORKSTATION)
    assert verdict.detail == "machine has 1 CUDA device (Tesla T4, mem 16.1G)"
    verdict = match(parse("cuda:mem>=16GiB"), WORKSTATION)
    assert verdict.detail == "machine has 1 CUDA device (Tesla T4, mem 15GiB)"


def test_opencl_default_type_is_explained():
    verdict = match(parse("opencl"), WORKSTATION)
    assert verdict.detail == "machine has no OpenCL GPU or accelerator device"


def test_unknown_key_reads_as_unknown_not_absent():
    verdict = match(parse("cuda:nvlink>=4"), DGX)
    assert verdict.unknown_key
    assert "unknown key 'nvlink'" in verdict.message


def test_satisfied_verdict_names_the_devices():
    verdict = match(parse("cuda:cc>=8.0"), DGX)
    assert verdict.satisfied
    assert len(verdict.devices) == 2
    assert verdict.detail == (
        "2 CUDA devices fit (NVIDIA H100 80GB HBM3, cc 9.0; NVIDIA H100 80GB HBM3, cc 9.0)"
    )


def test_cpu_reason():
    verdict = match(parse("cpu:cores>=8:mem>=32G"), inv())
    assert verdict.detail == "machine has AMD EPYC 7B13, cores 2, mem 25.76G"


def test_reason_names_an_unavailable_detector():
    from autopkgtest_hw.spec.inventory import DetectorReport

    reports = (
        DetectorReport("nvml", "unavailable", "NVML Shared Library Not Found"),
        DetectorReport("opencl", "ok", "1 device on 1 platform", 1),
    )
    machine = Inventory(cpu=CPU, devices=(POCL,), detectors=reports)
    assert match(parse("cuda"), machine).detail == (
        "machine has no CUDA device (nvml detector unavailable: NVML Shared Library Not Found)"
    )
    assert match(parse("opencl"), machine).detail == (
        "machine has no OpenCL GPU or accelerator device"
    )
