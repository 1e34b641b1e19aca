"""Renamed arguments (issue 23): the old keyword still works, with a DeprecationWarning.

Once generically (``ntkspec._deprecation.renamed_arguments``), then once per renamed
argument of a public function: the old keyword warns and gives the very result of the
new one.
"""

from __future__ import annotations

import numpy as np
import pytest

import ntkspec
from ntkspec import measurements
from ntkspec._deprecation import renamed_arguments
from ntkspec.inverse import inverse_regression_path
from ntkspec.operators import grid_operator
from ntkspec.spectra import lanczos_eigenpairs

ARCH = ntkspec.ReluMLP(3)


# --------------------------------------------------------------------------------------
# The decorator.
# --------------------------------------------------------------------------------------


@renamed_arguments(
    lr="learning_rate",
    steps=("times=, discrete=True", lambda v: {"times": v, "discrete": True}),
)
def _f(x, *, learning_rate=1.0, times=None, discrete=False):
    """A doc."""
    return (x, learning_rate, times, discrete)


def test_the_new_names_pass_without_a_warning():
    assert _f(1, learning_rate=2.0, times=3) == (1, 2.0, 3, False)
    assert _f.__doc__ == "A doc." and _f.__name__ == "_f"


def test_an_old_name_warns_and_maps_onto_the_new_one():
    with pytest.warns(DeprecationWarning, match=r"_f\(\): the argument lr= .*learning"):
        assert _f(1, lr=2.0) == (1, 2.0, None, False)
    with pytest.warns(DeprecationWarning, match=r"steps= .*times=, discrete=True"):
        assert _f(1, steps=5) == (1, 1.0, 5, True)


def test_the_warning_points_at_the_caller():
    with pytest.warns(DeprecationWarning) as record:
        _f(1, lr=2.0)
    assert record[0].filename == __file__


def test_old_and_new_name_together_is_a_type_error():
    with pytest.raises(TypeError, match="both lr= .* and learning_rate="):
        _f(1, lr=2.0, learning_rate=3.0)
    with pytest.raises(TypeError, match="both steps= .* and times="):
        _f(1, steps=2, times=3)


def test_a_rename_onto_a_missing_or_still_present_argument_is_refused():
    with pytest.raises(ValueError, match="no argument 'rate'"):
        renamed_arguments(lr="rate")(lambda *, learning_rate=1.0: None)
    with pytest.raises(ValueError, match="still has the old argument 'lr'"):
        renamed_arguments(lr="learning_rate")(lambda *, lr=1, learning_rate=1.0: None)


# --------------------------------------------------------------------------------------
# Each renamed argument of the public API.
# --------------------------------------------------------------------------------------


def _same_with_warning(fn, old: dict, new: dict, match: str):
    want = fn(**new)
    with pytest.warns(DeprecationWarning, match=match):
        got = fn(**old)
    for a, b in zip(
        want if isinstance(want, tuple) else (want,),
        got if isinstance(got, tuple) else (got,),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def ct_problem():
    grid = ntkspec.Grid((8, 8))
    A = measurements.ct_projections(grid.shape, num_angles=4)
    y = A.to_scipy() @ np.random.default_rng(0).random(grid.size)
    mapping = ntkspec.mappings.gaussian(0, 2, 8, 2.0)
    return grid, A, y, mapping


@pytest.mark.parametrize(
    "old, new",
    [
        ({"time": 5.0}, {"times": 5.0}),
        (
            {"steps": 7, "learning_rate": 0.05},
            {"times": 7, "discrete": True, "learning_rate": 0.05},
        ),
        ({"time": 5.0, "lr": 0.5}, {"times": 5.0, "learning_rate": 0.5}),
    ],
)
def test_inverse_regression_old_time_steps_lr(ct_problem, old, new):
    grid, A, y, mapping = ct_problem

    def fn(**kw):
        return ntkspec.inverse_regression(
            ARCH, mapping, grid, A, y, krylov_dim=16, **kw
        )

    _same_with_warning(fn, old, new, r"inverse_regression\(\): the argument")


def test_inverse_regression_path_old_lr_and_max_dim(ct_problem):
    grid, A, y, mapping = ct_problem

    def fn(**kw):
        return inverse_regression_path(ARCH, mapping, grid, A, y, [1.0, 10.0], **kw)

    _same_with_warning(fn, {"lr": 0.5}, {"learning_rate": 0.5}, "lr=")
    _same_with_warning(fn, {"max_dim": 20}, {"max_krylov_dim": 20}, "max_dim=")


def test_spectrum_and_eigenmode_residuals_old_tol():
    grid = ntkspec.Grid((16, 16))
    mapping = ntkspec.mappings.gaussian(0, 2, 8, 2.0)

    def spec(**kw):
        return ntkspec.spectrum(ARCH, mapping, grid, k=3, method="lanczos", **kw)

    _same_with_warning(spec, {"tol": 1e-8}, {"rtol": 1e-8}, r"spectrum\(\).*tol=")
    y = np.random.default_rng(1).random(grid.size)

    def modes(**kw):
        r = ntkspec.eigenmode_residuals(ARCH, mapping, grid, y, [1.0], 1.0, k=3, **kw)
        return r.eigenvalues, r.residual

    _same_with_warning(modes, {"tol": 1e-8}, {"rtol": 1e-8}, "eigenmode_residuals")


def test_lanczos_eigenpairs_old_tol_and_max_dim():
    mapping = ntkspec.mappings.gaussian(0, 2, 8, 2.0)
    op = grid_operator(ARCH, mapping, ntkspec.Grid((16, 16)))

    def fn(**kw):
        return lanczos_eigenpairs(op, 3, **kw).eigenvalues

    _same_with_warning(fn, {"tol": 1e-8}, {"rtol": 1e-8}, "tol=")
    _same_with_warning(fn, {"max_dim": 128}, {"max_krylov_dim": 128}, "max_dim=")


def test_design_old_time():
    img = np.linspace(0, 1, 64).reshape(8, 8)
    mapping = ntkspec.mappings.basic(2)

    def err(**kw):
        return ntkspec.design.predicted_error(ARCH, mapping, img, **kw)

    _same_with_warning(err, {"time": 100.0}, {"times": 100.0}, "predicted_error")

    def suggest(**kw):
        choice = ntkspec.design.suggest_scale(
            ARCH, img, num_freqs=8, scales=[1.0, 2.0], **kw
        )
        return choice.scale, choice.predicted_psnr, choice.time

    _same_with_warning(suggest, {"time": 50.0}, {"times": 50.0}, "suggest_scale")
