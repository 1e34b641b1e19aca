"""Full-batch training: loss normalisation, optimiser steps, GD against NTK theory."""

import math

import jax
import numpy as np
import optax
import pytest

import ntkspec
from ntkspec import networks


def _grid1d(n):
    return np.linspace(0.0, 1.0, n, endpoint=False)[:, None]


def test_one_gd_step_of_a_linear_model_by_hand():
    # depth 1 = a linear model on the features: f = c x.W + s b, c = W_std / sqrt(d).
    # L = sum (f - y)^2 / (2 y.size): dL/dW = c x^T (f - y) / y.size,
    # dL/db = s sum(f - y) / y.size, per output column.
    arch = ntkspec.ReluMLP(1, W_std=1.5, b_std=0.5)
    mapping = ntkspec.mappings.basic(2)
    net = networks.mlp(arch, mapping, 7, out_dim=2, dtype=np.float64)
    params = jax.tree_util.tree_map(np.asarray, net.init(jax.random.PRNGKey(0)))
    rng = np.random.default_rng(0)
    v, y = rng.random((9, 2)), rng.standard_normal((9, 2))
    lr = 0.3
    res = networks.train(
        net, params, v, y, steps=1, learning_rate=lr, optimizer="gd", progress=False
    )
    x = np.asarray(mapping(v))
    c, s = 1.5 / math.sqrt(4), 0.5
    W, b = params[0]["W"], params[0]["b"]
    r = c * x @ W + s * b - y
    W1 = W - lr * c * x.T @ r / y.size
    b1 = b - lr * s * r.sum(0) / y.size
    np.testing.assert_allclose(
        np.asarray(res.params[0]["W"]), W1, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        np.asarray(res.params[0]["b"]), b1, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        res.history.losses["train"][0], 0.5 * np.mean(r**2), rtol=1e-12
    )
    np.testing.assert_allclose(
        res.history.step_losses[0], 0.5 * np.mean(r**2), rtol=1e-12
    )


def test_first_adam_step_is_a_sign_step_and_blocks_do_not_change_the_gradient():
    arch = ntkspec.ReluMLP(3, b_std=0.1)
    mapping = ntkspec.mappings.gaussian(1, 2, 16, 2.0)
    net = networks.mlp(arch, mapping, 16, out_dim=3, output="sigmoid", dtype=np.float64)
    params = jax.tree_util.tree_map(np.asarray, net.init(jax.random.PRNGKey(1)))
    rng = np.random.default_rng(1)
    v, y = rng.random((37, 2)), rng.random((37, 3))
    lr = 1e-3
    one = networks.train(net, params, v, y, steps=1, learning_rate=lr, progress=False)
    # Adam's first update is -lr g / (|g| + eps) (bias corrections cancel): never more
    # than lr, and a full sign step lr wherever |g| >> eps = 1e-8.
    for p0, p1 in zip(params, one.params, strict=True):
        delta = np.abs(np.asarray(p1["W"]) - p0["W"])
        assert np.all(delta <= lr * (1 + 1e-9))
        assert np.mean(delta > 0.9 * lr) > 0.8
    # Row blocks (padded, masked) give the same full-batch trajectory.
    a = networks.train(
        net, params, v, y, steps=5, learning_rate=lr, progress=False, block_rows=37
    )
    b = networks.train(
        net, params, v, y, steps=5, learning_rate=lr, progress=False, block_rows=8
    )
    np.testing.assert_allclose(a.history.step_losses, b.history.step_losses, rtol=1e-12)
    for pa, pb in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(
            np.asarray(pa["W"]), np.asarray(pb["W"]), rtol=1e-9, atol=1e-12
        )


def test_history_records_evaluations_and_outputs():
    arch = ntkspec.ReluMLP(2)
    mapping = ntkspec.mappings.basic(1)
    net = networks.mlp(arch, mapping, 8)
    params = net.init(jax.random.PRNGKey(0))
    v = _grid1d(6)
    y = np.sin(2 * np.pi * v)
    res = networks.train(
        net,
        params,
        v,
        y,
        steps=7,
        learning_rate=0.01,
        eval_every=3,
        record_outputs=True,
        progress=False,
        eval_sets={"test": (v[:2] + 0.05, y[:2])},
        optimizer="gd",
    )
    h = res.history
    assert h.steps.tolist() == [0, 3, 6, 7]
    assert set(h.losses) == {"train", "test"} and h.losses["test"].shape == (4,)
    assert h.outputs["train"].shape == (4, 6, 1) and h.step_losses.shape == (7,)
    np.testing.assert_allclose(
        h.outputs["train"][0], np.asarray(net.apply(params, v)), rtol=1e-6
    )
    np.testing.assert_allclose(h.losses["train"][1:3], h.step_losses[[3, 6]], rtol=1e-5)
    assert h.device == jax.devices()[0].platform and h.stats["chunk_seconds"].shape == (
        3,
    )
    # an optax transformation is accepted as the optimiser
    res2 = networks.train(
        net, params, v, y[:, 0], steps=2, optimizer=optax.sgd(0.01), progress=False
    )
    assert res2.history.step_losses.shape == (2,)


