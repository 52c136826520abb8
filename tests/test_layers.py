"""One-way imports: schema -> resolvers -> services -> db.

Checked twice: by the import-linter contract in pyproject.toml (run as CI runs it), and by a
small AST walk of our own that does not depend on that tool or its configuration.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# the web and GraphQL stack, the realtime bus, and the layers above
WEB_AND_ABOVE = frozenset(
    {
        "strawberry",
        "graphql",
        "starlette",
        "uvicorn",
        "broadcaster",
        "redis",
        "schema",
        "resolvers",
        "subscriptions",
        "app",
        "cli",
    }
)
FORBIDDEN: dict[str, frozenset[str]] = {
    "services": WEB_AND_ABOVE,
    "db": WEB_AND_ABOVE | {"services"},
}


def _module_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(source: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in `source`, anywhere in the file
    (function bodies and TYPE_CHECKING blocks included); relative imports are resolved."""
    package = _module_of(path)
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                prefix = ".".join(base)
                names = [node.module] if node.module else [a.name for a in node.names]
                for name in names:
                    yield node.lineno, f"{prefix}.{name}" if prefix else str(name)
            elif node.module:
                yield node.lineno, node.module


def violations(layer: str) -> list[str]:
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, module in imported_modules(path.read_text(), path):
            top = module.split(".")[0]
            if top in FORBIDDEN[layer]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_import_linter_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Layers: schema -> resolvers -> services -> db KEPT" in result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upward(layer: str) -> None:
    files = list((ROOT / layer).rglob("*.py"))
    assert len(files) >= 3, f"expected the {layer}/ package at {ROOT / layer}"
    assert violations(layer) == []


def test_the_ast_check_finds_what_it_should() -> None:
    """The checker itself: every way of importing is seen (else the test above proves
    nothing)."""
    source = """
import json
import strawberry
import starlette.requests as req
from broadcaster import Broadcast
from schema.types import ServiceOrder
from . import statuses
from ..resolvers import run
from .. import subscriptions


def late():
    from services import orders
    import graphql
"""
    path = ROOT / "services" / "example.py"
    modules = [m for _, m in imported_modules(source, path)]
    assert modules == [
        "json",
        "strawberry",
        "starlette.requests",
        "broadcaster",
        "schema.types",
        "services.statuses",
        "resolvers",
        "subscriptions",
        "services",
        "graphql",
    ]
    flagged = [m for m in modules if m.split(".")[0] in FORBIDDEN["db"]]
    assert flagged == [
        "strawberry",
        "starlette.requests",
        "broadcaster",
        "schema.types",
        "services.statuses",
        "resolvers",
        "subscriptions",
        "services",
        "graphql",
    ]
    assert [m for m in modules if m.split(".")[0] in FORBIDDEN["services"]] == [
        "strawberry",
        "starlette.requests",
        "broadcaster",
        "schema.types",
        "resolvers",
        "subscriptions",
        "graphql",
    ]
