"""Every `from longwrite.X import NAME` in the package names something X has.

Most of the package imports lazily, inside functions, so that `--help` stays fast; such an
import is only run when its path is, and a name moved or dropped from X (a re-export that a
linter's autofix took away, a setting moved to another module) fails there, in front of a
user, rather than at start-up. This reads every such statement and checks the name exists.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "longwrite"


def _imports() -> list[tuple[str, str, str]]:
    """(where, module, name) for each `from longwrite... import name` in the package (its
    imports are all absolute: a relative one is listed with module "." to fail)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = "." if node.level else node.module or ""
            if module == "." or module == "longwrite" or module.startswith("longwrite."):
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                found += [(where, module, alias.name) for alias in node.names]
    return found


IMPORTS = _imports()


def test_the_package_imports_from_itself_lazily_and_at_the_top():
    assert len(IMPORTS) > 300
    assert len({m for _, m, _ in IMPORTS}) > 60


@pytest.mark.parametrize("module", sorted({m for _, m, _ in IMPORTS}))
def test_every_name_imported_from_a_module_is_there(module):
    mod = importlib.import_module(module)
    missing = []
    for where, m, name in IMPORTS:
        if m != module or name == "*" or hasattr(mod, name):
            continue
        try:  # a submodule, not yet imported
            importlib.import_module(f"{module}.{name}")
        except ModuleNotFoundError:
            missing.append(f"{where}: {name}")
    assert not missing, f"{module} has no " + ", ".join(missing)
