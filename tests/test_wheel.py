"""What a user gets: the wheel, installed into a fresh venv, run outside the tree.

The wheel is built from this checkout (``pip wheel --no-deps``) and installed with
``--no-deps`` into a new virtual environment in ``tmp_path``; its third-party
dependencies come from the project venv (a ``.pth`` line naming that venv's
site-packages, so nothing is downloaded and the project's editable install is *not*
picked up: ``.pth`` files of an added directory are not executed). Every command runs
with the temporary folder as working directory and no ``PYTHONPATH``, so it can only
import the installed copy of ntkspec.
"""

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_checked

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, *, cwd, env, timeout=900):
    return run_checked(cmd, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def installed(installed_wheel):
    """(python, ntkspec console script, env, workdir) of the installed wheel."""
    return installed_wheel


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


def test_installed_report_runs_every_study(installed, report_quick):
    # The session's one `report --quick` run (conftest.py) is this installed copy's
    # console script, run in the wheel's work folder without PYTHONPATH, whenever
    # this module is collected; test_report.py and test_browser.py check its output.
    _, ntkspec, env, work = installed
    out, summary, proc = report_quick
    assert [Path(proc.args[0])] + proc.args[1:3] == [ntkspec, "report", "--quick"]
    assert proc.returncode == 0, proc.stderr[-3000:]
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
