"""Shared test configuration: hypothesis profiles and JAX strictness.

JAX's config is changed here, in the tests only (the library never does): strict dtype
promotion and rank promotion errors catch silent float32/float64 mixing and broadcasting
mistakes. float64 is *not* enabled globally: the library must enable it itself, scoped.
"""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci",
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def report_quick(tmp_path_factory):
    """One `ntkspec report --quick` run for the session (test_report, test_browser).

    Returns (out_dir, report.json as a dict, the finished process).
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("report_quick")
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "ntkspec", "report", "--quick", "--out", str(out)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary_path = out / "report.json"
    assert summary_path.is_file(), (
        f"report --quick wrote no report.json:\n{proc.stderr}"
    )
    return out, json.loads(summary_path.read_text()), proc