def test_wide_network_gd_follows_gd_dynamics():
    # GD on a wide network against the linearised dynamics from the network's own
    # outputs at step 0: f_train(t) = y + (I - eta Theta / N_y)^t (f_train(0) - y), and
    # at test points through Theta_*X Theta^-1. Finite width perturbs Theta by
    # O(width^-1/2) at init (and moves it by O(width^-1/2) during training), so the
    # trajectories differ by O(width^-1/2) of the initial residual. Measured at width
    # 2048, seeds 0-2: train gap <= 0.0034, test gap 0.013-0.033 (0.039-0.068 at width
    # 512, so it does shrink with width); the bound 0.06 ~ 3/sqrt(2048) holds them with
    # a margin of ~2.
    arch = ntkspec.ReluMLP(3, b_std=0.1)
    mapping = ntkspec.mappings.power_law(8, 1.0, normalize=True)
    v_all = _grid1d(32)
    x_tr, x_te = v_all[::4], v_all[2::4]
    y = np.cos(2 * np.pi * x_tr[:, 0]) + 0.5 * np.sin(6 * np.pi * x_tr[:, 0])
    net = networks.mlp(arch, mapping, 2048, dtype=np.float64)
    params = net.init(jax.random.PRNGKey(0))
    theta = np.asarray(ntkspec.ntk(arch, mapping(x_tr)))
    n = y.size
    lr = n / np.linalg.eigvalsh(theta).max()  # top mode learned in one step
    steps = 60
    res = networks.train(
        net,
        params,
        x_tr,
        y,
        steps=steps,
        learning_rate=lr,
        optimizer="gd",
        eval_every=20,
        record_outputs=True,
        eval_sets={"test": (x_te, np.zeros(len(x_te)))},
        progress=False,
    )
    f_tr = res.history.outputs["train"][:, :, 0]
    f_te = res.history.outputs["test"][:, :, 0]
    # independent reference (dense numpy, discrete GD in function space)
    k_st = np.asarray(ntkspec.ntk(arch, mapping(x_te), mapping(x_tr)))
    lam, Q = np.linalg.eigh(theta)
    r0 = Q.T @ (f_tr[0] - y)
    for i, t in enumerate(res.history.steps):
        decay = (1.0 - lr * lam / n) ** t
        ref_tr = y + Q @ (decay * r0)
        ref_te = f_te[0] + k_st @ Q @ ((1.0 - decay) / lam * -r0)
        scale = np.linalg.norm(f_tr[0] - y)
        assert np.linalg.norm(f_tr[i] - ref_tr) <= 0.06 * scale
        assert np.linalg.norm(f_te[i] - ref_te) <= 0.06 * scale
    # the library's gd_dynamics gives the same prediction (when present)
    gd = getattr(ntkspec, "gd_dynamics", None)
    if gd is None:
        from ntkspec.dynamics import gd_dynamics as gd
    th_tr, th_te = gd(
        arch,
        mapping,
        x_tr,
        y,
        x_te,
        res.history.steps,
        lr,
        f_train_0=f_tr[0],
        f_test_0=f_te[0],
        discrete=True,
    )
    scale = np.linalg.norm(f_tr[0] - y)
    assert np.max(np.linalg.norm(f_tr - th_tr, axis=1)) <= 0.06 * scale
    assert np.max(np.linalg.norm(f_te - th_te, axis=1)) <= 0.06 * scale
    # and it is a real learning run: the residual fell by more than half
    assert np.linalg.norm(f_tr[-1] - y) < 0.5 * scale


def test_bad_training_input():
    net = networks.mlp(ntkspec.ReluMLP(2), ntkspec.mappings.basic(2), 4)
    params = net.init(jax.random.PRNGKey(0))
    v, y = np.zeros((5, 2)), np.zeros((5, 1))
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        networks.train(net, params, v, y, steps=0, learning_rate=0.1)
    for lr in (0.0, -1.0):
        with pytest.raises(ValueError, match="learning_rate must be > 0"):
            networks.train(net, params, v, y, steps=1, learning_rate=lr)
    with pytest.raises(ValueError, match="learning_rate is required"):
        networks.train(net, params, v, y, steps=1)
    with pytest.raises(ValueError, match="learning_rate must be None"):
        networks.train(
            net, params, v, y, steps=1, learning_rate=0.1, optimizer=optax.sgd(0.1)
        )
    with pytest.raises(ValueError, match="optimizer"):
        networks.train(net, params, v, y, steps=1, learning_rate=0.1, optimizer="lbfgs")
    with pytest.raises(ValueError, match=r"v_train must have shape \(n, 2\)"):
        networks.train(net, params, np.zeros((5, 3)), y, steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"y_train must have shape \(5, out_dim\)"):
        networks.train(net, params, v, np.zeros((4, 1)), steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="out_dim = 1"):
        networks.train(net, params, v, np.zeros((5, 3)), steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="eval_every"):
        networks.train(net, params, v, y, steps=1, learning_rate=0.1, eval_every=0)
    with pytest.raises(ValueError, match="finite"):
        networks.train(
            net, params, v, np.full((5, 1), np.inf), steps=1, learning_rate=0.1
        )
