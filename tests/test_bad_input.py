"""Bad input and faults, as a table: each row is a call and what it must do.

The promise (issue 11): a clear ValueError/TypeError naming the argument before any
tracing, nothing crashing inside XLA, no non-finite value returned silently, CLI errors
as one line with exit code 2 and nothing partial written, and outputs that an
interrupted run leaves consistent.

Rows are ``Case(id, call, expect, match)``: ``expect`` is an exception type (the call
must raise it, with ``match`` as a regex found in the message) or a warning category
(the call must warn so, and ``match`` is found in the warning's message). Cases that
could kill the process (huge grids) run in one subprocess, so that a regression fails
those rows instead of killing the test session. CLI cases call ``cli.main`` in-process
(the same code as the console script; one line on stderr, exit code 2); the interrupt
cases run the real console script and send it SIGINT/SIGTERM.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest

import ntkspec
from ntkspec import cli, dynamics, kernels, mappings, networks
from ntkspec.report import Study, run_report

REPO = Path(__file__).resolve().parents[1]
ARCH = ntkspec.ReluMLP(3)
X4 = np.linspace(0.0, 1.0, 4, endpoint=False)[:, None]
F4 = np.asarray(mappings.basic(1)(X4))


class Case(NamedTuple):
    id: str
    call: object  # a zero-argument callable
    expect: type  # an exception type or a Warning category
    match: str


def _nan_at(a, i, j):
    a = np.array(a, dtype=np.float64)
    a[i, j] = np.nan
    return a


def _train_kernel():
    x = np.linspace(0, 1, 16, endpoint=False)[:, None]
    y = np.cos(2 * np.pi * x[:, 0])
    k = np.asarray(ntkspec.ntk(ARCH, mappings.basic(1)(x)))
    limit = 2 * y.size / np.linalg.eigvalsh(k)[-1]
    return x, y, k, limit


X16, Y16, K16, LIMIT16 = _train_kernel()
_GRID16 = ntkspec.Grid((16,))


@functools.cache
def _history():
    net = networks.mlp(ARCH, mappings.basic(1), 8)
    res = networks.train(
        net,
        net.init(jax.random.PRNGKey(0)),
        X4,
        np.ones(4),
        steps=2,
        learning_rate=1e-3,
        progress=False,
    )
    return res.history


def _diverging_training():
    net = networks.mlp(ARCH, mappings.basic(1), 16)
    params = net.init(jax.random.PRNGKey(0))
    v = np.linspace(0, 1, 8, endpoint=False)[:, None]
    networks.train(
        net,
        params,
        v,
        np.cos(2 * np.pi * v),
        steps=20,
        learning_rate=1e8,
        optimizer="gd",
        progress=False,
    )


API_CASES = [
    # ReluMLP hyper-parameters: Python numbers and 0-d arrays alike
    Case("depth-0", lambda: ntkspec.ReluMLP(0), ValueError, "depth must be"),
    Case("depth-negative", lambda: ntkspec.ReluMLP(-2), ValueError, "depth must be"),
    Case("depth-float", lambda: ntkspec.ReluMLP(2.5), TypeError, "depth must be"),
    Case(
        "W_std-0d-nan",
        lambda: ntkspec.ReluMLP(4, W_std=np.array(np.nan)),
        ValueError,
        "W_std must be finite",
    ),
    Case(
        "W_std-0d-negative",
        lambda: ntkspec.ReluMLP(4, W_std=np.array(-1.0)),
        ValueError,
        "W_std must be > 0",
    ),
    Case(
        "b_std-0d-negative",
        lambda: ntkspec.ReluMLP(4, b_std=np.array(-1.0)),
        ValueError,
        "b_std must be >= 0",
    ),
    Case("W_std-None", lambda: ntkspec.ReluMLP(4, W_std=None), TypeError, "W_std"),
    Case("W_std-zero", lambda: ntkspec.ReluMLP(4, W_std=0.0), ValueError, "W_std"),
    Case("W_std-str", lambda: ntkspec.ReluMLP(4, W_std="1"), TypeError, "W_std"),
    Case(
        "W_std-complex",
        lambda: ntkspec.ReluMLP(4, W_std=np.array(1 + 1j)),
        TypeError,
        "W_std must hold real",
    ),
    Case(
        "b_std-nan",
        lambda: ntkspec.ReluMLP(4, b_std=float("nan")),
        ValueError,
        "b_std must be finite",
    ),
    Case(
        "parameterization",
        lambda: ntkspec.ReluMLP(2, parameterization="ntk2"),
        ValueError,
        "parameterization",
    ),
    Case(
        "standard-needs-width",
        lambda: ntkspec.ReluMLP(3, parameterization="standard"),
        ValueError,
        "width is required",
    ),
    # kernels
    Case(
        "ntk-nan-input",
        lambda: ntkspec.ntk(ARCH, _nan_at(F4, 1, 0)),
        ValueError,
        "x1 must be finite",
    ),
    Case(
        "ntk-1d-input", lambda: ntkspec.ntk(ARCH, np.zeros(3)), ValueError, r"\(n, d\)"
    ),
    Case(
        "ntk-columns",
        lambda: ntkspec.ntk(ARCH, F4, np.zeros((2, 3))),
        ValueError,
        "same number of columns",
    ),
    Case("ntk-arch-type", lambda: ntkspec.ntk("relu", F4), TypeError, "arch must be"),
    Case(
        "ntk-raw-1e200",
        lambda: ntkspec.ntk(ARCH, np.array([[1e200, 0.0], [0.0, 1e200]])),
        ValueError,
        "x1 has entries of magnitude",
    ),
    Case(
        "ntk-x2-1e200",
        lambda: ntkspec.nngp(ARCH, F4, np.full((1, 2), 1e200)),
        ValueError,
        "x2 has entries of magnitude",
    ),
    Case(
        "ntk-complex-input",
        lambda: ntkspec.ntk(ARCH, F4 + 0j),
        TypeError,
        "real numbers",
    ),
    Case(
        "ntk-dense-cap",
        lambda: ntkspec.ntk(ARCH, F4, max_bytes=64),
        ValueError,
        "dense memory cap",
    ),
    Case(
        "ntk-dtype", lambda: ntkspec.ntk(ARCH, F4, dtype=np.int32), ValueError, "dtype"
    ),
    Case(
        "ntk-overflow",
        lambda: ntkspec.ntk(ntkspec.ReluMLP(3, W_std=1e80), np.eye(2)),
        ValueError,
        "overflowed",
    ),
    Case(
        "profile-range",
        lambda: kernels.profile(ARCH, np.array([1.5])),
        ValueError,
        r"sin2_half must lie in \[0, 1\]",
    ),
    Case(
        "profile-kernel",
        lambda: kernels.profile(ARCH, np.array([0.5]), kernel="gp"),
        ValueError,
        "kernel must be",
    ),
    # mappings
    Case(
        "B-complex",
        lambda: mappings.FourierMapping(np.eye(2) * (1 + 1j), np.ones(2)),
        TypeError,
        "B must be real",
    ),
    Case(
        "a-complex",
        lambda: mappings.FourierMapping(np.eye(2), np.ones(2) + 0j),
        TypeError,
        "a must be real",
    ),
    Case(
        "B-complex-list",
        lambda: mappings.FourierMapping([[1j]], [1.0]),
        TypeError,
        "B must be real",
    ),
    Case(
        "B-nan",
        lambda: mappings.FourierMapping(_nan_at(np.eye(2), 0, 0), np.ones(2)),
        ValueError,
        "B must be finite",
    ),
    Case(
        "a-all-zero",
        lambda: mappings.FourierMapping(np.eye(2), np.zeros(2)),
        ValueError,
        "non-zero amplitude",
    ),
    Case(
        "B-1d",
        lambda: mappings.FourierMapping(np.ones(3), np.ones(3)),
        ValueError,
        r"B must have shape \(m, d\)",
    ),
    Case(
        "gaussian-seed-2**70",
        lambda: mappings.gaussian(2**70, 2, 4, 1.0),
        ValueError,
        "key_or_seed must be an int seed",
    ),
    Case(
        "gaussian-sigma-1e308",
        lambda: mappings.gaussian(0, 2, 4, 1e308),
        ValueError,
        "sigma = 1e.308 is too large",
    ),
    Case(
        "gaussian-sigma-negative",
        lambda: mappings.gaussian(0, 2, 4, -1.0),
        ValueError,
        "sigma must be > 0",
    ),
    Case(
        "gaussian-seed-type",
        lambda: mappings.gaussian("0", 2, 4, 1.0),
        TypeError,
        "key_or_seed",
    ),
    Case("basic-dim-0", lambda: mappings.basic(0), ValueError, "dim must be"),
    Case(
        "positional-both",
        lambda: mappings.positional(2, 4),
        ValueError,
        "exactly one of sigma",
    ),
    Case("power-law-p", lambda: mappings.power_law(4, -1.0), ValueError, "p must be"),
    Case(
        "mapping-input-dim",
        lambda: mappings.basic(2)(np.zeros((3, 1))),
        ValueError,
        "input dimension is 2",
    ),
    # grids
    Case("grid-zero", lambda: ntkspec.Grid((0,)), ValueError, r"shape\[0\]"),
    Case("grid-4d", lambda: ntkspec.Grid((2, 2, 2, 2)), ValueError, "1 to 3 entries"),
    Case("grid-float", lambda: ntkspec.Grid((2.5,)), TypeError, r"shape\[0\]"),
    # spectra
    Case(
        "spectrum-k-0",
        lambda: ntkspec.spectrum(ARCH, mappings.basic(1), _GRID16, k=0),
        ValueError,
        "k",
    ),
    Case(
        "spectrum-method",
        lambda: ntkspec.spectrum(ARCH, mappings.basic(1), _GRID16, method="qr"),
        ValueError,
        "method must be",
    ),
    Case(
        "spectrum-mapping-dim",
        lambda: ntkspec.spectrum(ARCH, mappings.basic(2), _GRID16),
        ValueError,
        "dimension",
    ),
    Case(
        "spectrum-lanczos-points",
        lambda: ntkspec.spectrum(ARCH, mappings.basic(1), X4, k=1, method="lanczos"),
        ValueError,
        "needs x to be a ntkspec.Grid",
    ),
    Case(
        "spectrum-dense-cap",
        lambda: ntkspec.spectrum(ARCH, mappings.basic(1), X4, max_bytes=16),
        ValueError,
        "dense memory cap",
    ),
    # regression
    Case(
        "regress-y-nan",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.basic(1), X4, np.array([0, np.nan, 0, 0]), X4
        ),
        ValueError,
        "y_train must be finite",
    ),
    Case(
        "regress-ridge",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.basic(1), X4, np.ones(4), X4, ridge=-1.0
        ),
        ValueError,
        "ridge must be >= 0",
    ),
    Case(
        "regress-solver",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.basic(1), X4, np.ones(4), X4, solver="lu"
        ),
        ValueError,
        "solver must be one of",
    ),
    Case(
        "regress-y-rows",
        lambda: ntkspec.kernel_regression(ARCH, mappings.basic(1), X4, np.ones(3), X4),
        ValueError,
        "y_train has 3 rows",
    ),
    Case(
        "regress-grids",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.basic(1), _GRID16, np.ones(16), ntkspec.Grid((24,))
        ),
        ValueError,
        "not compatible",
    ),
    Case(
        "regress-float32",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.basic(1), X4, np.ones(4), X4, dtype=np.float32
        ),
        ValueError,
        "float64 only",
    ),
    Case(
        "regress-pcg-points",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.basic(1), X4, np.ones(4), X4, solver="pcg"
        ),
        ValueError,
        "needs x_train and x_test as ntkspec.Grid",
    ),
    Case(
        "regress-pcg-no-convergence",
        lambda: ntkspec.kernel_regression(
            ARCH,
            mappings.gaussian(0, 1, 16, 3.0),
            _GRID16,
            np.random.default_rng(0).random(16),
            ntkspec.Grid((32,)),
            solver="pcg",
            max_iter=1,
            rtol=1e-14,
        ),
        ntkspec.regression.ConvergenceWarning,
        "PCG did not reach",
    ),
    # dynamics: divergence of discrete GD, kernel matrices
    Case(
        "gd-diverges-finite-t",
        lambda: ntkspec.gd_dynamics(
            ARCH, mappings.basic(1), X16, Y16, X16, [10], 10 * LIMIT16, discrete=True
        ),
        RuntimeWarning,
        r"diverges.*stability limit 2 N_y / lambda_max",
    ),
    Case(
        "gd-diverges-t-inf",
        lambda: ntkspec.gd_dynamics(
            ARCH,
            mappings.basic(1),
            X16,
            Y16,
            X16,
            [np.inf],
            10 * LIMIT16,
            discrete=True,
        ),
        ValueError,
        "stability limit",
    ),
    Case(
        "gd-diverges-periodic-grid",
        lambda: ntkspec.gd_dynamics(
            ARCH,
            mappings.basic(1),
            _GRID16,
            Y16,
            _GRID16,
            [10],
            10 * LIMIT16,
            discrete=True,
        ),
        RuntimeWarning,
        "stability limit",
    ),
    Case(
        "modes-diverge",
        lambda: dynamics.eigenmode_residuals(
            ARCH, mappings.basic(1), X16, Y16, [10], 10 * LIMIT16, discrete=True
        ),
        RuntimeWarning,
        "stability limit",
    ),
    Case(
        "flow-nan-upper",
        lambda: dynamics.gradient_flow(_nan_at(K16, 0, 5), Y16, None, [1.0], 1.0),
        ValueError,
        "k_train_train must be finite",
    ),
    Case(
        "flow-nan-lower",
        lambda: dynamics.gradient_flow(_nan_at(K16, 5, 0), Y16, None, [1.0], 1.0),
        ValueError,
        "k_train_train must be finite",
    ),
    Case(
        "flow-not-symmetric",
        lambda: dynamics.gradient_flow(
            K16 + np.triu(np.full_like(K16, 1e-3), 1), Y16, None, [1.0], 1.0
        ),
        ValueError,
        "k_train_train must be symmetric",
    ),
    Case(
        "flow-not-square",
        lambda: dynamics.gradient_flow(K16[:3], Y16, None, [1.0], 1.0),
        ValueError,
        "must be square",
    ),
    Case(
        "flow-test-nan",
        lambda: dynamics.gradient_flow(K16, Y16, _nan_at(K16, 2, 2), [1.0], 1.0),
        ValueError,
        "k_test_train must be finite",
    ),
    Case(
        "times-negative",
        lambda: dynamics.gradient_flow(K16, Y16, None, [-1.0], 1.0),
        ValueError,
        "times must be >= 0",
    ),
    Case(
        "learning-rate-0",
        lambda: dynamics.gradient_flow(K16, Y16, None, [1.0], 0.0),
        ValueError,
        "learning_rate must be > 0",
    ),
    Case(
        "discrete-fractional-steps",
        lambda: dynamics.gradient_flow(K16, Y16, None, [1.5], 1.0, discrete=True),
        ValueError,
        "whole numbers of steps",
    ),
    # networks
    Case(
        "train-diverges",
        _diverging_training,
        RuntimeWarning,
        "loss is not finite after step 1 of 20",
    ),
    Case(
        "history-seconds-deprecated",
        lambda: _history().seconds,
        DeprecationWarning,
        r"stats\['seconds'\]",
    ),
    Case(
        "history-chunk-seconds-deprecated",
        lambda: _history().chunk_seconds,
        DeprecationWarning,
        r"stats\['chunk_seconds'\]",
    ),
    Case(
        "mlp-width-0",
        lambda: networks.mlp(ARCH, mappings.basic(1), 0),
        ValueError,
        "width must be",
    ),
    Case(
        "train-steps-0",
        lambda: networks.train(
            networks.mlp(ARCH, mappings.basic(1), 4),
            None,
            X4,
            np.ones(4),
            steps=0,
        ),
        ValueError,
        "steps must be",
    ),
    Case(
        "train-optimizer",
        lambda: networks.train(
            networks.mlp(ARCH, mappings.basic(1), 4),
            None,
            X4,
            np.ones(4),
            steps=1,
            optimizer="lbfgs",
        ),
        ValueError,
        "optimizer must be",
    ),
    Case(
        "empirical-ntk-implementation",
        lambda: networks.empirical_ntk(
            networks.mlp(ARCH, mappings.basic(1), 4), None, X4, implementation="fast"
        ),
        ValueError,
        "implementation must be",
    ),
]


# --------------------------------------------------------------------------------------
# Issue 30: overflowing kernels on the grid paths, sizes refused before allocating,
# degenerate measurements, and the smaller argument checks.
# --------------------------------------------------------------------------------------

ISSUE_ARCH = ntkspec.ReluMLP(10, W_std=1e20)  # the issue's example
HUGE_ARCH = ntkspec.ReluMLP(3, W_std=1e120)  # overflows too, compiled as ARCH is
G8 = ntkspec.Grid((8,))
Y8 = np.cos(2 * np.pi * np.arange(8) / 8)
OVERFLOW = "NTK overflowed float64"


def _empty_kspace_inverse():
    from ntkspec import measurements

    mask = measurements.KSpaceMask(jax.numpy.zeros((0,), np.int32), (8, 8))
    return ntkspec.inverse_regression(
        ARCH, mappings.basic(2), ntkspec.Grid((8, 8)), mask, np.zeros(0)
    )


def _inconsistent_inverse():
    from ntkspec import measurements

    a = np.zeros((2, 8))
    a[:, 0] = 1.0  # two equal rows, two different values: no exact fit
    return ntkspec.inverse_regression(
        ARCH, mappings.basic(1), G8, measurements.as_measurement(a), [0.0, 1.0],
        max_iter=20,
    )  # fmt: skip


API_CASES += [
    # (2) the kernel profile overflows: every path raises the points path's error
    Case(
        "spectrum-grid-overflow",
        lambda: ntkspec.spectrum(ISSUE_ARCH, mappings.basic(1), G8),
        ValueError,
        OVERFLOW,
    ),
    Case(
        "spectrum-grid-topk-overflow",
        lambda: ntkspec.spectrum(HUGE_ARCH, mappings.basic(1), G8, k=2),
        ValueError,
        OVERFLOW,
    ),
    Case(
        "gd-dynamics-grid-overflow",
        lambda: ntkspec.gd_dynamics(HUGE_ARCH, mappings.basic(1), G8, Y8, G8, [1.0], 1),
        ValueError,
        OVERFLOW,
    ),
    Case(
        "gd-dynamics-toeplitz-overflow",
        lambda: ntkspec.gd_dynamics(
            HUGE_ARCH, mappings.gaussian(0, 1, 4, 2.0), G8, Y8, G8, [1.0], 1.0
        ),
        ValueError,
        OVERFLOW,
    ),
    Case(
        "predicted-error-overflow",
        lambda: ntkspec.design.predicted_error(
            HUGE_ARCH, mappings.basic(2), np.linspace(0, 1, 64).reshape(8, 8)
        ),
        ValueError,
        OVERFLOW,
    ),
    Case(
        "kernel-regression-grid-overflow",
        lambda: ntkspec.kernel_regression(HUGE_ARCH, mappings.basic(1), G8, Y8, G8),
        ValueError,
        OVERFLOW,
    ),
    Case(
        "grid-column-float32-overflow",  # finite in float64 (1e90), not in float32
        lambda: ntkspec.operators.kernel_on_offsets(
            ntkspec.ReluMLP(3, W_std=1e15), mappings.basic(1), G8, dtype=np.float32
        ),
        ValueError,
        "NTK overflowed float32",
    ),
    Case(
        "profile-overflow",
        lambda: kernels.profile(HUGE_ARCH, np.linspace(0, 1, 5)),
        ValueError,
        OVERFLOW,
    ),
    # (3, 4) sizes refused before allocating, naming the argument (the cases that
    # would allocate a lot on the unfixed code run in a subprocess, below)
    Case(
        "basic-dim-huge",
        lambda: mappings.basic(10**6),
        ValueError,
        r"dim = 1,000,000: .* would need .* over the cap",
    ),
    Case(
        "power-law-num-freqs-huge",
        lambda: mappings.power_law(10**10, 1.0),
        ValueError,
        r"num_freqs = 10,000,000,000: .* over the cap",
    ),
    Case(
        "mlp-width-huge",
        lambda: networks.mlp(ARCH, mappings.basic(1), 10**6),
        ValueError,
        r"width = 1,000,000: the parameters .* over the cap",
    ),
    Case(
        "grid-beyond-int64",
        lambda: ntkspec.Grid((10**400,)),
        ValueError,
        r"shape\[0\] must be at most 2\*\*63 - 1",
    ),
    Case(
        "grid-product-beyond-int64",
        lambda: ntkspec.Grid((2**40, 2**40)),
        ValueError,
        "a grid holds at most 2",
    ),
    # (7) a k-space mask that keeps nothing; a forward map with no rows
    Case(
        "mri-kspace-empty-mask",
        lambda: ntkspec.measurements.mri_kspace((8, 8), num_samples=1, seed=3),
        ValueError,
        "keeps no k-space coefficient",
    ),
    Case(
        "inverse-regression-no-rows",
        _empty_kspace_inverse,
        ValueError,
        r"forward has no rows \(M = 0",
    ),
    # (8) huge coordinates, PSNR of nothing or of NaN
    Case(
        "gaussian-features-huge-coordinate",
        lambda: mappings.gaussian(0, 1, 4, 1.0)(np.array([[1e308]])),
        ValueError,
        r"v has coordinates up to 1e\+308.*beyond 2\*\*53",
    ),
    Case(
        "kernel-regression-huge-coordinate-names-x_train",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.identity(), [[0.0], [1e308]], np.zeros(2), [[0.5]]
        ),
        ValueError,
        "^x_train has entries of magnitude",
    ),
    Case(
        "kernel-regression-gaussian-huge-coordinate-names-x_test",
        lambda: ntkspec.kernel_regression(
            ARCH, mappings.gaussian(0, 1, 4, 1.0), X4, np.zeros(4), [[1e308]]
        ),
        ValueError,
        "^x_test has coordinates",
    ),
    Case(
        "spectrum-huge-coordinate-names-x",
        lambda: ntkspec.spectrum(ARCH, mappings.identity(), [[0.0], [1e308]]),
        ValueError,
        "^x has entries of magnitude",
    ),
    Case(
        "psnr-nan-prediction",
        lambda: ntkspec.data.psnr(np.array([np.nan, 1.0]), np.zeros(2)),
        ValueError,
        "prediction must be finite",
    ),
    Case(
        "psnr-empty",
        lambda: ntkspec.data.psnr(np.zeros(0), np.zeros(0)),
        ValueError,
        "must not be empty",
    ),
    Case(
        "psnr-inf-target",
        lambda: ntkspec.data.psnr(np.zeros(2), np.array([np.inf, 0.0])),
        ValueError,
        "target must be finite",
    ),
    # also noticed
    Case(
        "kernel-regression-rtol-5",
        lambda: ntkspec.kernel_regression(ARCH, mappings.basic(1), G8, Y8, G8, rtol=5),
        ValueError,
        r"rtol must be in \(0, 1\)",
    ),
    Case(
        "cg-value-rtol-1",
        lambda: ntkspec.solvers.CG(rtol=1.0),
        ValueError,
        r"rtol must be in \(0, 1\)",
    ),
    Case(
        "zero-gram-advice",
        lambda: ntkspec.solvers.psd_solve(np.zeros((3, 3)), np.ones(3), "the Gram"),
        ntkspec.solvers.IllConditionedWarning,
        "the Gram is zero .* no ridge helps",
    ),
    Case(
        "inverse-cg-inconsistent-says-not-a-solution",
        _inconsistent_inverse,
        ntkspec.solvers.ConvergenceWarning,
        "no better than the zero start's .* not a solution",
    ),
]


def _check(case: Case) -> None:
    if issubclass(case.expect, Warning):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            case.call()
        ours = [w for w in seen if issubclass(w.category, case.expect)]
        assert ours, f"no {case.expect.__name__}; saw {[str(w.message) for w in seen]}"
        assert any(re.search(case.match, str(w.message)) for w in ours), [
            str(w.message) for w in ours
        ]
    else:
        with pytest.raises(case.expect, match=case.match):
            case.call()


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api(case):
    _check(case)


# --------------------------------------------------------------------------------------
# Cases that used to kill the process (allocation inside XLA): one subprocess for all.
# --------------------------------------------------------------------------------------

_HUGE = (1 << 16, 1 << 16)
PROCESS_CASES = {
    "spectrum-huge-grid-basic": (
        f"ntkspec.spectrum(ARCH, mappings.basic(2), ntkspec.Grid({_HUGE}), k=5)",
        {},
    ),
    "spectrum-huge-grid-gaussian": (
        "ntkspec.spectrum(ARCH, mappings.gaussian(0, 2, 16, 3.0), "
        f"ntkspec.Grid({_HUGE}), k=5)",
        {},
    ),
    "grid-huge-points": (f"ntkspec.Grid({_HUGE}).points()", {}),
    # the regression's test grid over a lowered machine cap (a real 2^16 x 2^16 test
    # grid would need 8 GiB of targets first)
    "regression-grid-over-cap": (
        "ntkspec.kernel_regression(ARCH, mappings.basic(2), ntkspec.Grid((64, 64)), "
        "np.zeros(64 * 64), ntkspec.Grid((128, 128)))",
        {"NTKSPEC_MAX_WORK_BYTES": "1e5"},
    ),
    "lanczos-grid-over-cap": (
        "ntkspec.spectrum(ARCH, mappings.gaussian(0, 2, 16, 3.0), "
        "ntkspec.Grid((64, 64)), k=2)",
        {"NTKSPEC_MAX_WORK_BYTES": "1e5"},
    ),
}
_PROCESS_SCRIPT = """
import json, os, sys
import numpy as np
import ntkspec
from ntkspec import mappings
ARCH = ntkspec.ReluMLP(3)
name, call = sys.argv[1], sys.argv[2]
try:
    eval(call)
    out = {"type": None, "message": ""}
