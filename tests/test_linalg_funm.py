"""ntkspec.linalg.funm: the time filter, the decay, the stability check, lambda_max.

References are independent of the code under test: the filters at chosen points in
50-digit decimal arithmetic (``decimal``: exp, exact integer powers), the matrix
function by ``scipy.linalg.expm`` on a small SPD matrix, and ``numpy.linalg.eigvalsh``
for the largest eigenvalue.
"""

import decimal
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from ntkspec._numerics import x64_scope
from ntkspec.linalg import (
    DivergenceWarning,
    check_gd_stability,
    gd_decay,
    gd_filter,
    largest_eigenvalue,
)

D = decimal.Decimal
CTX = decimal.Context(prec=700)  # 1 - e^{-x} at x = 1e-310 keeps 17 digits
# Flow: expm1 and one division, a few ulp. GD: (1 - x)^k = exp(k log1p(u)) carries the
# error of k log1p(u) (|.| <= 1e3 here) times eps into exp: 1e3 * 2.2e-16 = 2.2e-13.
RTOL_FLOW, RTOL_GD = 8 * 2.2e-16, 1e-12
LAMS = [0.0, 1e-310, 1e-300, 1e-20, 1e-9, 1e-3, 0.3, 1.0, 7.0, 1e3, 1e8]


def _flow_ref(lam: float, s: float) -> float:
    if lam == 0.0:
        return s
    x = CTX.multiply(D(s), D(lam))
    return float(CTX.divide(CTX.subtract(1, CTX.exp(-x)), D(lam)))


def _gd_ref(lam: float, r: float, k: int) -> float:
    if lam == 0.0:
        return r * k
    x = CTX.multiply(D(r), D(lam))
    return float(CTX.divide(CTX.subtract(1, CTX.power(CTX.subtract(1, x), k)), D(lam)))


@pytest.mark.parametrize("s", [2.5, 1e-7, 1e6])
def test_flow_filter_matches_decimal(s):
    lam = np.array(LAMS)
    got = gd_filter(lam, s, 1.0)
    ref = np.array([_flow_ref(v, s) for v in LAMS])
    np.testing.assert_allclose(got, ref, rtol=RTOL_FLOW, atol=0)
    # rate and time enter as their product r t
    np.testing.assert_allclose(gd_filter(lam, 2.0, s / 2.0), ref, rtol=RTOL_FLOW)


@pytest.mark.parametrize("k", [1, 2, 7, 50, 1000])
@pytest.mark.parametrize(
    "x", [0.0, 1e-300, 1e-12, 1e-6, 0.5, 1.0 - 2**-40, 1.0, 1.5, 2.0 - 1e-9, 2.0, 2.5]
)
def test_gd_filter_matches_decimal(k, x):
    r = 0.25
    lam = np.array([x / r])
    got = gd_filter(lam, k, r, discrete=True)
    ref = _gd_ref(float(lam[0]), r, k)
    np.testing.assert_allclose(got, [ref], rtol=RTOL_GD, atol=0)
    d_ref = float(CTX.power(CTX.subtract(1, CTX.multiply(D(r), D(float(lam[0])))), k))
    np.testing.assert_allclose(
        gd_decay(lam, k, r, discrete=True), [d_ref], rtol=RTOL_GD, atol=1e-300
    )


