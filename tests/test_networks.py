"""Finite MLPs: initialisation statistics, the empirical NTK by hand and wide."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkspec
from ntkspec import networks

# float64 networks are compared with float64 references; float32 with looser tolerances.
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=1e-6)}


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _grid1d(n):
    return np.linspace(0.0, 1.0, n, endpoint=False)[:, None]


# --------------------------------------------------------------------------------------
# Initialisation statistics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_init_statistics_match_parameterization(parameterization):
    width = 1024
    arch = ntkspec.ReluMLP(
        3,
        W_std=1.7,
        b_std=0.3,
        parameterization=parameterization,
        width=width if parameterization == "standard" else None,
    )
    mapping = ntkspec.mappings.gaussian(0, 2, 64, 3.0)  # n_0 = 128 features
    net = networks.mlp(arch, mapping, width, dtype=np.float64)
    params = _np(net.init(jax.random.PRNGKey(1)))
    assert [p["W"].shape for p in params] == [(128, width), (width, width), (width, 1)]
    # Weight moments over N draws: the sample variance of N(0, s^2) has std
    # s^2 sqrt(2/N) and the sample mean std s / sqrt(N); 6 standard errors leave ~1e-9
    # false alarms.
    for p in params:
        n_in = p["W"].shape[0]
        var = 1.0 if parameterization == "ntk" else 1.7**2 / n_in
        w = p["W"].ravel()
        assert abs(w.mean()) < 6 * math.sqrt(var / w.size)
        assert abs(w.var() - var) < 6 * var * math.sqrt(2 / w.size)
    # Pre-activations of layer 1 over the `width` units, for one input: the NNGP
    # variance sigma_w^2 |x|^2 / d + sigma_b^2 in both parameterizations.
    v = np.array([[0.3, 0.7]])
    x = np.asarray(mapping(v))
    with jax.enable_x64(True):  # the network's own layer stack, float64
        _, kept = net.apply.spec.layers(params, jnp.asarray(x), keep=True)
    z1 = np.asarray(kept[0][1]).ravel()
    var_z = 1.7**2 * float(x[0] @ x[0]) / x.shape[1] + 0.3**2
    assert abs(z1.mean()) < 6 * math.sqrt(var_z / width)
    assert abs(z1.var() - var_z) < 6 * var_z * math.sqrt(2 / width)
    # ... and it agrees with the analytic NNGP of a one-layer network on that input.
    k1 = float(ntkspec.nngp(ntkspec.ReluMLP(1, W_std=1.7, b_std=0.3), x)[0, 0])
    np.testing.assert_allclose(k1, var_z, rtol=1e-12)


def test_stax_initialisation_statistics():
    arch = ntkspec.ReluMLP(4)
    net = networks.mlp(
        arch,
        ntkspec.mappings.basic(2),
        512,
        out_dim=3,
        output="sigmoid",
        initialization="stax",
        dtype=np.float64,
    )
    params = _np(net.init(jax.random.PRNGKey(2)))
    for p in params:
        fan_in, fan_out = p["W"].shape
        var = 2.0 / (fan_in + fan_out)  # Glorot normal (truncated, rescaled to var)
        w = p["W"].ravel()
        assert abs(w.var() - var) < 6 * var * math.sqrt(2 / w.size)
        assert np.max(np.abs(w)) <= 2.0 * math.sqrt(var) / 0.8796 + 1e-12  # truncated
        b = p["b"]
        if b.size >= 256:  # hidden layers: N(0, 0.01^2)
            assert abs(b.var() - 1e-4) < 6 * 1e-4 * math.sqrt(2 / b.size)
    out = np.asarray(net.apply(params, np.random.default_rng(0).random((7, 2))))
    assert out.shape == (7, 3) and np.all((out > 0) & (out < 1))


# --------------------------------------------------------------------------------------
# Empirical NTK
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("implementation", ["jacobian", "structured"])
def test_empirical_ntk_width_one_by_hand(parameterization, implementation):
    # depth 2, width 1, basic 1D mapping (2 features): f = c2 relu(z1) w2 + s b2,
    # z1 = c1 x.w1 + s b1. Derivatives written out by hand.
    sw, sb = 1.3, 0.4
    arch = ntkspec.ReluMLP(
        2,
        W_std=sw,
        b_std=sb,
        parameterization=parameterization,
        width=1 if parameterization == "standard" else None,
    )
    mapping = ntkspec.mappings.basic(1)
    net = networks.mlp(arch, mapping, 1, dtype=np.float64)
    params = [
        {"W": np.array([[0.8], [-0.5]]), "b": np.array([0.2])},
        {"W": np.array([[1.1]]), "b": np.array([-0.3])},
    ]
    v = np.array([[0.1], [0.35], [0.6], [0.9]])
    x = np.asarray(mapping(v))
    if parameterization == "ntk":
        c1, c2, s = sw / math.sqrt(2), sw / 1.0, sb
    else:
        c1, c2, s = 1.0, 1.0, 1.0
    w1, b1, w2 = np.array([0.8, -0.5]), 0.2, 1.1
    z1 = c1 * x @ w1 + s * b1
    h = np.maximum(z1, 0.0)
    on = (z1 > 0).astype(float)
    # gradients per point: [df/dw1 (2), df/db1, df/dw2, df/db2]
    grads = np.column_stack(
        [
            (c2 * w2 * on * c1)[:, None] * x,
            c2 * w2 * on * s,
            c2 * h,
            np.full(len(v), s),
        ]
    )
    expected = grads @ grads.T
    got = np.asarray(
        networks.empirical_ntk(net, params, v, implementation=implementation)
    )
    np.testing.assert_allclose(got, expected, **TOL[np.float64])
    f = np.asarray(net.apply(params, v))[:, 0]
    np.testing.assert_allclose(f, c2 * h * w2 + s * -0.3, **TOL[np.float64])


def test_apply_jit_matches_eager_and_batched_ntk_matches_unbatched():
    arch = ntkspec.ReluMLP(3, b_std=0.2)
    mapping = ntkspec.mappings.power_law(8, 1.0, normalize=True)
    net = networks.mlp(arch, mapping, 32, out_dim=2, output="sigmoid", dtype=np.float64)
    params = net.init(jax.random.PRNGKey(3))
    v = _grid1d(11)
    with jax.enable_x64(True):
        eager = np.asarray(net.apply(params, jnp.asarray(v)))
        jitted = np.asarray(jax.jit(net.apply)(params, jnp.asarray(v)))
    np.testing.assert_allclose(jitted, eager, **TOL[np.float64])
    full = np.asarray(networks.empirical_ntk(net, params, v, v[:5]))
    for impl in ("jacobian", "structured"):
        batched = np.asarray(
            networks.empirical_ntk(
                net, params, v, v[:5], batch_size=3, implementation=impl
            )
        )
        np.testing.assert_allclose(batched, full, **TOL[np.float64])
    # one output vs the mean over outputs
    k0 = np.asarray(networks.empirical_ntk(net, params, v, output=0))
    k1 = np.asarray(
        networks.empirical_ntk(net, params, v, output=1, implementation="structured")
    )
    mean = np.asarray(networks.empirical_ntk(net, params, v))
    np.testing.assert_allclose((k0 + k1) / 2, mean, **TOL[np.float64])


def test_float32_network_close_to_float64():
    arch = ntkspec.ReluMLP(3, b_std=0.1)
    mapping = ntkspec.mappings.basic(1)
    v = _grid1d(6)
    net64 = networks.mlp(arch, mapping, 64, dtype=np.float64)
    params = _np(net64.init(jax.random.PRNGKey(0)))
    k64 = networks.empirical_ntk(net64, params, v)
    k32 = networks.empirical_ntk(networks.mlp(arch, mapping, 64), params, v)
    assert k32.dtype == jnp.float32 and k64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(k32), np.asarray(k64), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_monte_carlo_empirical_ntk_at_width_4096_matches_analytic():
    # S independent networks of width 4096: the mean of the empirical NTKs is within
    # t * s / sqrt(S) of its expectation (s the sample std over seeds, t a Student-t
    # quantile with S-1 dof at a per-entry false-alarm rate ~1e-5, Bonferroni over the
    # 21 distinct entries), and the expectation differs from the analytic NTK by
    # O(1/width) (Hanin & Nica 2019): an allowance of 10/width relative to the scale.
    width, seeds = 4096, 6
    arch = ntkspec.ReluMLP(3, b_std=0.2)
    mapping = ntkspec.mappings.power_law(16, 1.0, normalize=True)
    v = _grid1d(6)
    net = networks.mlp(arch, mapping, width, dtype=np.float32)
    samples = np.stack(
        [
            np.asarray(
                networks.empirical_ntk(
                    net, net.init(jax.random.PRNGKey(s)), v, implementation="structured"
                ),
                np.float64,
            )
            for s in range(seeds)
        ]
    )
    theory = np.asarray(ntkspec.ntk(arch, mapping(v)))
    mean, sd = samples.mean(0), samples.std(0, ddof=1)
    t_quantile = 9.68  # scipy.stats.t.ppf(1 - 1e-5 / 2, df=5)
    scale = np.abs(theory).max()
    bound = t_quantile * sd / math.sqrt(seeds) + 10.0 / width * scale
    assert np.all(np.abs(mean - theory) <= bound)
    # the fluctuations themselves are O(width^-1/2): one sample's relative error
    rel = np.linalg.norm(samples[0] - theory) / np.linalg.norm(theory)
    assert rel < 5.0 / math.sqrt(width)


def test_different_keys_give_different_initial_empirical_kernels():
    """Issue 27: independent initialisations are independent experiments.

    At width 32 one network's empirical NTK differs from the analytic one by
    O(width^-1/2) ~ 0.2 relative, so two keys' kernels differ by about as much; 0.02
    leaves a wide margin. The same key gives the same kernel, bit for bit.
    """
    arch = ntkspec.ReluMLP(3, b_std=0.2)
    net = networks.mlp(arch, ntkspec.mappings.basic(1), 32, dtype=np.float64)
    v = _grid1d(8)

    def kernel(seed):
        params = net.init(jax.random.PRNGKey(seed))
        return np.asarray(networks.empirical_ntk(net, params, v))

    k0, k1 = kernel(0), kernel(1)
    np.testing.assert_array_equal(kernel(0), k0)
    assert np.linalg.norm(k1 - k0) / np.linalg.norm(k0) > 0.02
    # ... and their spectra too, mode by mode (the cause of per-mode rate gaps).
    lam0, lam1 = np.linalg.eigvalsh(k0), np.linalg.eigvalsh(k1)
    assert np.max(np.abs(lam1 - lam0) / lam0[-1]) > 1e-3


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_input_clear_errors():
    arch = ntkspec.ReluMLP(3)
    mapping = ntkspec.mappings.basic(2)
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        networks.mlp(arch, mapping, 0)
    with pytest.raises(TypeError, match="width"):
        networks.mlp(arch, mapping, 2.5)
    with pytest.raises(ValueError, match="arch.width"):
        networks.mlp(ntkspec.ReluMLP(3, width=64), mapping, 32)
    with pytest.raises(ValueError, match="out_dim"):
        networks.mlp(arch, mapping, 8, out_dim=0)
    with pytest.raises(ValueError, match="output"):
        networks.mlp(arch, mapping, 8, output="tanh")
    with pytest.raises(ValueError, match="initialization"):
        networks.mlp(arch, mapping, 8, initialization="he")
    with pytest.raises(TypeError, match="arch"):
        networks.mlp("relu", mapping, 8)
    with pytest.raises(TypeError, match="mapping"):
        networks.mlp(arch, np.eye(2), 8)
    with pytest.raises(ValueError, match="dim"):
        networks.mlp(arch, ntkspec.mappings.identity(), 8)
    net = networks.mlp(arch, mapping, 8)
    params = net.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        net.apply(params, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"v1 must have shape \(n, 2\)"):
        networks.empirical_ntk(net, params, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="implementation"):
        networks.empirical_ntk(net, params, np.zeros((4, 2)), implementation="fast")
    with pytest.raises(ValueError, match="output must be < out_dim"):
        networks.empirical_ntk(net, params, np.zeros((4, 2)), output=1)
    with pytest.raises(ValueError, match="finite"):
        net.apply(params, np.full((2, 2), np.nan))
    generic = networks.Network(net.init, lambda p, v: net.apply(p, v))
    with pytest.raises(TypeError, match="structured"):
        networks.empirical_ntk(
            generic, params, np.zeros((2, 2)), implementation="structured"
        )


# --------------------------------------------------------------------------------------
# Ensembles (Table 1's sweep in one call).
# --------------------------------------------------------------------------------------


def _max_rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize(
    "init, arch, optimizer",
    [
        ("stax", ntkspec.ReluMLP(3), "adam"),
        # "ntk" parameterization: c_1 = W_std / sqrt(n_0) differs per member.
        (
            "arch",
            ntkspec.ReluMLP(3, W_std=1.3, b_std=0.2, parameterization="ntk"),
            "gd",
        ),
    ],
)
def test_train_ensemble_members_equal_their_own_training(init, arch, optimizer):
    # Reference: each member trained alone by train() (full batch, one row block).
    # Zero-padded features add exact zeros, so only the order of sums may differ:
    # float64 agreement to 1e-12 relative after 15 steps.
    maps = [
        ntkspec.mappings.identity(2),
        ntkspec.mappings.basic(2),
        ntkspec.mappings.positional(2, 3, scale=2.0),
        ntkspec.mappings.gaussian(1, 2, 12, 3.0),
    ]
    rng = np.random.default_rng(0)
    v = rng.uniform(size=(40, 2))
    y = rng.uniform(size=(40, 3))
    rates = [1e-2, 1e-2, 3e-3, 1e-3] if optimizer == "adam" else [0.5, 0.5, 0.2, 0.1]
    with jax.enable_x64(True):
        nets = [
            networks.mlp(arch, m, 24, out_dim=3, initialization=init, dtype=np.float64)
            for m in maps
        ]
        inits = [n.init(jax.random.PRNGKey(i)) for i, n in enumerate(nets)]
        res = networks.train_ensemble(
            nets,
            inits,
            v,
            y,
            steps=15,
            learning_rate=rates,
            optimizer=optimizer,
            eval_sets={"test": (v[:7] + 0.01, y[:7])},
        )
        assert res.step_losses.shape == (15, 4)
        assert res.stats["members"] == 4 and res.stats["devices"] == 1
        for i, net in enumerate(nets):
            alone = networks.train(
                net,
                inits[i],
                v,
                y,
                steps=15,
                learning_rate=rates[i],
                optimizer=optimizer,
                block_rows=40,
                progress=False,
            )
            leaves = jax.tree_util.tree_leaves(res.params[i])
            ref = jax.tree_util.tree_leaves(alone.params)
            assert [a.shape for a in leaves] == [b.shape for b in ref]
            for a, b in zip(leaves, ref, strict=True):
                assert _max_rel(a, b) <= 1e-12
            assert _max_rel(res.step_losses[:, i], alone.history.step_losses) <= 1e-12
            out = np.asarray(net.apply(alone.params, v[:7] + 0.01))
            assert _max_rel(res.outputs["test"][i], out) <= 1e-12
        # Training moved every member.
        assert np.all(res.step_losses[-1] < res.step_losses[0])


def test_train_ensemble_per_member_targets_and_bad_input():
    arch = ntkspec.ReluMLP(2)
    maps = [ntkspec.mappings.basic(1), ntkspec.mappings.positional(1, 2, scale=1.0)]
    nets = [networks.mlp(arch, m, 8) for m in maps]
    inits = [n.init(jax.random.PRNGKey(0)) for n in nets]
    v = np.linspace(0, 1, 10)[:, None]
    ys = np.stack([np.sin(3 * v), np.cos(3 * v)])
    res = networks.train_ensemble(nets, inits, v, ys, steps=3, learning_rate=1e-2)
    # Member 1 on its own targets: its loss at step 0 is that of its initial network.
    f0 = np.asarray(nets[1].apply(inits[1], v), np.float64)
    assert res.step_losses[0, 1] == pytest.approx(
        0.5 * np.mean((f0 - ys[1]) ** 2), 1e-6
    )
    with pytest.raises(TypeError, match="nets"):
        networks.train_ensemble(
            [lambda p, v: v], inits[:1], v, ys[0], steps=1, learning_rate=1e-2
        )
    wider = networks.mlp(arch, maps[0], 16)
    with pytest.raises(ValueError, match=r"nets\[1\] must match"):
        networks.train_ensemble(
            [nets[0], wider], inits, v, ys[0], steps=1, learning_rate=1e-2
        )
    with pytest.raises(ValueError, match="learning_rate"):
        networks.train_ensemble(
            nets, inits, v, ys[0], steps=1, learning_rate=[1e-2, 1e-2, 1e-2]
        )
    with pytest.raises(ValueError, match="learning_rate"):
        networks.train_ensemble(nets, inits, v, ys[0], steps=1, learning_rate=-1.0)
    with pytest.raises(ValueError, match="params"):
        networks.train_ensemble(nets, inits[:1], v, ys[0], steps=1, learning_rate=1e-2)
    with pytest.raises(ValueError, match="steps"):
        networks.train_ensemble(nets, inits, v, ys[0], steps=0, learning_rate=1e-2)
    with pytest.raises(ValueError, match="optimizer"):
        networks.train_ensemble(
            nets, inits, v, ys[0], steps=1, learning_rate=1e-2, optimizer="lbfgs"
        )
    with pytest.raises(ValueError, match="E = 2"):
        networks.train_ensemble(
            nets, inits, v, np.stack([ys[0]] * 3), steps=1, learning_rate=1e-2
        )


def test_package_reexports_every_public_name_of_its_modules():
    from ntkspec.networks import (
        empirical,
        ensemble,
        linearized,
        modes,
        network,
        training,
    )

    for module in (network, empirical, training, ensemble, linearized, modes):
        for name in module.__all__:
            assert name in networks.__all__, (module.__name__, name)
            assert getattr(networks, name) is getattr(module, name)
    assert set(networks.__all__) == {
        n for m in (network, empirical, training, ensemble, linearized, modes)
        for n in m.__all__
    }  # fmt: skip
