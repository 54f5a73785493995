"""Every fact about a hardware class lives in spec/classes.py (or spec/hardware.py).

A module that compares against a class name, or keeps a table keyed by class
names, is a second list that a new class would have to find: the recipe in
docs/design.md would not name it, and it would drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

from autopkgtest_hw.spec import classes

PACKAGE = Path(classes.__file__).resolve().parents[1]
NAMES = {c.name for c in classes.CLASSES} - {"cpu", "gpu"}  # also plain words elsewhere
HOMES = {PACKAGE / "spec" / "classes.py", PACKAGE / "spec" / "hardware.py"}
#: Known and left (file, class name): the parser's ROCm target-feature error
#: (``gfx90a:xnack+``); migration's hints, which compare spec texts it suggests.
LEFT = {("spec/language.py", "rocm"), ("source/migration.py", "opencl")}


def _class_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in NAMES


def _left(path: Path, node: ast.Compare) -> bool:
    names = {n.value for n in (node.left, *node.comparators) if isinstance(n, ast.Constant)}
    return any((str(path.relative_to(PACKAGE)), name) in LEFT for name in names)


def test_no_module_but_the_table_decides_by_a_class_name() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in HOMES or "commands" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.Compare)
                and all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops)
                and any(_class_name(n) for n in (node.left, *node.comparators))
                and not _left(path, node)
            ):
                found.append(f"{where}: compares a class name")
            if isinstance(node, ast.Dict) and sum(_class_name(k) for k in node.keys if k) >= 2:
                found.append(f"{where}: a table by class")
    assert found == []


def test_the_identifying_fields_are_device_fields() -> None:
    from autopkgtest_hw.spec.inventory import Device

    assert set(classes.IDENTIFYING_FIELDS) <= set(Device.__dataclass_fields__)
