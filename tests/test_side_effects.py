"""The library leaves the caller's process as it found it: pyplot backend, JAX config.

Run in a fresh interpreter so that the backend this test picks cannot leak into the
rest of the suite (and so that no earlier test has already imported pyplot).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import sys, tempfile
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
import jax

before = (matplotlib.get_backend(), jax.config.jax_enable_x64,
          jax.config.jax_default_matmul_precision)
import ntkspec
from ntkspec import data, plotting
from ntkspec.studies import profiles

data.text_images(32)
data.natural_images(32)
ax = plotting.eigenvalue_spectrum([3.0, 2.0, 1.0])
plt.close(ax.figure)
with tempfile.TemporaryDirectory() as tmp:
    profiles.run(tmp, quick=True)
    ntkspec.ntk(ntkspec.ReluMLP(2), [[0.1, 0.2], [0.3, 0.4]])
after = (matplotlib.get_backend(), jax.config.jax_enable_x64,
         jax.config.jax_default_matmul_precision)
print(repr(before)); print(repr(after))
"""


def test_backend_and_jax_config_unchanged_by_the_library(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    env.pop("MPLBACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", _SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    before, after = (ast.literal_eval(line) for line in proc.stdout.splitlines()[-2:])
    assert before[0] == "svg"
    assert after == before


def test_library_source_never_switches_global_state():
    offenders = []
    for path in (REPO / "ntkspec").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = ast.unparse(node.func)
                if name in (
                    "matplotlib.use",
                    "jax.config.update",
                    "plt.switch_backend",
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert not offenders, offenders
