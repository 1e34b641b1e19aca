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
def installed_wheel(tmp_path_factory):
    """(python, ntkspec console script, env, workdir) of this checkout's wheel.

    Built with ``pip wheel --no-deps`` and installed with ``--no-deps`` into a fresh
    venv whose third-party packages come from the project venv (see test_wheel.py).
    """
    import subprocess
    import sys
    import sysconfig
    import venv
    import zipfile
    from pathlib import Path

    from tests.helpers import run_checked

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["JAX_PLATFORMS"] = "cpu"
    dist = root / "dist"
    run_checked(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, repo],
        cwd=root,
        env=env,
    )
    (wheel,) = dist.glob("ntkspec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "ntkspec/cli.py",
        "ntkspec/report.py",
        "ntkspec/studies/__init__.py",
    ):
        assert module in names, f"{module} missing from the wheel"
    assert any(n.startswith("ntkspec/studies/") and n.endswith(".py") for n in names)

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # Third-party dependencies from the project venv, without its editable ntkspec.
    (site / "_ntkspec_test_deps.pth").write_text(sysconfig.get_paths()["purelib"])
    run_checked(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
        + ["--no-deps", wheel],
        cwd=root,
        env=env,
    )
    work = root / "work"
    work.mkdir()
    return python, bin_dir / "ntkspec", env, work


@pytest.fixture(scope="session")
def report_quick(request, tmp_path_factory):
    """One `ntkspec report --quick` run for the session (test_report, test_browser).

    When the session also runs tests/test_wheel.py (the full suite does), the run is
    the installed wheel's console script in its work folder without PYTHONPATH, and
    test_wheel.py's "every study runs from the installed copy" uses it too: one report
    run instead of two. Otherwise it is ``python -m ntkspec`` on this checkout.

    Returns (out_dir, report.json as a dict, the finished process).
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("report_quick")
    if any(item.path.name == "test_wheel.py" for item in request.session.items):
        _, script, env, cwd = request.getfixturevalue("installed_wheel")
        cmd = [script, "report", "--quick", "--out", str(out)]
    else:
        cwd = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=str(cwd), JAX_PLATFORMS="cpu")
        cmd = [sys.executable, "-m", "ntkspec", "report", "--quick", "--out", str(out)]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # test_wheel.py's limit for this run; 600 was exceeded at load 16
    )
    summary_path = out / "report.json"
    assert summary_path.is_file(), (
        f"report --quick wrote no report.json:\n{proc.stderr}"
    )
    return out, json.loads(summary_path.read_text()), proc
