"""Today's GPU tests: ``skippable`` tests that exit 77 when they find no GPU.

Before ``needs-hw:``, a GPU test said nothing in debian/tests/control: it was
``skippable``, installed its (large) dependencies everywhere, then looked for
the hardware itself and exited 77: through ``rocm-test-launcher`` (the
Debian ROCm team's wrapper), its own ``/dev/kfd`` or ``nvidia-smi`` check,
or a runtime that lists no device.  :func:`find` recognises such tests from
their command or script and their Depends, and names the ``needs-hw:``
restriction that says the same where autopkgtest and CI can see it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from autopkgtest_hw.source.control import SourcePackage, TestStanza

#: How much of a test script is read (scripts are small; a huge file is not one).
SCRIPT_LIMIT = 64 * 1024

#: (pattern in the command or script, spec, what lint says it saw), first match wins.
SCRIPT_SIGNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"\brocm-test-launcher\b"), "rocm", "runs rocm-test-launcher"),
    (re.compile(r"/dev/kfd\b"), "rocm", "checks /dev/kfd"),
    (re.compile(r"\b(rocminfo|rocm-smi|amd-smi)\b"), "rocm", "runs rocminfo or rocm-smi"),
    (re.compile(r"\bnvidia-smi\b"), "cuda", "runs nvidia-smi"),
    (re.compile(r"/dev/nvidia"), "cuda", "checks /dev/nvidia*"),
    (re.compile(r"torch\.cuda\.is_available"), "cuda", "asks torch.cuda.is_available()"),
    (re.compile(r"\bclinfo\b"), "opencl", "runs clinfo"),
    (re.compile(r"\bvulkaninfo\b"), "vulkan", "runs vulkaninfo"),
    (re.compile(r"\bvainfo\b"), "video", "runs vainfo"),
)
#: Debian's ROCm runtime libraries and tools (their -dev, -tests and soversion
#: packages too): names, not prefixes, so librocksdb and rocq are not ROCm.
_ROCM_NAMES = (
    "rocblas|rocfft|rocrand|rocsparse|rocsolver|rocalution|rocwmma|roctracer|rocprofiler"
    "|rocm-smi|rocm-smi-lib|rocm-core|rocminfo|rocm-device-libs|rocm-hipamd|rccl|miopen"
    "|hipblas|hipblaslt|hipfft|hiprand|hipsparse|hipsolver|amdhip|hsa-runtime|hsakmt"
    "|amdsmi|python3-torch-rocm"
)
_NAME_TAIL = r"(?:[0-9][0-9.]*)?(?:-[a-z0-9]+)*"
#: (pattern on a Depends package name, spec, what lint says it saw), first match wins.
DEPENDS_SIGNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^(pkg-rocm-tools|rocm-test-launcher)$"), "rocm", "depends on {pkg}"),
    (re.compile(rf"^(?:lib)?(?:{_ROCM_NAMES}){_NAME_TAIL}$"), "rocm", "depends on {pkg}"),
    (
        re.compile(
            rf"^(?:libcuda1|lib(?:cudart|cublas|cublaslt|cufft|curand|cusparse|cusolver|nvrtc)"
            rf"{_NAME_TAIL}|libnvidia-[a-z0-9-]+|python3-torch-cuda|python3-pycuda)$"
        ),
        "cuda",
        "depends on {pkg}",
    ),
    (re.compile(r"^pocl-opencl-icd$"), "opencl:type=cpu", "depends on {pkg}"),
    (
        re.compile(r"^(mesa-opencl-icd|intel-opencl-icd|nvidia-opencl-icd|rocm-opencl-icd)$"),
        "opencl",
        "depends on {pkg}",
    ),
    # An OpenCL program without PoCL among its Depends looks for the host's device.
    (re.compile(r"^(ocl-icd-libopencl1|python3-pyopencl)$"), "opencl", "depends on {pkg}"),
    (re.compile(r"^nvidia-vulkan-icd$"), "vulkan", "depends on {pkg}"),
    (
        re.compile(r"^(mesa-va-drivers|intel-media-va-driver(-non-free)?|i965-va-driver)$"),
        "video",
        "depends on {pkg}",
    ),
)
#: A compiler or build tool in the script ...
_COMPILES = re.compile(
    r"\b(hipcc|nvcc|amdclang\+\+|clang\+\+|clang|g\+\+|gcc|c\+\+|cmake|make|meson|ninja)\b"
)
#: ... and no program it built run: ``./prog`` or ``$AUTOPKGTEST_TMP/prog`` as a command.
_RUNS_BUILT = re.compile(
    r"(?m)^(?:\s*|.*(?:;|&&|\|\||\bexec\b|\bthen\b|\bdo\b)\s*)"
    r"(?:\./|\"?\$\{?AUTOPKGTEST_TMP\}?/)[\w./-]+"
)
_DEP_NAME_RE = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)")


@dataclass(frozen=True)
class SelfSkippingTest:
    """A skippable test that looks for its GPU itself, and the restriction that replaces that."""

    name: str
    stanza: TestStanza
    spec: str  # e.g. "rocm"
    evidence: str  # e.g. "runs rocm-test-launcher"

    @property
    def restrictions_line(self) -> str:
        """The stanza's Restrictions: with the needs-hw: restriction first."""
        others = [t.text for t in self.stanza.restrictions]
        return "Restrictions: " + ", ".join([f"needs-hw:{self.spec}", *others])


