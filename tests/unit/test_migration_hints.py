"""Migration hints from what the test does (issue 19, item 3).

The stanzas follow real packages: rocm-hipamd's build checks ("more build
checks (no GPU required)"), a clinfo test with PoCL, skippable Vulkan and
VA-API tests, and packages whose names only look like ROCm's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autopkgtest_hw.source import migration
from autopkgtest_hw.source.control import read_source_package

from .test_lint import make_source


def _hints(tmp_path: Path, control: str, scripts: dict[str, str]) -> dict[str, tuple[str, str]]:
    src = make_source(tmp_path, control)
    for name, text in scripts.items():
        (src / "debian" / "tests" / name).write_text(text)
    return {t.name: (t.spec, t.evidence) for t in migration.find(read_source_package(str(src)))}


def test_a_test_that_only_compiles_hip_code_gets_no_hint(tmp_path: Path) -> None:
    hints = _hints(
        tmp_path,
        "Tests: hipcc-build\nDepends: hipcc, libamdhip64-dev, rocm-device-libs-17\n"
        "Restrictions: superficial, skippable\n",
        {"hipcc-build": '#!/bin/sh\nset -e\ncd "$AUTOPKGTEST_TMP"\nhipcc -o t t.hip\n'},
    )
    assert hints == {}


def test_a_test_that_builds_and_runs_gets_the_hint(tmp_path: Path) -> None:
    hints = _hints(
        tmp_path,
        "Tests: run\nDepends: hipcc, libamdhip64-dev\nRestrictions: skippable\n",
        {"run": "#!/bin/sh\nset -e\nhipcc -o t t.hip\n./t\n"},
    )
    assert hints == {"run": ("rocm", "depends on libamdhip64-dev")}


@pytest.mark.parametrize("pkg", ["librocksdb-dev", "rocq-core", "hipcc", "nvidia-cuda-toolkit"])
def test_names_that_only_look_like_gpu_packages_give_no_hint(tmp_path: Path, pkg: str) -> None:
    assert _hints(tmp_path, f"Tests: t\nDepends: {pkg}\nRestrictions: skippable\n", {}) == {}


@pytest.mark.parametrize(
    "pkg", ["librocblas4-tests", "librocrand1", "libhipblas-dev", "rccl-tests"]
)
def test_real_rocm_packages_still_give_the_hint(tmp_path: Path, pkg: str) -> None:
    hints = _hints(tmp_path, f"Tests: t\nDepends: {pkg}\nRestrictions: skippable\n", {})
    assert hints == {"t": ("rocm", f"depends on {pkg}")}


def test_clinfo_with_pocl_is_an_opencl_cpu_test(tmp_path: Path) -> None:
    hints = _hints(
        tmp_path,
        "Tests: clinfo\nDepends: clinfo, pocl-opencl-icd\nRestrictions: skippable\n",
        {"clinfo": "#!/bin/sh\nclinfo -l | grep -q Device || exit 77\n"},
    )
    assert hints == {"clinfo": ("opencl:type=cpu", "runs clinfo with pocl-opencl-icd")}


def test_vulkan_and_vaapi_tests_get_their_classes(tmp_path: Path) -> None:
    hints = _hints(
        tmp_path,
        "Tests: vk\nDepends: vulkan-tools\nRestrictions: skippable\n\n"
        "Tests: va\nDepends: vainfo, mesa-va-drivers\nRestrictions: skippable\n",
        {
            "vk": "#!/bin/sh\nvulkaninfo --summary | grep -q DISCRETE_GPU || exit 77\n",
            "va": "#!/bin/sh\nvainfo || exit 77\n",
        },
    )
    assert hints == {"vk": ("vulkan", "runs vulkaninfo"), "va": ("video", "runs vainfo")}
