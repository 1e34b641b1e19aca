"""No module of ntkspec reaches into another module's private names.

Every file of the package is parsed with ``ast``; the test fails on

* ``from .x import _name`` / ``from ntkspec.x import _name`` (relative or absolute),
* ``x._name`` where ``x`` is bound to an ntkspec module (``from . import x``,
  ``import ntkspec.x as x``),

except for the private helper modules, which exist to be shared: importing them
(``from . import _io``, ``from ._validation import check_real``) is allowed. Dunder
names (``__version__``) are not private.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ntkspec"
# studies/_output.py, _paper.py and _table1.py are the studies' own shared helpers.
HELPERS = {
    "_validation",
    "_numerics",
    "_io",
    "_interrupt",
    "_linalg",
    "_typing",
    "_output",
    "_paper",
    "_table1",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_of(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _resolve(path: Path, node: ast.ImportFrom) -> list[str] | None:
    """The absolute dotted module of an ImportFrom, or None when not ntkspec."""
    if node.level == 0:
        mod = (node.module or "").split(".")
        return mod if mod[0] == "ntkspec" else None
    here = _module_of(path)
    if path.name != "__init__.py":
        here = here[:-1]  # the package holding this module
    base = here[: len(here) - (node.level - 1)]
    return base + (node.module.split(".") if node.module else [])


def _is_module(parts: list[str]) -> bool:
    target = PACKAGE.parent.joinpath(*parts)
    return target.with_suffix(".py").exists() or (target / "__init__.py").exists()


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_of(path)
    found, module_names = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(path, node)
            if mod is None:
                continue
            if _private(mod[-1]) and mod[-1] not in HELPERS and mod != me:
                found.append(f"{path.name}:{node.lineno} imports from {'.'.join(mod)}")
            for alias in node.names:
                sub = mod + [alias.name]
                if _is_module(sub):
                    if _private(alias.name) and alias.name not in HELPERS:
                        found.append(f"{path.name}:{node.lineno} imports {alias.name}")
                    module_names.add(alias.asname or alias.name)
                elif _private(alias.name) and mod != me:
                    name = ".".join(sub)
                    found.append(f"{path.name}:{node.lineno} imports {name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != "ntkspec":
                    continue
                if any(_private(p) and p not in HELPERS for p in parts):
                    found.append(f"{path.name}:{node.lineno} imports {alias.name}")
                if alias.asname:
                    module_names.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_names
            and _private(node.attr)
        ):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    bad = [v for f in files for v in violations(f)]
    assert not bad, "private cross-module access:\n" + "\n".join(bad)


def test_the_checker_catches_each_form(tmp_path):
    pkg = tmp_path / "ntkspec"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels.py").write_text("def _recursion():\n    pass\n")
    (pkg / "_numerics.py").write_text("def helper():\n    pass\n")
    (pkg / "a.py").write_text(
        "from .kernels import _recursion\n"
        "from ntkspec.kernels import _recursion as r\n"
        "from . import kernels\n"
        "kernels._recursion()\n"
        "from ._numerics import helper\n"
        "from . import _numerics\n"
    )
    globals()["PACKAGE"] = pkg
    try:
        found = violations(pkg / "a.py")
    finally:
        globals()["PACKAGE"] = Path(__file__).resolve().parents[1] / "ntkspec"
    assert len(found) == 3, found
