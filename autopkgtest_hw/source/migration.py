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
)
#: (pattern on a Depends package name, spec, what lint says it saw).
DEPENDS_SIGNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^(pkg-rocm-tools|rocm-test-launcher)$"), "rocm", "depends on {pkg}"),
    (
        re.compile(r"^(lib)?(roc[a-z]+|hip[a-z]*|rccl|miopen|hsa-rocr|amdsmi)[0-9.-]*"),
        "rocm",
        "depends on {pkg}",
    ),
    (re.compile(r"^python3-torch-rocm$"), "rocm", "depends on {pkg}"),
    (
        re.compile(r"^(nvidia-cuda|libcuda|libcudart|libcublas|libnvidia-)"),
        "cuda",
        "depends on {pkg}",
    ),
    (re.compile(r"^python3-torch-cuda$"), "cuda", "depends on {pkg}"),
    (re.compile(r"^pocl-opencl-icd$"), "opencl:type=cpu", "depends on {pkg}"),
    (
        re.compile(r"(opencl-icd|^ocl-icd-libopencl1$|^python3-pyopencl$)"),
        "opencl",
        "depends on {pkg}",
    ),
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
    """Every test of ``pkg`` that is skippable, has no needs-hw:, and looks for a GPU itself."""
    if pkg.tests is None:
        return []
    out = []
    for name, stanza in pkg.tests.tests():
        if stanza.needs_hw or not stanza.has_restriction("skippable"):
            continue
        sign = _script_sign(pkg.srcdir, name, stanza) or _depends_sign(stanza)
        if sign is not None:
            out.append(SelfSkippingTest(name, stanza, *sign))
    return out


def _script_sign(srcdir: str, name: str, stanza: TestStanza) -> tuple[str, str] | None:
    text = stanza.command or _read_script(os.path.join(srcdir, stanza.tests_directory, name))
    for pattern, spec, evidence in SCRIPT_SIGNS:
        if pattern.search(text):
            return spec, evidence
    return None


def _depends_sign(stanza: TestStanza) -> tuple[str, str] | None:
    names = []
    for item in stanza.depends:
        for alternative in item.text.split("|"):
            m = _DEP_NAME_RE.match(alternative)
            if m:
                names.append(m.group(1).split(":")[0])
    for pattern, spec, evidence in DEPENDS_SIGNS:
        for pkg in names:
            if pattern.search(pkg):
                return spec, evidence.format(pkg=pkg)
    return None


def _read_script(path: str) -> str:
    """The start of a test script; empty if it cannot be read (autopkgtest will say so)."""
    try:
        with open(path, "rb") as f:
            return f.read(SCRIPT_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return ""
