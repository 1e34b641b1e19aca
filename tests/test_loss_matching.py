import math

import numpy as np
import pytest

from ntkspec import gd_dynamics, kernels, loss_matching, mappings

# closed forms against a float64 root search on log t (brentq, rtol ~1e-10)
TOL = dict(rtol=1e-9, atol=0)


def test_equal_eigenvalues_closed_form():
    # L(t) = e^{-2 rate lam t} S / (n c)  =>  t* = ln(S / (n c L)) / (2 rate lam)
    lam = np.array([3.0, 3.0])
    r = np.array([[1.0, 2.0], [0.5, 1.0]])
    rate, target = 0.25, 0.1
    s = float((r**2).sum())
    want = math.log(s / (r.size * target)) / (2 * rate * 3.0)
    m = loss_matching.loss_matched_time(lam, r, target, rate=rate)
    assert m.status == "matched"
    np.testing.assert_allclose(m.time, want, **TOL)
    np.testing.assert_allclose(m.train_mse, target, **TOL)


def test_two_eigenvalues_quadratic_closed_form():
    # lam = (1, 2): n L = a u + b u^2 with u = e^{-2t}, a quadratic in u
    a, b, n, target = 0.7, 1.9, 2, 0.05
    r = np.array([math.sqrt(a), math.sqrt(b)])
    u = (-a + math.sqrt(a * a + 4 * b * n * target)) / (2 * b)
    m = loss_matching.loss_matched_time([1.0, 2.0], r, target)
    np.testing.assert_allclose(m.time, -math.log(u) / 2, **TOL)


def test_out_of_range_targets():
    m = loss_matching.loss_matched_time([1.0, 2.0], [1.0, 1.0], 5.0)
    assert m.status == "above_initial" and m.time == 0.0
    # a null mode keeps L(inf) = 1/2: a smaller target is never reached
    m = loss_matching.loss_matched_time([0.0, 2.0], [1.0, 1.0], 0.1)
    assert m.status == "below_reachable" and math.isinf(m.time)
    with pytest.raises(ValueError, match="target_mse"):
        loss_matching.loss_matched_time([1.0], [1.0], 0.0)
    with pytest.raises(ValueError, match="eigenvalues"):
        loss_matching.loss_matched_time([-1.0], [1.0], 0.1)


def test_tiny_dense_problem_against_the_2x2_closed_form_and_gd_dynamics():
    # two points: the Gram [[p, q], [q, p]] has eigenpairs p +- q, (1, +-1)/sqrt 2
    arch = kernels.ReluMLP(3, b_std=0.1)
    mapping = mappings.basic(1)
    x = np.array([[0.1], [0.35]])
    y = np.array([0.8, 0.2])
    x_test = np.array([[0.2], [0.6]])
    K = np.asarray(kernels.ntk(arch, mapping(x)), np.float64)
    p, q = K[0, 0], K[0, 1]
    a = ((y[0] + y[1]) / math.sqrt(2)) ** 2  # mode p + q
    b = ((y[0] - y[1]) / math.sqrt(2)) ** 2  # mode p - q
    target = 0.02

    # n L = a e^{-2(p+q)t/n} + b e^{-2(p-q)t/n} (rate 1/N_y, N_y = 2): solve by
    # bisection on the closed form, independently of the module's search
    def closed(t):
        return (a * math.exp(-(p + q) * t) + b * math.exp(-(p - q) * t)) / 2

    lo, hi = 0.0, 1.0
    while closed(hi) > target:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if closed(mid) > target else (lo, mid)
    f_test, m = loss_matching.loss_matched_prediction(
        arch, mapping, x, y, x_test, target
    )
    np.testing.assert_allclose(m.time, 0.5 * (lo + hi), rtol=1e-9, atol=0)
    f_tr, f_te = gd_dynamics(arch, mapping, x, y, x_test, [m.time], 1.0)
    np.testing.assert_allclose(np.mean((f_tr[0] - y) ** 2), target, rtol=1e-8, atol=0)
    np.testing.assert_allclose(f_test, f_te[0], rtol=1e-12, atol=1e-14)
