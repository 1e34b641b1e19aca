"""The notebooks in analysis/notebooks: committed, executed, and runnable in Jupyter.

Each is a jupytext percent-format ``.py`` (the source) paired with an ``.ipynb`` that is
committed with its outputs (``make notebooks``). The tests check that the ``.ipynb``
holds the same cells as its source and was executed, and execute each source in quick
mode (NTKSPEC_QUICK=1) through a real IPython kernel (nbclient + ipykernel) with the
working directory in tmp_path, failing on any error or warning the kernel prints.
"""

import importlib.util
import re
from pathlib import Path

import pytest

import ntkspec

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "analysis" / "notebooks"

# Public names each notebook needs from `ntkspec` (skipped until they are exported).
REQUIRES = {
    "spectra_walkthrough.py": ["Grid", "spectrum"],
    "regression_walkthrough.py": ["Grid", "kernel_regression"],
    "dynamics_vs_networks.py": ["spectrum", "gd_dynamics", "eigenmode_residuals"],
}
# Figures each notebook writes into ./notebook_outputs.
FIGURES = {
    "spectra_walkthrough.py": ["kernels_1d", "spectra_1d", "spectra_2d", "radial_2d"],
    "regression_walkthrough.py": [
        "regression_images",
        "sigma_sweep",
        "power_law_1d",
    ],
    "dynamics_vs_networks.py": ["dynamics_loss", "dynamics_modes", "ntk_convergence"],
}


def test_every_notebook_is_listed():
    sources = {p.name for p in NOTEBOOKS.glob("*.py")} - {"execute.py"}
    assert sorted(sources) == sorted(REQUIRES)


@pytest.mark.parametrize("name", sorted(REQUIRES))
def test_notebook_is_percent_format_and_public_api_only(name):
    text = (NOTEBOOKS / name).read_text()
    assert "format_name: percent" in text and text.count("# %%") >= 4
    assert "NTKSPEC_QUICK" in text
    private = re.findall(r"ntkspec(?:\.\w+)*\._\w+|from ntkspec\S* import _\w+", text)
    assert not private, f"{name} uses private names: {private}"


def _executor():
    spec = importlib.util.spec_from_file_location(
        "nb_execute", NOTEBOOKS / "execute.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(REQUIRES))
def test_committed_ipynb_matches_its_source_and_has_outputs(name):
    jupytext = pytest.importorskip("jupytext")
    source = jupytext.read(NOTEBOOKS / name)
    stored = NOTEBOOKS / name.replace(".py", ".ipynb")
    assert stored.is_file(), f"{stored.name} is not committed (run make notebooks)"
    committed = jupytext.read(stored)
    cells = [(c.cell_type, c.source.strip()) for c in source.cells]
    assert [(c.cell_type, c.source.strip()) for c in committed.cells] == cells, (
        f"{stored.name} is out of date with {name}: run make notebooks"
    )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "not executed"
    images = [
        o
        for c in code
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert images, f"{stored.name} holds no figure output"
    errors = [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REQUIRES))
def test_notebook_runs_in_quick_mode_in_a_jupyter_kernel(name, tmp_path):
    pytest.importorskip("nbclient")
    missing = [attr for attr in REQUIRES[name] if not hasattr(ntkspec, attr)]
    if missing:
        pytest.skip(f"ntkspec does not export {missing} yet")
    notebook = _executor().execute(
        name.removesuffix(".py"), quick=True, workdir=tmp_path, timeout=600
    )
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
        or (
            o.output_type == "stream" and o.get("name") == "stderr" and "Warn" in o.text
        )
    ]
    assert not errors, errors
    for fig in FIGURES[name]:
        path = tmp_path / "notebook_outputs" / f"{fig}.png"
        assert path.is_file() and path.stat().st_size > 0, fig
