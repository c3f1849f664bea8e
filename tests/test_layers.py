"""Dependencies point one way: server -> persistence -> crdt -> pycrdt (DESIGN.md section 1)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What each package may import from the project's own packages.
ALLOWED = {
    "crdt": set(),
    "persistence": {"crdt"},
    "server": {"crdt", "persistence"},
}
# crdt is pure: no I/O, no event loop, no SQL.
FORBIDDEN_IN_CRDT = {"asyncio", "sqlalchemy", "socket", "starlette", "websockets", "psycopg"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package):
    others = set(ALLOWED) - {package}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = (imported_modules(path) & others) - ALLOWED[package]
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
        if package == "crdt":
            impure = imported_modules(path) & FORBIDDEN_IN_CRDT
            assert not impure, f"{path.relative_to(ROOT)} imports {sorted(impure)}"


def test_checker_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from server.app import create_app\nimport sqlalchemy as sa\n")
    assert {"server", "sqlalchemy"} <= imported_modules(bad)
