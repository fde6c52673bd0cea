"""The stubs in stubs/ describe the installed packages: every name a stub declares exists in the
package it stands for (a stub that drifts from its package would let mypy pass code that breaks)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.services import ROOT

STUBS = ROOT / "stubs"


def stub_modules() -> list[tuple[str, Path]]:
    """(module name, stub file) for every .pyi under stubs/."""
    found = []
    for path in sorted(STUBS.rglob("*.pyi")):
        parts = path.relative_to(STUBS).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def declared_names(tree: ast.Module) -> dict[str, list[str]]:
    """Top-level names the stub declares (functions, classes, annotated variables), each with
    the members declared in its class body (empty for functions and variables). Names the stub
    only imports for its own annotations, and private ones, are not claims about the package."""
    names: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            names[node.name] = []
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if not node.target.id.startswith("_"):
                names[node.target.id] = []
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            members = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                    members.append(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.append(item.target.id)
            names[node.name] = members
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("."):
            names.update({alias.asname or alias.name: [] for alias in node.names if alias.asname})
    return names


def test_there_are_stubs_to_check() -> None:
    assert {name for name, _ in stub_modules()} >= {"flask_login", "flask_wtf", "rq_dashboard", "htmx_flask"}


@pytest.mark.parametrize(("module_name", "stub"), stub_modules(), ids=[name for name, _ in stub_modules()])
def test_every_declared_name_exists_in_the_package(module_name: str, stub: Path) -> None:
    module = importlib.import_module(module_name)
    missing = []
    for name, members in declared_names(ast.parse(stub.read_text())).items():
        if not hasattr(module, name):
            missing.append(name)
            continue
        value = getattr(module, name)
        # Attributes set in __init__ (LoginManager.login_view, request.htmx) are not on the class:
        # only methods and properties are looked up there.
        missing += [
            f"{name}.{member}"
            for member in members
            if isinstance(value, type)
            and not hasattr(value, member)
            and member not in _instance_attributes(value)
        ]
    assert not missing, f"{stub.relative_to(ROOT)} declares what {module_name} does not have: {missing}"


def _instance_attributes(cls: type) -> set[str]:
    """Names assigned to `self.` in the class's own __init__ (and its bases')."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return names
