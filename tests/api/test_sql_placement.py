"""SQL stays in the catalog's repos: no module of the API imports SQLAlchemy's statement builders (who may
import whom is import-linter's, in ``make lint``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[2] / "src" / "hutch" / "api"
SQL_MODULES = {"sqlalchemy", "sqlalchemy.sql", "sqlalchemy.future"}
SQL_NAMES = {"select", "insert", "update", "delete", "func", "text"}


def _imports(path: Path) -> list[str]:
    """The absolute names of the modules ``path`` imports from (``from x import y`` counts ``x.y`` too)."""
    package = ".".join(("hutch", *path.relative_to(API.parent).with_suffix("").parts[:-1]))
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return names


MODULES = sorted(API.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(API)) for p in MODULES])
def test_no_sql_outside_the_catalog(path: Path) -> None:
    sql = [
        name
        for name in _imports(path)
        if name.rpartition(".")[0] in SQL_MODULES and name.rpartition(".")[2] in SQL_NAMES
    ]
    assert not sql
