"""The rules the code is kept to, checked on the source so a change that breaks one fails here, named.

The core (engine/) knows no HTTP and no environment: the API layer reads the settings once and passes
them in, and says which route to call next. Modules and functions stay small enough to read at once.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE_FILES = sorted((ROOT / "engine").glob("*.py"))
PYTHON_FILES = sorted(path for folder in ("engine", "api", "migrations", "tests", "bench", "tools", ".ci")
                      for path in (ROOT / folder).rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda path: path.name)
def test_the_engine_imports_neither_the_api_nor_a_web_framework(path):
    forbidden = [name for name in imported_modules(parsed(path))
                 if name.split(".")[0] in ("api", "flask", "werkzeug") or name.startswith("usm_engine.api")]
    assert not forbidden, f"{path.name} imports {forbidden}: api imports engine, never the reverse"


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda path: path.name)
def test_the_engine_reads_no_environment_variable(path):
    tree = parsed(path)
    reads = [node.lineno for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
             and isinstance(node.value, ast.Name) and node.value.id == "os"]
    assert not reads, f"{path.name} reads the environment at lines {reads}: settings come in through Settings"


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda path: path.name)
def test_the_engine_names_no_http_route(path):
    texts = [(node.lineno, node.value) for node in ast.walk(parsed(path))
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and "/api/" in node.value]
    assert not texts, f"{path.name} names HTTP routes: {texts}; the API layer says what to call next"


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda path: path.name)
def test_engine_modules_and_functions_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines (at most {MAX_MODULE_LINES}): split it by job"
    long = [(node.name, node.lineno, node.end_lineno - node.lineno + 1) for node in ast.walk(parsed(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines (name, line, length): {long}"


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda path: path.name)
def test_engine_modules_import_no_private_name_of_another(path):
    private = [(node.lineno, alias.name) for node in ast.walk(parsed(path)) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private, f"{path.name} imports private names {private}: make what modules share public"


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_code_imports_the_installed_package_names(path):
    # Installed, the folders are usm_engine.engine, usm_engine.api, ...: a top-level `engine` or `api`
    # imports only inside a checkout, so code that used one would pass here and fail in a wheel.
    top_level = [name for name in imported_modules(parsed(path))
                 if name.split(".")[0] in ("engine", "api", "migrations", "definitions")]
    assert not top_level, f"imports {top_level}: write usm_engine.{top_level[0]}"
