"""Sphinx configuration of the ntkspec documentation site (``make docs``).

Built nitpicky with warnings as errors (``sphinx-build -W -n``): every cross-reference
in the docstrings and pages must resolve. The committed notebooks under
``analysis/notebooks`` are copied into ``docs/notebooks/`` (git-ignored) and rendered
with their stored outputs by myst-nb, never executed.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the source tree, installed or not

project = "ntkspec"
author = "ntkspec developers"
copyright = "ntkspec developers"  # noqa: A001 (Sphinx's setting name)

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "notebooks/*.py", "notebooks/execute.py"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks carry their outputs; the site never runs them
nb_merge_streams = True

autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = True
autosummary_ignore_module_all = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Example", "Examples")]
napoleon_use_ivar = (
    True  # "Attributes:" as fields: NamedTuple fields are not listed twice
)

html_theme = "alabaster"
html_title = "ntkspec"
html_static_path: list[str] = []

# Genuinely external names that no intersphinx inventory can serve offline: type hints
# and docstrings name JAX, NumPy, SciPy and optax types. Only these are ignored.
# Offline there is no intersphinx inventory, so these few external names (as the type
# hints spell them at run time) are ignored; everything in ntkspec must resolve.
_EXTERNAL = [
    "jax.Array",
    "jax.jaxlib._jax.Array",  # jax.Array as the annotations resolve at run time
    "jax.sharding.Mesh",
    "numpy.ndarray",
    "np.ndarray",
    "jax._src.mesh.Mesh",  # jax.sharding.Mesh
    "jax.sharding.NamedSharding",
    "jax.make_mesh",
    "jax.grad",
    "collections.abc.Callable",
    "collections.abc.Mapping",
    "collections.abc.Sequence",
    "skimage.transform.resize",
    "collections.abc.Iterable",
    "functools.singledispatch",
    "scipy.stats.bootstrap",
    "scipy.stats.wasserstein_distance",
    "pathlib.Path",
    "os.PathLike",
]
nitpick_ignore = [("py:class", n) for n in _EXTERNAL] + [
    ("py:func", n) for n in _EXTERNAL
]
# One private type in a public dataclass field's annotation (SparseMeasurement.host).
nitpick_ignore.append(("py:class", "ntkspec.measurements._HostCSR"))


# --------------------------------------------------------------------------------------
# Notebooks: copied, not executed.
# --------------------------------------------------------------------------------------


def _copy_notebooks() -> None:
    dest = Path(__file__).parent / "notebooks"
    for nb in sorted((ROOT / "analysis" / "notebooks").glob("*.ipynb")):
        target = dest / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)


_copy_notebooks()


# --------------------------------------------------------------------------------------
# Cross-references to re-exported names.
# --------------------------------------------------------------------------------------


def _resolve_alias(app, env, node, contnode):
    """Resolve ``ntkspec.X`` (a re-export) and short names to their documented target.

    The API pages document each object once, in the module that defines it
    (``ntkspec.regression.kernel_regression``). A docstring that writes the public
    alias ``ntkspec.kernel_regression``, or the bare name ``kernel_regression`` from
    another module, is sent to that one documented object; a bare name that matches
    several documented objects stays unresolved (and fails the build).
    """
    if node.get("refdomain") != "py":
        return None
    target = re.sub(r"\s+", "", node["reftarget"])  # a role broken over two lines
    domain = env.get_domain("py")
    objects = domain.objects
    candidates: list[str] = []
    if target.startswith("ntkspec."):
        parts = target.split(".")
        try:
            obj = importlib.import_module("ntkspec")
            for p in parts[1:]:
                obj = getattr(obj, p)
        except (AttributeError, ImportError):
            obj = None
        module = getattr(obj, "__module__", None)
        qual = getattr(obj, "__qualname__", None)
        if module and qual and f"{module}.{qual}" in objects:
            candidates = [f"{module}.{qual}"]
    if not candidates:
        suffix = "." + target.lstrip("~.")
        candidates = [name for name in objects if name.endswith(suffix)]
    if len(candidates) != 1:
        return None
    name = candidates[0]
    obj = objects[name]
    from sphinx.util.nodes import make_refnode

    return make_refnode(
        app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name
    )


def _no_inline_attribute_type(app, what, name, obj, options, lines):
    """Undo napoleon's reading of "(M, N): ..." or "True when ...: ..." as a type.

    Google style lets an attribute's docstring start with ``type: description``, and
    napoleon moves that first part into a ``:type:`` field. ntkspec's types live in the
    annotations, so its attribute and property docstrings never do that: the part goes
    back in front of the description, as written.
    """
    if what not in ("attribute", "property", "data"):
        return
    types = [i for i, line in enumerate(lines) if line.startswith(":type: ")]
    if len(types) != 1:
        return
    head = lines.pop(types[0])[len(":type: ") :]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        lines.insert(0, head)
    else:
        lines[first] = f"{head}: {lines[first]}"


def setup(app):
    """Register the two hooks above."""
    app.connect("missing-reference", _resolve_alias)
    # after napoleon's own handler (priority 500)
    app.connect("autodoc-process-docstring", _no_inline_attribute_type, priority=600)
