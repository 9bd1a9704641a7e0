"""The layers stay where they belong: checked on the source, not left to review."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "access_api"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((SRC / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names or name.startswith("access_api.domain"), (
            f"{path.name} imports {name}"
        )


@pytest.mark.parametrize(
    "path",
    [p for p in SRC.rglob("*.py") if "repositories" not in p.parts and p.name != "db.py"],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_only_repositories_and_the_engine_speak_sql(path: Path) -> None:
    allowed = {"sqlalchemy.exc", "sqlalchemy.ext.asyncio"}  # errors to classify, session type
    for name in imports_of(path):
        if name == "sqlalchemy" or name.startswith("sqlalchemy."):
            assert name in allowed, f"{path.relative_to(SRC)} imports {name}"


@pytest.mark.parametrize("path", modules("routers"), ids=lambda p: p.name)
def test_routers_do_not_raise_http_exceptions(path: Path) -> None:
    assert "HTTPException" not in path.read_text(), "raise a DomainError; errors.py renders it"
