"""What a user gets: the wheel, installed into a fresh venv, run outside the tree.

The wheel is built from this checkout (``pip wheel --no-deps``) and installed with
``--no-deps`` into a new virtual environment in ``tmp_path``; its third-party
dependencies come from the project venv (a ``.pth`` line naming that venv's
site-packages, so nothing is downloaded and the project's editable install is *not*
picked up: ``.pth`` files of an added directory are not executed). Every command runs
with the temporary folder as working directory and no ``PYTHONPATH``, so it can only
import the installed copy of ntkspec.
"""

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, *, cwd, env, timeout=900):
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, ntkspec console script, env, workdir) of the installed wheel."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["JAX_PLATFORMS"] = "cpu"
    dist = root / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO],
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
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
        + ["--no-deps", wheel],
        cwd=root,
        env=env,
    )
    work = root / "work"
    work.mkdir()
    return python, bin_dir / "ntkspec", env, work


def test_installed_copy_is_the_one_imported(installed):
    python, _, env, work = installed
    proc = _run(
        [python, "-c", "import ntkspec, ntkspec.studies; print(ntkspec.__file__)"],
        cwd=work,
        env=env,
    )
    location = Path(proc.stdout.strip())
    assert REPO not in location.parents, location
    assert "venv" in location.parts


def test_installed_report_runs_every_study(installed):
    _, ntkspec, env, work = installed
    out = work / "report"
    _run([ntkspec, "report", "--quick", "--out", out], cwd=work, env=env)
    summary = json.loads((out / "report.json").read_text())
    statuses = {rec["key"]: rec["status"] for rec in summary["studies"]}
    assert set(statuses.values()) == {"ok"}, statuses
    assert (out / "index.html").is_file()


def test_installed_regress_writes_its_outputs(installed):
    _, ntkspec, env, work = installed
    y, x = np.mgrid[0:16, 0:16] / 16.0
    image = 0.5 + 0.25 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y)
    np.save(work / "smooth.npy", image)
    out = work / "regress"
    proc = _run(
        [ntkspec, "regress", "smooth.npy", "--mapping", "basic", "--out", out],
        cwd=work,
        env=env,
    )
    assert "PSNR" in proc.stdout
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".png"]
