"""The devices and CPUs the unit tests share: real models, with the facts their detectors report.

Classified devices (``classes`` set) are what an inventory holds; the
``*_SEEN`` ones are single detectors' views, before merging and classes.
"""

from __future__ import annotations

import dataclasses

from autopkgtest_hw.spec.inventory import Cpu, Device, Inventory

GiB = 1 << 30

CPU = Cpu(
    arch="amd64",
    model="AMD EPYC 7B13",
    vendor="amd",
    flags=("sse2", "avx2", "fma"),
    cores=2,
    memory=24 * GiB,
)
#: The same CPU model in a 64-thread, 512G server, as ``detect`` shows it.
SERVER_CPU = Cpu(arch="amd64", model="AMD EPYC 7B13", cores=64, memory=512 * GiB, flags=("avx2",))

T4 = Device(
    classes=("gpu", "cuda", "vulkan"),
    vendor="nvidia",
    model="Tesla T4",
    pci_address="0000:3b:00.0",
    pci_id="10de:1eb8",
    memory=15 * GiB,
    arch="sm_75",
    compute_capability="7.5",
    driver="nvidia",
    driver_version="535.104.05",
    cuda_version="12.2",
)
#: An H100 without an OpenCL ICD for it.
H100 = Device(
    classes=("gpu", "cuda", "vulkan"),
    vendor="nvidia",
    model="NVIDIA H100 80GB HBM3",
    pci_address="0000:3b:00.0",
    pci_id="10de:2330",
    memory=80 * GiB,
    arch="sm_90",
    compute_capability="9.0",
    driver="nvidia",
    driver_version="550.54.15",
    cuda_version="12.4",
)
#: The same H100 in another slot, with NVIDIA's OpenCL ICD.
H100_OPENCL = dataclasses.replace(
    H100,
    classes=("gpu", "cuda", "opencl", "vulkan"),
    pci_address="0000:3c:00.0",
    opencl_type="gpu",
    opencl_version="3.0",
    opencl_extensions=("cl_khr_fp64", "cl_khr_fp16"),
)
MI210 = Device(
    classes=("gpu", "rocm", "opencl", "vulkan"),
    vendor="amd",
    model="AMD Instinct MI210",
    pci_address="0000:c1:00.0",
    pci_id="1002:740f",
    memory=64 * GiB,
    arch="gfx90a",
    driver="amdgpu",
    opencl_type="gpu",
    opencl_version="2.1",
)
ARC = Device(
    classes=("gpu", "sycl", "vulkan"),
    vendor="intel",
    model="Intel Arc A770",
    pci_address="0000:03:00.0",
    pci_id="8086:56a0",
    driver="i915",
)
#: PoCL's OpenCL device: the CPU itself.
POCL = Device(
    classes=("opencl",),
    model="pthread-AMD EPYC 7B13",
    opencl_type="cpu",
    opencl_version="3.0",
    opencl_platform="Portable Computing Language",
    opencl_extensions=("cl_khr_fp64", "cl_khr_byte_addressable_store"),
)

# -- one H100 PCIe as each detector sees it, and as `detect` shows it merged --

UDEV_H100_SEEN = Device(
    vendor="nvidia",
    model="GH100 [H100 PCIe]",
    pci_address="0000:3b:00.0",
    pci_id="10de:2330",
    pci_class="0x030200",
    driver="nvidia",
    device_nodes=("/dev/nvidia0", "/dev/nvidiactl"),
    iommu_group="17",
    sources=("udev",),
)
NVML_H100_SEEN = Device(
    vendor="nvidia",
    model="NVIDIA H100 PCIe",
    pci_address="0000:3b:00.0",
    memory=80 * GiB,
    arch="sm_90",
    compute_capability="9.0",
    driver="nvidia",
    driver_version="550.54.15",
    cuda_version="12.4",
    uuid="GPU-1",
    index=0,
    device_nodes=("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"),
    sources=("nvml",),
)
OPENCL_H100_SEEN = Device(
    vendor="nvidia",
    model="NVIDIA H100 PCIe",
    pci_address="0000:3b:00.0",
    memory=79 * GiB,
    opencl_version="3.0",
    opencl_type="gpu",
    opencl_platform="NVIDIA CUDA",
    opencl_extensions=("cl_khr_fp64",),
    sources=("opencl",),
)
POCL_SEEN = Device(
    vendor="amd",
    model="pthread-haswell-AMD EPYC",
    memory=4 * GiB,
    opencl_version="3.0",
    opencl_type="cpu",
    opencl_platform="Portable Computing Language",
    opencl_extensions=("cl_khr_fp64",),
    sources=("opencl",),
)
#: An H100 PCIe as udev and NVML report it together, MIG on (classed as `detect` classes it).
H100_PCIE = dataclasses.replace(
    H100,
    classes=("gpu", "cuda", "opencl", "vulkan", "video"),
    model="NVIDIA H100 PCIe",
    device_nodes=("/dev/nvidia0", "/dev/nvidiactl"),
    iommu_group="17",
    numa_node=0,
    uuid="GPU-abc",
    mig_mode=True,
    sources=("udev", "nvml"),
)
#: PoCL's device as `detect` shows it.
POCL_DETECTED = dataclasses.replace(
    POCL_SEEN, classes=("opencl",), opencl_extensions=("cl_khr_fp64", "cl_khr_spir")
)


def inv(*devices: Device) -> Inventory:
    """An inventory of ``devices`` on :data:`CPU`."""
    return Inventory(cpu=CPU, devices=devices)
