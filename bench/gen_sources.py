#!/usr/bin/env python3
"""Write a synthetic archive ``Sources`` index shaped like sid's main (for bench_route.py).

Used when the real one cannot be fetched.  Each stanza has the fields and
roughly the size of a real one (Binary, Build-Depends, Package-List, three
checksum lists, Vcs-*, ...), and the Architecture and Testsuite mix of sid
in late 2026 (51% all, 34% any, 11% "any all", the rest linux-any or lists;
61% with autopkgtests).

Usage: .venv/bin/python bench/gen_sources.py OUT [--packages 43000] [--seed 1]
"""

from __future__ import annotations

import argparse
import hashlib
import random

ARCHES = [
    (0.515, "all"),
    (0.343, "any"),
    (0.111, "any all"),
    (0.011, "linux-any"),
    (0.004, "linux-any all"),
    (0.016, "amd64 arm64 ppc64el"),
]


def _arch(rng: random.Random) -> str:
    x = rng.random()
    for p, value in ARCHES:
        if x < p:
            return value
        x -= p
    return "amd64"


def stanza(rng: random.Random, i: int) -> str:
    name = f"pkg{i:05d}-{rng.choice(['python', 'lib', 'r-cran', 'golang', 'node', 'ruby'])}"
    version = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}-{rng.randint(1, 5)}"
    binaries = [f"{name}-bin{j}" for j in range(rng.randint(1, 4))]
    deps = ", ".join(
        f"libdep{rng.randint(0, 5000)}-dev (>= {rng.randint(1, 9)}.0)"
        for _ in range(rng.randint(3, 25))
    )
    lines = [
        f"Package: {name}",
        "Format: 3.0 (quilt)",
        f"Binary: {', '.join(binaries)}",
        f"Architecture: {_arch(rng)}",
        f"Version: {version}",
        "Maintainer: Debian Example Team <team@lists.example.org>",
        "Uploaders: Someone <someone@example.org>",
        "Standards-Version: 4.7.0",
        f"Build-Depends: debhelper-compat (= 13), {deps}",
        "Package-List:",
        *(f" {b} deb libs optional arch=any" for b in binaries),
    ]
    if rng.random() < 0.61:
        lines.append("Testsuite: autopkgtest" + rng.choice(["", "-pkg-python", "-pkg-r"]))
    for field, algo in (
        ("Files", "md5"),
        ("Checksums-Sha256", "sha256"),
        ("Checksums-Sha512", "sha512"),
    ):
        lines.append(f"{field}:")
        for suffix in (".dsc", ".orig.tar.xz", ".debian.tar.xz"):
            digest = hashlib.new(algo, f"{name}{suffix}".encode()).hexdigest()
            lines.append(f" {digest} {rng.randint(1000, 9_000_000)} {name}_{version}{suffix}")
    lines += [
        f"Vcs-Browser: https://salsa.example.org/team/{name}",
        f"Vcs-Git: https://salsa.example.org/team/{name}.git",
        f"Directory: pool/main/{name[0]}/{name}",
        "Priority: optional",
        "Section: misc",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--packages", type=int, default=43_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(stanza(rng, i) for i in range(args.packages)))


if __name__ == "__main__":
    main()