except Exception as err:
    out = {"type": type(err).__name__, "message": str(err)}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def process_results(tmp_path_factory):
    """Run each process case in a subprocess (all at once); collect the outcomes."""
    script = tmp_path_factory.mktemp("huge") / "case.py"
    script.write_text(_PROCESS_SCRIPT)
    procs = {}
    for name, (call, env) in PROCESS_CASES.items():
        full_env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", **env)
        procs[name] = subprocess.Popen(
            [sys.executable, str(script), name, call],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
        results[name] = (
            proc.returncode,
            json.loads(lines[-1][7:]) if lines else None,
            stderr[-2000:],
        )
    return results


@pytest.mark.parametrize("name", list(PROCESS_CASES))
def test_process_killing_cases_are_refused(name, process_results):
    rc, result, stderr = process_results[name]
    assert rc == 0 and result is not None, f"the process died (rc {rc}): {stderr}"
    assert result["type"] == "ValueError", result
    message = result["message"]
    assert "GiB of memory" in message and "over the cap of" in message, message
    assert "NTKSPEC_MAX_WORK_BYTES" in message, message
    if not PROCESS_CASES[name][1]:  # no cap set: the machine's memory
        assert "what this machine can hold" in message, message


# Issue 30: allocations that used to abort inside XLA or fill the memory. They run in
# one subprocess (a regression fails these rows instead of killing the test session),
# under an address-space limit (the unfixed code fails with a MemoryError instead of
# taking the machine's memory) and with the work cap lowered to 4 GB (the refusal does
# not depend on the machine's size). The cases that aborted inside XLA come last.
_KRR_1E7 = (
    "ntkspec.kernel_regression(ARCH, mappings.FourierMapping(np.zeros((10**7, 1)), "
    "np.ones(10**7)), np.random.default_rng(0).random((2000, 1)), np.zeros(2000), "
    "np.random.default_rng(1).random((5, 1)))"
)
ALLOC_CASES = {
    "positional-1e9-freqs": (
        "mappings.positional(2, 10**9, scale=6.0)",
        r"^num_freqs = 1,000,000,000: the frequencies B",
    ),
    "ct-1e6-angles": (
        "ntkspec.measurements.ct_projections((128, 128), num_angles=10**6)",
        r"^num_angles = 1,000,000 on grid_shape \(128, 128\)",
    ),
    "kspace-mask-2048-cubed": (
        "ntkspec.measurements.kspace_sample_mask((2048,) * 3, num_samples=10)",
        r"^grid_shape = \(2048, 2048, 2048\): the k-space mask",
    ),
    "mri-kspace-4096-cubed": (  # over the int32 indices' range, before any memory
        "ntkspec.measurements.mri_kspace((4096,) * 3, num_samples=10)",
        r"^grid_shape \(4096, 4096, 4096\) has 68,719,476,736 points",
    ),
    "cli-spectrum-power-law-1e10-freqs": (
        "cli(['spectrum', '--mapping', 'power-law', '--num-freqs', '10000000000'])",
        r"^ntkspec spectrum: error: num_freqs = 10,000,000,000: ",
    ),
    "kernel-regression-1e7-freq-features": (
        _KRR_1E7,
        r"2,000 points \(v\) x num_freqs = 10,000,000: the features of shape "
        r"\(2000, 20000000\)",
    ),
    "gaussian-4e9-freqs": (
        "mappings.gaussian(0, 2, 4 * 10**9, 1.0)",
        r"^num_freqs = 4,000,000,000: the frequencies B of shape \(4000000000, 2\)",
    ),
    "cli-spectrum-4e9-freqs": (
        "cli(['spectrum', '--num-freqs', '4000000000'])",
        r"^ntkspec spectrum: error: num_freqs = 4,000,000,000: ",
    ),
}
_ALLOC_SCRIPT = """
import contextlib, io, json, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))
os.environ["NTKSPEC_MAX_WORK_BYTES"] = "4e9"
import numpy as np
import ntkspec
from ntkspec import cli as _cli, mappings
ARCH = ntkspec.ReluMLP(3)

class CliError(Exception):
    pass

def cli(argv):  # the console script in-process: exit code 2 and one line wanted
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = _cli.main(argv)
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    raise CliError(json.dumps({"rc": rc, "lines": lines}))

for name, call in json.loads(sys.argv[1]).items():
    try:
        eval(call)
        out = {"type": None, "message": ""}
    except Exception as err:
        out = {"type": type(err).__name__, "message": str(err)}
    print("RESULT " + json.dumps([name, out]), flush=True)
"""


@pytest.fixture(scope="module")
def alloc_results(tmp_path_factory):
    """Every allocation case in one subprocess, in order; name -> outcome."""
    tmp = tmp_path_factory.mktemp("alloc")
    script = tmp / "case.py"
    script.write_text(_ALLOC_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    calls = json.dumps({name: call for name, (call, _) in ALLOC_CASES.items()})
    proc = subprocess.run(
        [sys.executable, str(script), calls], env=env, capture_output=True, text=True,
        cwd=tmp, timeout=600,
    )  # fmt: skip
    lines = [ln[7:] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    results = dict(json.loads(ln) for ln in lines)
    made = sorted(p.name for p in tmp.iterdir())
    return results, proc.returncode, proc.stderr[-2000:], made


@pytest.mark.parametrize("name", list(ALLOC_CASES))
def test_allocations_are_refused_before_allocating(name, alloc_results):
    results, rc, stderr, made = alloc_results
    assert name in results, f"the process died (rc {rc}) before this case: {stderr}"
    result = results[name]
    message = result["message"]
    if name.startswith("cli-"):
        assert result["type"] == "CliError", result
        out = json.loads(message)
        assert out["rc"] == 2 and len(out["lines"]) == 1, out
        message = out["lines"][0]
        assert made == ["case.py"]  # nothing written
    else:
        assert result["type"] == "ValueError", result
    assert re.search(ALLOC_CASES[name][1], message), message
    if name != "mri-kspace-4096-cubed":
        assert "would need about" in message, message
        assert "over the cap of 3.73 GiB" in message, message


# --------------------------------------------------------------------------------------
# CLI: one line on stderr, exit code 2, nothing written.
# --------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height (no pixel data)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    crc = zlib.crc32(chunk).to_bytes(4, "big")
    iend = b"IEND"
    return (
        b"\x89PNG\r\n\x1a\n"
        + len(ihdr).to_bytes(4, "big")
        + chunk
        + crc
        + (0).to_bytes(4, "big")
        + iend
        + zlib.crc32(iend).to_bytes(4, "big")
    )


@pytest.fixture
def cli_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a file, not a folder\n")
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((8, 8)))
    np.save(tmp_path / "nan.npy", np.full((8, 8), np.nan))
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "huge.png").write_bytes(_png_header_only(10000, 10000))
    (tmp_path / "taken" / "img_basic.json").mkdir(parents=True)
    (tmp_path / "taken2" / "spectrum_basic.png").mkdir(parents=True)
    return tmp_path


SPEC = ["spectrum", "--mapping", "basic", "--grid", "8"]
REG = ["regress", "img.npy", "--mapping", "basic"]
CLI_CASES = [
    ("spectrum-out-proc", SPEC + ["--out", "/proc/x"], "cannot be written"),
    ("spectrum-out-under-file", SPEC + ["--out", "FILE/sub"], "is a file, not a"),
    ("spectrum-out-is-file", SPEC + ["--out", "FILE"], "exists and is not a folder"),
    (
        "spectrum-output-is-folder",
        SPEC + ["--out", "taken2"],
        "spectrum_basic.png' is a folder",
    ),
    ("regress-out-under-file", REG + ["--out", "FILE/sub"], "is a file, not a"),
    ("regress-second-output-is-folder", REG + ["--out", "taken"], "is a folder"),
    ("regress-out-proc", REG + ["--out", "/proc/x"], "cannot be written"),
    ("report-out-proc", ["report", "--quick", "--out", "/proc/x"], "cannot be written"),
    ("report-out-under-file", ["report", "--quick", "--out", "FILE/r"], "is a file"),
    ("regress-huge-png", ["regress", "huge.png"], "read from its header"),
    ("regress-missing-image", ["regress", "nope.png"], "does not exist"),
    ("regress-pickled-npy", ["regress", "pickled.npy"], "cannot read"),
    ("regress-nan-image", ["regress", "nan.npy"], "NaN or inf"),
    ("regress-ridge-negative", REG + ["--ridge", "-1"], "--ridge must be"),
    ("spectrum-grid-0", ["spectrum", "--grid", "0"], "--grid sizes must be"),
    ("spectrum-grid-4d", ["spectrum", "--grid", "2", "2", "2", "2"], "1 to 3 sizes"),
    ("spectrum-grid-too-big", ["spectrum", "--grid", "4096", "4096"], "limit"),
    ("spectrum-depth-0", SPEC + ["--depth", "0"], "--depth must be"),
    ("spectrum-sigma-nan", ["spectrum", "--sigma", "nan", "--grid", "8"], "--sigma"),
    ("spectrum-top-too-many", SPEC + ["-k", "9"], "-k/--top must be"),
    ("spectrum-bad-option", SPEC + ["--frobnicate"], "unrecognized arguments"),
    ("profiles-out-under-file", ["profiles", "--out", "FILE/p"], "is a file"),
]


@pytest.mark.parametrize(
    "argv, fragment", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_fails_in_one_line_with_exit_2(argv, fragment, cli_dir, capsys):
    before = sorted(str(p.relative_to(cli_dir)) for p in cli_dir.rglob("*"))
    try:
        rc = cli.main(argv)
    except SystemExit as stop:  # argparse's own errors
        rc = stop.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]
    after = sorted(str(p.relative_to(cli_dir)) for p in cli_dir.rglob("*"))
    assert after == before  # nothing written, no folder made


# --------------------------------------------------------------------------------------
# Interrupted reports leave the previous report as it was.
# --------------------------------------------------------------------------------------


def _tiny_study(out_dir, *, quick, seed, command):
    from ntkspec.io import write_json

    path = Path(out_dir) / "tiny.json"
    write_json(path, {"seed": seed, "provenance": {"seed": seed}})
    return {"json": str(path)}


def _interrupting_study(out_dir, *, quick, seed, command):
    raise KeyboardInterrupt


_TINY = Study("tiny", "tiny", "tests.test_bad_input", function="_tiny_study")
_STOP = Study("stop", "stop", "tests.test_bad_input", function="_interrupting_study")


def test_interrupted_report_keeps_the_previous_one(tmp_path):
    out = tmp_path / "report"
    run_report(out, seed=0, studies=(_TINY,), progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(KeyboardInterrupt):
        run_report(out, seed=1, studies=(_TINY, _STOP), progress=False)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert json.loads((out / "report.json").read_text())["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temp left
    # and a completed run replaces it as a whole
    run_report(out, seed=1, studies=(_TINY,), progress=False)
    assert json.loads((out / "tiny" / "tiny.json").read_text())["seed"] == 1
    assert json.loads((out / "report.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_report_into_a_folder_with_other_files_keeps_them(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    run_report(tmp_path, seed=0, studies=(_TINY,), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    assert (tmp_path / "index.html").is_file() and (tmp_path / "tiny").is_dir()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_during_report_gives_one_line(sig, tmp_path):
    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    # `python -m ntkspec`, with Python's own SIGINT handler restored: a test runner
    # started in the background ignores SIGINT, and its children inherit that
    launcher = (
        "import runpy, signal, sys; "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['ntkspec'] + sys.argv[1:]; "
        "runpy.run_module('ntkspec', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "report", "--quick", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    # wait until the staging folder exists (the studies are running), then signal
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        p.name.startswith(".r.partial-") for p in tmp_path.iterdir()
    ):
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == "SIGINT" else 143), stderr
    assert "Traceback" not in stderr
    last = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()][-1]
    assert last.startswith("ntkspec report: ")
    assert ("interrupted" if sig == "SIGINT" else "terminated") in last
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing, no temp folder


# --------------------------------------------------------------------------------------
# Exactness: duplicate pairs on the Chebyshev path, antipodal pairs.
# --------------------------------------------------------------------------------------


def test_chebyshev_duplicates_equal_the_diagonal_bit_for_bit():
    pts = np.random.default_rng(0).random((701, 1))
    pts[700] = pts[0]
    k = np.asarray(
        ntkspec.ntk(
            ntkspec.ReluMLP(4), mappings.gaussian(0, 1, 16, 3.0)(pts), progress=False
        )
    )
    assert k[0, 700] == k[0, 0] == k[700, 700] == k[700, 0]


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
def test_antipodal_pair_matches_profile(kernel):
    arch = ntkspec.ReluMLP(4)
    mapping = mappings.basic(3)
    v = np.array([[0.0, 1 / 6, 0.0], [0.5, 2 / 3, 0.5]])
    gram = getattr(ntkspec, kernel)(arch, mapping(v))
    ref = kernels.profile(
        arch,
        np.array([0.0, 1.0]),
        input_var=mapping.norm_sq / (2 * mapping.num_freqs),
        input_dim=mapping.out_dim,
        kernel=kernel,
    )
    ref = np.asarray(ref)
    np.testing.assert_allclose(
        np.asarray(gram)[0, 1], ref[1], rtol=0, atol=4e-16 * ref[0]
    )


def test_float64_inputs_give_float64_networks_under_x64():
    net = networks.mlp(ARCH, mappings.basic(1), 8)
    params = net.init(jax.random.PRNGKey(0))
    assert networks.empirical_ntk(net, params, X4).dtype == np.float32
    with jax.enable_x64(True):
        assert networks.empirical_ntk(net, params, X4).dtype == np.float64
        assert net.apply(params, X4).dtype == np.float64
        k32 = networks.empirical_ntk(net, params, X4.astype(np.float32))
        assert k32.dtype == np.float32


def test_table_is_large_enough():
    assert len(API_CASES) + len(PROCESS_CASES) + len(CLI_CASES) >= 60


# --------------------------------------------------------------------------------------
# Issue 30 (8): features of huge coordinates are finite; strict JSON for suggest.
# --------------------------------------------------------------------------------------


def test_features_of_huge_coordinates_are_finite_and_exact():
    # Every float64 above 2**53 is an integer, so with integer frequencies its phase is
    # a whole number of turns: cos = 1, sin = 0 exactly (an independent reference).
    gamma = mappings.basic(2)
    v = np.array([[1e308, -(2.0**60)], [-2.75, 3.25]])
    f = np.asarray(gamma(v))
    np.testing.assert_array_equal(f[0], [1.0, 1.0, 0.0, 0.0])
    # -2.75 = 0.25 and 3.25 = 0.25 in turns: cos(pi/2) and sin(pi/2), within 1 ulp
    np.testing.assert_allclose(f[1], [0.0, 0.0, 1.0, 1.0], rtol=0, atol=2e-16)
    with jax.enable_x64(True):  # traced: reduced mod 1 too
        jitted = np.asarray(jax.jit(lambda x: gamma(x))(v))
    np.testing.assert_allclose(jitted, f, rtol=0, atol=2e-16)
    pl = mappings.power_law(3, 1.0)
    assert np.all(np.isfinite(np.asarray(pl.tau(np.array([[1e308]])))))
    assert float(np.asarray(pl.sin2_half_angle(np.array([[1e308]])))[0]) == 0.0


def test_suggest_json_is_strict_for_an_infinite_psnr():
    choice = ntkspec.design.ScaleSuggestion(
        scale=1.0,
        scales=np.array([1.0, 2.0]),
        predicted_psnr=np.array([np.inf, 30.0]),
        time=1.0,
        family="gaussian",
        num_freqs=16,
        learning_rate=1.0,
        seed=0,
    )
    d = choice.to_dict()
    text = json.dumps(d, allow_nan=False)  # strict JSON: no Infinity/NaN tokens
    assert json.loads(text)["predicted_psnr"] == [None, 30.0]
    assert "infinite PSNR" in d["predicted_psnr_null"]


# --------------------------------------------------------------------------------------
# Issue 30 (5): Ctrl-C from the first line of the console script.
# --------------------------------------------------------------------------------------

# `python -m ntkspec report --quick --out OUT` with Python's SIGINT handler restored (a
# background test runner ignores SIGINT), which sends itself SIGINT while ntkspec is
# importing: when `import jax` starts (the import machinery's code), or from inside a
# garbage-collector callback (where Python drops a raised KeyboardInterrupt).
_EARLY_SIGINT = """
import gc, os, runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
where = sys.argv.pop(1)
sys.argv = ["ntkspec"] + sys.argv[1:]

def _send():
    os.kill(os.getpid(), signal.SIGINT)

class _AtJax:
    def find_spec(self, name, path=None, target=None):
        if where == "import" and name == "jax":
            sys.meta_path.remove(self)
            _send()
        return None

sys.meta_path.insert(0, _AtJax())
_calls = []

def _in_gc(phase, info):
    if where == "gc" and phase == "start" and "jax" in sys.modules:
        _calls.append(phase)
        if len(_calls) == 3:
            _send()

gc.callbacks.insert(0, _in_gc)
runpy.run_module("ntkspec", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("where", ["import", "gc"])
def test_sigint_while_importing_gives_one_line_and_130(where, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-c", _EARLY_SIGINT, where, "report", "--quick", "--out",
         str(tmp_path / "r")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # the interrupt was lost: the report ran on
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"SIGINT was swallowed: {stderr[-1000:]}")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert proc.returncode == 130, stderr[-2000:]
    assert lines == ["ntkspec report: interrupted"], stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sigint_inside_a_gc_callback_is_raised_after_it():
    import gc

    from ntkspec import _interrupt

    sent = []

    def _callback(phase, info):
        if phase == "start" and not sent:
            sent.append(phase)
            signal.raise_signal(signal.SIGINT)
            sum(range(100))  # the handler runs here, inside the callback

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _interrupt.interrupts_raise():
            assert signal.getsignal(signal.SIGINT) is _interrupt.raise_interrupt
            gc.callbacks.insert(0, _callback)
            try:
                with pytest.raises(KeyboardInterrupt):
                    gc.collect()
                    deadline = time.monotonic() + 10  # raised once the collection
                    while time.monotonic() < deadline:  # has returned
                        time.sleep(0.001)
            finally:
                gc.callbacks.remove(_callback)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
    assert sent


def test_library_import_leaves_sigint_alone():
    from ntkspec import _interrupt

    assert signal.getsignal(signal.SIGINT) is not _interrupt._exit_now