def find(pkg: SourcePackage) -> list[SelfSkippingTest]:
    """Every test of ``pkg`` that is skippable, has no needs-hw:, and looks for a GPU itself.

    What the test does decides: its command or script first (a GPU check, a
    GPU tool), with its Depends where they say more (``clinfo`` with PoCL is an
    OpenCL CPU test); a script that only compiles needs no GPU whatever it
    depends on; the Depends alone where the script says nothing.
    """
    if pkg.tests is None:
        return []
    out = []
    for name, stanza in pkg.tests.tests():
        if stanza.needs_hw or not stanza.has_restriction("skippable"):
            continue
        sign = _sign(pkg.srcdir, name, stanza)
        if sign is not None:
            out.append(SelfSkippingTest(name, stanza, *sign))
    return out


def _sign(srcdir: str, name: str, stanza: TestStanza) -> tuple[str, str] | None:
    text = stanza.command or _read_script(os.path.join(srcdir, stanza.tests_directory, name))
    depends = _depends_signs(stanza)
    for pattern, spec, evidence in SCRIPT_SIGNS:
        if pattern.search(text):
            cpu = [e for s, e in depends if s == "opencl:type=cpu"]
            if spec == "opencl" and cpu and not any(s == "opencl" for s, e in depends[:1]):
                return "opencl:type=cpu", f"{evidence} with {cpu[0].removeprefix('depends on ')}"
            return spec, evidence
    if _COMPILES.search(text) and not _RUNS_BUILT.search(text):
        return None  # it builds against the libraries, and runs nothing it built
    return depends[0] if depends else None


def _depends_signs(stanza: TestStanza) -> list[tuple[str, str]]:
    names = []
    for item in stanza.depends:
        for alternative in item.text.split("|"):
            m = _DEP_NAME_RE.match(alternative)
            if m:
                names.append(m.group(1).split(":")[0])
    out = []  # in the order of DEPENDS_SIGNS: the first is the most telling
    for pattern, spec, evidence in DEPENDS_SIGNS:
        out += [(spec, evidence.format(pkg=pkg)) for pkg in names if pattern.search(pkg)]
    return out


def _read_script(path: str) -> str:
    """The start of a test script; empty if it cannot be read (autopkgtest will say so)."""
    try:
        with open(path, "rb") as f:
            return f.read(SCRIPT_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return ""
