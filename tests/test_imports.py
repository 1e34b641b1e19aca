"""No module of ntkspec reaches into another module's private names.

Every file of the package is parsed with ``ast``; the test fails on

* ``from .x import _name`` / ``from ntkspec.x import _name`` (relative or absolute),
* ``x._name`` where ``x`` is bound to an ntkspec module (``from . import x``,
  ``import ntkspec.x as x``),

except for the private helper modules, which exist to be shared: importing them
(``from . import _numerics``, ``from ._validation import check_real``) is allowed.
Dunder names (``__version__``) are not private.

The studies are stricter (issue 23): they use the public API only, so no module under
``ntkspec/studies`` imports a private module of the library, and no study imports
another study; they share what they share through their own helper modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ntkspec"
# studies/_common.py and _table1.py are the studies' own shared helpers.
# _mesh.py: mesh utilities under sharding; networks/_spec.py: the networks package's.
HELPERS = {
    "_validation",
    "_deprecation",
    "_numerics",
    "_interrupt",
    "_linalg",
    "_typing",
    "_common",
    "_table1",
    "_mesh",
    "_spec",
    "_operand",
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


# --------------------------------------------------------------------------------------
# The studies use the public API only and do not import one another (issue 23).
# --------------------------------------------------------------------------------------

#: The studies' shared helper modules, the only study modules a study may import.
STUDY_HELPERS = {"_common", "_table1"}


def study_violations(path: Path) -> list[str]:
    """Imports of a module under ntkspec/studies that break the studies' rules.

    A private module of the library (any ``_`` part of its dotted name outside
    ``ntkspec.studies``, imports inside functions included), or another study (any
    module of ``ntkspec.studies`` but the shared helpers; a helper module may import
    the other helper).
    """
    me = _module_of(path)
    found = []
    for node in _imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        else:
            mod = _resolve(path, node)
            if mod is None:
                continue
            targets = [
                mod + [a.name] if _is_module(mod + [a.name]) else mod
                for a in node.names
            ]
        for parts in targets:
            if parts[0] != "ntkspec" or parts == me:
                continue
            name = ".".join(parts)
            if parts[:2] == ["ntkspec", "studies"]:
                if len(parts) > 2 and parts[2] not in STUDY_HELPERS:
                    found.append(f"{path.name}:{node.lineno} imports study {name}")
            elif any(_private(p) for p in parts):
                found.append(f"{path.name}:{node.lineno} imports private {name}")
    return found


def test_studies_import_only_public_modules_and_no_other_study():
    files = sorted((PACKAGE / "studies").glob("*.py"))
    assert len(files) > 10
    bad = [v for f in files for v in study_violations(f)]
    assert not bad, "studies off the public API:\n" + "\n".join(bad)


def test_the_study_checker_catches_each_form(tmp_path):
    pkg = tmp_path / "ntkspec"
    (pkg / "studies").mkdir(parents=True)
    for name in ("__init__", "_numerics", "kernels"):
        (pkg / f"{name}.py").write_text("")
    for name in ("__init__", "_common", "a", "b"):
        (pkg / "studies" / f"{name}.py").write_text("")
    (pkg / "studies" / "a.py").write_text(
        "from .. import kernels\n"  # fine
        "from ..kernels import ntk\n"  # fine
        "from ._common import write_study\n"  # fine: the shared helper
        "from .._numerics import x64_scope\n"  # private module
        "from .. import _numerics\n"  # private module
        "import ntkspec._numerics\n"  # private module
        "from .b import run\n"  # another study
        "def f():\n"
        "    from . import b\n"  # another study, inside a function
    )
    globals()["PACKAGE"] = pkg
    try:
        found = study_violations(pkg / "studies" / "a.py")
    finally:
        globals()["PACKAGE"] = Path(__file__).resolve().parents[1] / "ntkspec"
    assert len(found) == 5, found


# --------------------------------------------------------------------------------------
# No import cycle (issue 23), imports inside functions included.
# --------------------------------------------------------------------------------------


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except under ``if TYPE_CHECKING``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the ntkspec modules it imports (``a.b`` names; packages by name).

    ``from . import x`` depends on the module x, not on the package that holds it;
    ``from .x import name`` on x; ``from . import name`` (a name defined in a
    package's ``__init__``) and ``import ntkspec`` on the package itself.
    """
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        me = ".".join(_module_of(path))
        deps = graph.setdefault(me, set())
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "ntkspec":
                        deps.add(".".join(parts))
                continue
            mod = _resolve(path, node)
            if mod is None:
                continue
            for alias in node.names:
                sub = mod + [alias.name]
                target = package.parent.joinpath(*sub)
                is_module = (
                    target.with_suffix(".py").exists()
                    or (target / "__init__.py").exists()
                )
                deps.add(".".join(sub if is_module else mod))
        deps.discard(me)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, iters = [root], [iter(sorted(graph.get(root, ())))]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycle():
    graph = module_graph()
    assert {"ntkspec.kernels", "ntkspec.operators", "ntkspec.sharding"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "ntkspec"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import g\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    globals()["PACKAGE"] = pkg  # _module_of and _resolve read it
    try:
        assert find_cycle(module_graph(pkg)) is None
        (pkg / "c.py").write_text(
            "class C:\n    def m(self):\n        import ntkspec.a\n"
        )
        cycle = find_cycle(module_graph(pkg))
    finally:
        globals()["PACKAGE"] = Path(__file__).resolve().parents[1] / "ntkspec"
    assert cycle == ["ntkspec.a", "ntkspec.b", "ntkspec.c", "ntkspec.a"]
