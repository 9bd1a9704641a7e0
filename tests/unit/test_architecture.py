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


# Routers parse, call one use case, and render: a handler that grows past this many lines is
# doing a use case's work.
ROUTER_FUNCTION_MAX_LINES = 25


def _functions(path: Path) -> list[ast.AsyncFunctionDef | ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)]


@pytest.mark.parametrize("path", modules("routers"), ids=lambda p: p.name)
def test_router_functions_stay_short(path: Path) -> None:
    for function in _functions(path):
        body = function.body
        # The docstring does not count; the signature and decorators do not either.
        first = body[1] if len(body) > 1 and isinstance(body[0], ast.Expr) else body[0]
        length = (function.end_lineno or first.lineno) - first.lineno + 1
        assert length <= ROUTER_FUNCTION_MAX_LINES, (
            f"{path.name}:{function.name} is {length} lines: move the work into a use case"
        )


# Router imports still to be undone, each with its way out. This list only shrinks.


@pytest.mark.parametrize("path", modules("routers"), ids=lambda p: p.name)
def test_routers_import_no_repository_and_no_other_router(path: Path) -> None:
    for name in imports_of(path):
        assert not name.startswith("access_api.repositories"), f"{path.name} imports {name}"
        assert not name.startswith("access_api.routers.") or name == "access_api.routers.common", (
            f"{path.name} imports {name}: share it through a use case or routers/common"
        )


@pytest.mark.parametrize("path", modules("use_cases"), ids=lambda p: p.name)
def test_use_cases_know_nothing_of_http(path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top not in {"fastapi", "starlette"}, f"{path.name} imports {name}"
        assert not name.startswith("access_api.routers"), f"{path.name} imports {name}"