def test_small_x_series_and_limits():
    # (1 - e^-x)/x = 1 - x/2 + x^2/6 - ...; at x = 1e-9 the cubic term is 4e-29.
    for x in (1e-9, 1e-12):
        np.testing.assert_allclose(
            gd_filter(np.array([x]), 1.0, 1.0), [1 - x / 2 + x * x / 6], rtol=2.2e-16
        )
    # GD: (1 - (1 - x)^k)/x = k - k(k-1)/2 x + ...
    x, k = 1e-10, 30
    np.testing.assert_allclose(
        gd_filter(np.array([x]), k, 1.0, discrete=True),
        [k - k * (k - 1) / 2 * x],
        rtol=1e-15,
    )
    lam = np.array([-1e-15, 0.0, 2.0])  # negative round-off clipped to 0
    np.testing.assert_array_equal(gd_filter(lam, np.inf, 3.0), [0.0, 0.0, 0.5])
    np.testing.assert_array_equal(gd_decay(lam, np.inf, 3.0), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(gd_filter(lam, 0.0, 3.0), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(gd_decay(lam, 0, 3.0, discrete=True), [1, 1, 1])
    np.testing.assert_allclose(gd_filter(lam, 4.0, 3.0)[:2], [12.0, 12.0])


def test_matrix_function_against_expm():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    lam = np.array([0.0, 1e-8, 0.1, 2.0, 30.0])
    A = (q * lam) @ q.T
    A = 0.5 * (A + A.T)
    w, V = np.linalg.eigh(A)
    s = 0.7
    got = (V * gd_filter(w, s, 1.0)) @ V.T
    # phi_t(A) = int_0^s e^{-u A} du, by expm of the block [[-A, I], [0, 0]].
    n = A.shape[0]
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n], block[:n, n:] = -A, np.eye(n)
    ref = scipy.linalg.expm(s * block)[:n, n:]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_jax_evaluation_traceable_and_differentiable():
    lam = np.array([0.0, 1e-9, 0.3, 2.0, 5.0, 1.9])  # 2.0: x = 1 at rate 0.5
    with x64_scope(np.float64):
        for discrete, t in ((False, 3.0), (True, 4), (True, 3)):
            ref = gd_filter(lam, t, 0.5, discrete=discrete)
            fn = functools.partial(gd_filter, time=t, rate=0.5, discrete=discrete)
            got = jax.jit(fn)(jnp.asarray(lam))
            np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0)
            grad = jax.grad(lambda v, f=fn: jnp.sum(f(v)))(jnp.asarray(lam))
            assert np.all(np.isfinite(np.asarray(grad)))
        # flow: d/dl (1 - e^{-s l})/l = (s l e^{-s l} - (1 - e^{-s l}))/l^2
        s, v = 1.5, 0.3
        ref = (s * v * math.exp(-s * v) - (1 - math.exp(-s * v))) / v**2
        g = jax.grad(lambda u: gd_filter(u, s, 1.0))(jnp.asarray(v))
        np.testing.assert_allclose(float(g), ref, rtol=1e-13)


def test_bad_time_refused():
    with pytest.raises(ValueError, match="time"):
        gd_filter(np.ones(2), -1.0, 1.0)
    with pytest.raises(ValueError, match="whole"):
        gd_filter(np.ones(2), 2.5, 1.0, discrete=True)
    with pytest.raises(TypeError, match="time"):
        gd_filter(np.ones(2), np.ones(2), 1.0)


def test_stability_check():
    check_gd_stability(1.0, 1.99, 1, [5], discrete=True)  # stable: silent
    check_gd_stability(1.0, 9.0, 1, [5], discrete=False)  # flow: always stable
    with pytest.warns(DivergenceWarning, match="diverges.*stability limit 2 / lam"):
        check_gd_stability(1.0, 2.0, 1, [5], discrete=True)
    with pytest.warns(RuntimeWarning, match="2 N_y / lambda_max = 1"):
        check_gd_stability(6.0, 12.0, 3, [0, 5], discrete=True)
    with pytest.raises(ValueError, match="times = inf"):
        check_gd_stability(6.0, 12.0, 3, [5, np.inf], discrete=True)


def test_largest_eigenvalue_against_eigvalsh():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    lam = np.concatenate([[10.0], np.linspace(0.0, 3.0, 39)])
    A = (q * lam) @ q.T
    A = 0.5 * (A + A.T)
    ref = np.linalg.eigvalsh(A).max()
    # (3/10)^(2 * 30) ~ 1e-31: the Rayleigh quotient is exact to round-off.
    np.testing.assert_allclose(largest_eigenvalue(lambda v: A @ v, 40), ref, rtol=1e-13)
    from ntkspec.operators import DenseOperator

    with x64_scope(np.float64):
        op = DenseOperator(jnp.asarray(A))
    np.testing.assert_allclose(largest_eigenvalue(op, 40), ref, rtol=1e-13)
    B = np.stack([A, 2.0 * A])
    got = largest_eigenvalue(
        lambda v: np.einsum("avw,aw->av", B, v), v0=np.ones((2, 40))
    )
    np.testing.assert_allclose(got, [ref, 2 * ref], rtol=1e-13)
    with pytest.raises(ValueError, match="iters"):
        largest_eigenvalue(op, 40, iters=0)
