"""Parity of gd_dynamics / kernel_regression with neural-tangents 0.6.5 ``predict``.

NT runs in its pinned environment (``.venv-nt``, ``tests/parity/nt_env.py``), here
through ``tests/parity/predict_reference.py`` in one subprocess; skipped with the reason
when the environment cannot be built (``NTKSPEC_REQUIRE_PARITY=1`` fails instead).

* ``predict.gradient_descent_mse`` on the *same* precomputed kernel matrices (ntkspec's
  NTK Gram and cross kernel, passed to NT): finite and infinite t, ridge 0 and > 0 (NT's
  relative ``diag_reg`` r is ntkspec's ``ridge = r * trace(K) / n``), initial outputs,
  one and several outputs: to 1e-10 relative to the output scale.
* ``predict.gradient_descent_mse_ensemble`` end to end (NT computes its own kernels):
  to 1e-7 relative, NT's kernel diagonal being reproducible only to ~1e-8 (its angle
  at theta = 0 is sqrt(2 eps), not 0), amplified by the solve's condition number.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import ntkspec
from ntkspec import mappings
from ntkspec.dynamics import gd_dynamics
from ntkspec.regression import kernel_regression

pytestmark = pytest.mark.parity

_HERE = Path(__file__).resolve().parent
RTOL_SAME_KERNELS = 1e-10
RTOL_ENSEMBLE = 1e-7


def _load_nt_env():
    name = "_ntkspec_parity_nt_env"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / "parity" / "nt_env.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


nt_env = _load_nt_env()

ARCH = ntkspec.ReluMLP(3, b_std=0.1)
MAPPING = mappings.gaussian(2, 2, 16, 3.0)
N_TR, N_TE = 40, 15
TIMES = [0.3, 4.0, 60.0, None]  # None = infinity
LR = 2.0
CASES = [
    ("y3", "fx0", "ft0"),
    ("y3", None, None),
    ("y1", None, None),
    ("y1", "fx0_1", "ft0_1"),
]


def _run_nt(inputs: dict, configs: list[dict]) -> dict:
    try:
        python = nt_env.ensure_env()
    except nt_env.Unavailable as exc:
        reason = f"neural-tangents 0.6.5 environment unavailable: {exc}"
        if os.environ.get("NTKSPEC_REQUIRE_PARITY"):
            pytest.fail(reason)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="ntkspec-predict-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "in.npz", **inputs)
        (tmp / "cfg.json").write_text(json.dumps(configs))
        proc = subprocess.run(
            [
                str(python),
                str(_HERE / "parity" / "predict_reference.py"),
                str(tmp / "in.npz"),
                str(tmp / "cfg.json"),
                str(tmp / "out.npz"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"predict_reference.py failed:\n{proc.stderr[-3000:]}")
        with np.load(tmp / "out.npz") as out:
            return {k: out[k] for k in out.files}


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(11)
    x, xt = rng.random((N_TR, 2)), rng.random((N_TE, 2))
    f_tr, f_te = np.asarray(MAPPING(x)), np.asarray(MAPPING(xt))
    K = np.asarray(ntkspec.ntk(ARCH, f_tr))
    Kt = np.asarray(ntkspec.ntk(ARCH, f_te, f_tr))
    y3 = rng.standard_normal((N_TR, 3))
    y1 = y3[:, :1]
    fx0 = 0.3 * rng.standard_normal((N_TR, 3))
    ft0 = 0.3 * rng.standard_normal((N_TE, 3))
    inputs = dict(
        K=K,
        Kt=Kt,
        y3=y3,
        y1=y1,
        fx0=fx0,
        ft0=ft0,
        fx0_1=fx0[:, :1],
        ft0_1=ft0[:, :1],
        f_tr=f_tr,
        f_te=f_te,
    )
    configs = []
    for reg in (0.0, 1e-2):
        for y, f0, g0 in CASES:
            configs.append(
                dict(
                    kind="mse",
                    name=f"mse_{reg}_{y}_{f0}",
                    k_train_train="K",
                    k_test_train="Kt",
                    y_train=y,
                    fx_train_0=f0,
                    fx_test_0=g0,
                    learning_rate=LR,
                    diag_reg=reg,
                    times=TIMES,
                )
            )
        configs.append(
            dict(
                kind="ensemble",
                name=f"ens_{reg}",
                x_train="f_tr",
                x_test="f_te",
                y_train="y3",
                depth=ARCH.depth,
                W_std=ARCH.W_std,
                b_std=ARCH.b_std,
                parameterization="ntk",
                width=512,
                learning_rate=LR,
                diag_reg=max(reg, 1e-3),
                get="ntk",
                times=TIMES,
            )
        )
    return dict(x=x, xt=xt, K=K, inputs=inputs, nt=_run_nt(inputs, configs))


def _times():
    return [np.inf if t is None else t for t in TIMES]


def _ridge(K, reg):
    """NT's relative diag_reg r -> ntkspec's absolute ridge r * trace(K) / n."""
    return reg * np.trace(K) / K.shape[0]


def _close(a, b, rtol):
    scale = np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("reg", [0.0, 1e-2])
@pytest.mark.parametrize("y, f0, g0", CASES)
def test_gd_dynamics_matches_gradient_descent_mse(setup, reg, y, f0, g0):
    inp, nt = setup["inputs"], setup["nt"]
    f_tr, f_te = gd_dynamics(
        ARCH,
        MAPPING,
        setup["x"],
        inp[y],
        setup["xt"],
        _times(),
        LR,
        ridge=_ridge(setup["K"], reg),
        f_train_0=None if f0 is None else inp[f0],
        f_test_0=None if g0 is None else inp[g0],
    )
    name = f"mse_{reg}_{y}_{f0}"
    for i in range(len(TIMES)):
        _close(f_tr[i], nt[f"{name}/train/{i}"], RTOL_SAME_KERNELS)
        _close(f_te[i], nt[f"{name}/test/{i}"], RTOL_SAME_KERNELS)


@pytest.mark.parametrize("reg", [0.0, 1e-2])
def test_kernel_regression_matches_infinite_time(setup, reg):
    inp, nt = setup["inputs"], setup["nt"]
    for y in ("y3", "y1"):
        pred = kernel_regression(
            ARCH,
            MAPPING,
            setup["x"],
            inp[y],
            setup["xt"],
            ridge=_ridge(setup["K"], reg),
        )
        ref = nt[f"mse_{reg}_{y}_None/test/{len(TIMES) - 1}"]  # t = infinity
        _close(pred, ref, RTOL_SAME_KERNELS)


@pytest.mark.parametrize("reg", [0.0, 1e-2])
def test_end_to_end_matches_gradient_descent_mse_ensemble(setup, reg):
    inp, nt = setup["inputs"], setup["nt"]
    diag_reg = max(reg, 1e-3)
    _, f_te = gd_dynamics(
        ARCH,
        MAPPING,
        setup["x"],
        inp["y3"],
        setup["xt"],
        _times(),
        LR,
        ridge=_ridge(setup["K"], diag_reg),
    )
    for i in range(len(TIMES)):
        _close(f_te[i], nt[f"ens_{reg}/test/{i}"], RTOL_ENSEMBLE)
