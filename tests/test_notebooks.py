"""The notebooks in analysis/notebooks run end to end in quick mode (NTKSPEC_QUICK=1).

Each runs as a plain Python script (jupytext percent format) in a fresh process, with
the working directory in tmp_path and the repository on PYTHONPATH, warnings as errors.
"""

import os
import re
import subprocess
import sys
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
    assert sorted(p.name for p in NOTEBOOKS.glob("*.py")) == sorted(REQUIRES)


@pytest.mark.parametrize("name", sorted(REQUIRES))
def test_notebook_is_percent_format_and_public_api_only(name):
    text = (NOTEBOOKS / name).read_text()
    assert "format_name: percent" in text and text.count("# %%") >= 4
    assert "NTKSPEC_QUICK" in text
    private = re.findall(r"ntkspec(?:\.\w+)*\._\w+|from ntkspec\S* import _\w+", text)
    assert not private, f"{name} uses private names: {private}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REQUIRES))
def test_notebook_runs_in_quick_mode(name, tmp_path):
    missing = [attr for attr in REQUIRES[name] if not hasattr(ntkspec, attr)]
    if missing:
        pytest.skip(f"ntkspec does not export {missing} yet")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        NTKSPEC_QUICK="1",
        MPLBACKEND="Agg",
        JAX_PLATFORMS="cpu",
    )
    env.pop("NTKSPEC_NOTEBOOK_OUT", None)
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(NOTEBOOKS / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for fig in FIGURES[name]:
        path = tmp_path / "notebook_outputs" / f"{fig}.png"
        assert path.is_file() and path.stat().st_size > 0, fig
