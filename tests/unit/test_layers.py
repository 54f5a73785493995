"""The layer rules of docs/design.md, read from the imports themselves.

Each part (a sub-package of ``autopkgtest_hw``) may import only the parts
below it; its ``__init__`` docstring says which ("May import: ...").  A new
import across the rules fails here, naming the file and the line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "autopkgtest_hw"

#: part -> the parts it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "spec": {"base"},
    "detect": {"base", "spec"},
    "locks": {"base", "spec"},
    "virt": {"base", "spec", "detect", "locks"},
    "source": {"base", "spec", "locks"},
    "fleet": {"base", "spec", "detect", "source"},
    "porterbox": {"base", "locks", "virt"},
    "commands": {"base", "spec", "detect", "locks", "virt", "source", "fleet", "porterbox"},
}
#: modules at the top: the command line and the version.
TOP_LEVEL = {"__init__.py", "__main__.py", "cli.py"}


def _imported_parts(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "autopkgtest_hw":
                names = [f"autopkgtest_hw.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "<relative>"))
        for name in names:
            parts = name.split(".")
            if parts[0] == "autopkgtest_hw" and len(parts) > 1 and parts[1] != "__version__":
                found.append((node.lineno, parts[1]))
    return found


def test_every_module_belongs_to_a_part() -> None:
    for path in PACKAGE.glob("*.py"):
        assert path.name in TOP_LEVEL, f"{path.name}: a module outside the parts"
    parts = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert parts == set(ALLOWED)


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_part_imports_only_what_its_rules_allow(part: str) -> None:
    bad = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for line, other in _imported_parts(path):
            if other == "<relative>":
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: relative import")
            elif other != part and other not in ALLOWED[part]:
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: imports {other}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_init_docstring_states_the_rule(part: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text())) or ""
    match = re.search(r"May import: (.*?)\.\s*$", doc, re.S)
    assert match, f"{part}/__init__.py: no 'May import:' line"
    stated = set(re.findall(r"``(\w+)``", match[1]))
    assert stated == ALLOWED[part], f"{part}: docstring says {stated}, rule is {ALLOWED[part]}"
