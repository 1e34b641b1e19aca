"""networks.linearized_dynamics against a direct solve of the linear ODE in parameters.

The reference never forms the empirical NTK nor its eigenvectors: it takes the
Jacobian J of the flattened parameters (``jax.jacrev`` of ``net.apply``), then solves
the linearised model's training in parameter space, delta' = -(eta/N_y) J^T (J delta +
r_0), by ``scipy.linalg.expm`` of the augmented (P+1) x (P+1) matrix (gradient flow)
or by iterating the GD step in NumPy. Both are float64; the tolerance is the issue's
1e-10 relative to max |r_0| (expm and eigh are accurate to ~1e-13 here).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

import ntkspec
from ntkspec import networks

TOL = 1e-10


def _problem(n=7, width=6, out_dim=1):
    arch = ntkspec.ReluMLP(3, b_std=0.2)
    net = networks.mlp(
        arch, ntkspec.mappings.gaussian(0, 1, 4, 2.0), width, out_dim=out_dim,
        dtype=np.float64,
    )  # fmt: skip
    params = net.init(jax.random.PRNGKey(3))
    v = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    y = np.sin(2 * np.pi * v) + 0.3 * np.cos(6 * np.pi * v)
    return net, params, v, y


def _jacobian_and_r0(net, params, v, y):
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(params)

        def f(p):
            return net.apply(unravel(p), jnp.asarray(v))[:, 0]

        J = np.asarray(jax.jacrev(f)(flat), np.float64)
        r0 = np.asarray(f(flat), np.float64) - y[:, 0]
    return J, r0


def _flow_reference(J, r0, a, t):
    P = J.shape[1]
    A = np.zeros((P + 1, P + 1))
    A[:P, :P] = -a * J.T @ J
    A[:P, P] = -a * J.T @ r0
    z = scipy.linalg.expm(A * t)[:, P]  # z(0) = (0, ..., 0, 1)
    return r0 + J @ z[:P]


def test_gradient_flow_matches_expm_in_parameter_space():
    net, params, v, y = _problem()
    J, r0 = _jacobian_and_r0(net, params, v, y)
    lam_max = np.linalg.eigvalsh(J @ J.T)[-1]
    eta = 1.5 * y.size / lam_max
    times = np.array([0.0, 0.3, 2.0, 10.0])
    got = networks.linearized_dynamics(net, params, v, y, times, eta)
    assert got.residual.shape == (4, 7, 1)
    scale = np.max(np.abs(r0))
    for i, t in enumerate(times):
        want = _flow_reference(J, r0, eta / y.size, t)
        np.testing.assert_allclose(
            got.residual[i, :, 0], want, rtol=0, atol=TOL * scale
        )
    # The kernel is J J^T (empirical NTK at init), its eigenvalues ascending.
    np.testing.assert_allclose(
        got.kernel, J @ J.T, rtol=0, atol=TOL * np.max(np.abs(J @ J.T))
    )
    assert np.all(np.diff(got.eigenvalues) >= 0)
    # The limit: the part of r_0 outside the range of J (here none: n < P).
    inf = networks.linearized_dynamics(net, params, v, y, np.inf, eta)
    proj = J @ np.linalg.lstsq(J, r0, rcond=None)[0]
    np.testing.assert_allclose(inf.residual[0, :, 0], r0 - proj, atol=TOL * scale)


@pytest.mark.parametrize("implementation", ["jacobian", "structured"])
def test_gradient_descent_matches_iterated_steps(implementation):
    net, params, v, y = _problem()
    J, r0 = _jacobian_and_r0(net, params, v, y)
    lam_max = np.linalg.eigvalsh(J @ J.T)[-1]
    eta = 1.5 * y.size / lam_max  # 1 - eta lam_max / N_y = -0.5: oscillating top mode
    steps = [0, 1, 5, 17]
    got = networks.linearized_dynamics(
        net, params, v, y[:, 0], steps, eta, discrete=True,
        implementation=implementation,
    )  # fmt: skip
    a = eta / y.size
    delta, want = np.zeros(J.shape[1]), {}
    for k in range(max(steps) + 1):
        want[k] = r0 + J @ delta
        delta = delta - a * J.T @ (J @ delta + r0)
    scale = np.max(np.abs(r0))
    for i, k in enumerate(steps):
        np.testing.assert_allclose(
            got.residual[i, :, 0], want[k], rtol=0, atol=TOL * scale
        )
    assert got.discrete and got.rate == pytest.approx(a, rel=1e-15)


def test_bad_input():
    net, params, v, y = _problem()
    with pytest.raises(ValueError, match="times must be >= 0"):
        networks.linearized_dynamics(net, params, v, y, [-1.0], 0.1)
    with pytest.raises(ValueError, match="whole step counts"):
        networks.linearized_dynamics(net, params, v, y, [1.5], 0.1, discrete=True)
    with pytest.raises(ValueError, match="learning_rate"):
        networks.linearized_dynamics(net, params, v, y, [1.0], 0.0)
    net2, params2, _, _ = _problem(out_dim=2)
    with pytest.raises(ValueError, match="single-output"):
        networks.linearized_dynamics(net2, params2, v, np.hstack([y, y]), [1.0], 0.1)
    with pytest.warns(RuntimeWarning, match="diverges"):
        networks.linearized_dynamics(net, params, v, y, [3], 1e6, discrete=True)
