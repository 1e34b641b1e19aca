"""ntkspec.sharding and the ``mesh=`` keyword: sharded results equal single-device ones.

The checks run once, in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_
device_count=4`` (tests/sharding_worker.py prints a JSON report), so that the rest
of the suite keeps one device. Meshes come from ``jax.make_mesh`` (Explicit axes,
every check) and ``Mesh(devices, names)`` (Auto axes, the core checks). Each
reference is the same call without a mesh, in the same process; the tolerances are
the issue's (Gram 1e-13 relative, CG 1e-8, Lanczos 1e-10) and training must agree
step for step. Bad meshes are refused in this process (no devices needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import ntkspec
from ntkspec import sharding

ROOT = Path(__file__).resolve().parents[1]
MESHES = ("make_mesh", "Mesh")
GRAM_RTOL = 1e-13
CG_ATOL = 1e-8  # |x_sharded - x_single|, solutions of size O(1)-O(100)
LANCZOS_RTOL = 1e-10
#: float32 training: the psum over devices reorders the sums, a few float32 ulps
#: (measured ~1e-7 relative after 8 Adam steps).
TRAIN_RTOL = 1e-6


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharding_worker.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


pytestmark = pytest.mark.slow


def test_four_devices_and_both_axis_types(report):
    assert report["devices"] == 4
    assert report["axis_types/make_mesh"] == ["AxisType.Explicit"]
    assert report["axis_types/Mesh"] == ["AxisType.Auto"]
    assert report["warnings"] == []


@pytest.mark.parametrize("name", MESHES)
def test_gram_row_sharded_and_equal(report, name):
    r = report[f"kernels/{name}"]
    axis = "x" if name == "make_mesh" else "dev"
    for k in ("ntk", "nngp"):
        assert r[f"{k}_gram_rel"] <= GRAM_RTOL
        assert r[f"{k}_is_jax_array"]
        assert r[f"{k}_spec"] == [axis, "None"]
        assert r[f"{k}_shard_rows"] == [11, 11, 11, 11]
    assert r["ntk_cross_rel"] <= GRAM_RTOL
    assert r["ntk_raw_rel"] <= GRAM_RTOL


@pytest.mark.parametrize("name", MESHES)
def test_kernel_regression_paths(report, name):
    r = report[f"regression/{name}"]
    solvers = ("cholesky", "blocked", "pcg", "fft") if name == "make_mesh" else (
        "blocked", "pcg",
    )  # fmt: skip
    for s in solvers:
        assert r[f"{s}_diff"] <= CG_ATOL, s
    for s in ("cholesky", "blocked"):
        if f"{s}_devices" in r:
            assert r[f"{s}_devices"] == [1, 4]
            assert r[f"{s}_converged"]
    assert r["pcg_solver"] == ["pcg", "pcg"]
    assert r["pcg_devices"] == 4
    if name == "make_mesh":
        assert r["fft_solver"] == ["fft", "fft"]


@pytest.mark.parametrize("name", MESHES)
def test_lanczos_dynamics_inverse(report, name):
    r = report[f"spectra/{name}"]
    assert r["lanczos_rel"] <= LANCZOS_RTOL
    if name == "make_mesh":
        assert r["dynamics_diff"] <= CG_ATOL
        assert r["inverse_diff"] <= CG_ATOL


@pytest.mark.parametrize("name", MESHES)
def test_sharded_operators(report, name):
    r = report[f"operators/{name}"]
    # 8 x 8 x 6 Toeplitz grid: one channel sharded along axis 0 (slab), 6 channels
    # batched over the devices.
    assert r["grid3d_c1_layout"] == "slab"
    assert r["grid3d_c1_rel"] <= 1e-14
    assert r["grid3d_vector_rel"] <= 1e-14
    if name == "make_mesh":
        assert r["grid3d_c3_layout"] == "slab"
        assert r["grid3d_c6_layout"] == "channels"
        assert r["grid3d_c3_rel"] <= 1e-14
        assert r["grid3d_c6_rel"] <= 1e-14
    assert r["blocked_rel"] <= 1e-14
    assert r["cg_converged"] == [True, True]
    assert r["cg_diff"] <= CG_ATOL


@pytest.mark.parametrize("name", MESHES)
def test_blocked_matvec_memory_per_device(report, name):
    """Compiled temp memory of a sharded blocked matvec: O(block N / D), not the Gram.

    ``memory_analysis()`` of the compiled matvec is per device. Bound: two float64
    arrays of one device block (ceil(b/D) x N) plus one (N, c + d) array (gathered
    output, corrections); and at most 0.3 of the one-device matvec's (1/D = 0.25 and
    the vectors).
    """
    r = report[f"operators/{name}"]
    sz = r["matvec_sizes"]
    n, b, dev, c, d = sz["n"], sz["block"], sz["devices"], sz["c"], sz["d"]
    per_block = -(-b // dev)
    bound = 8 * (2 * per_block * n + n * (c + d))
    temp = r["matvec_temp_bytes"]
    assert temp["sharded"] <= bound, (temp, bound)
    assert temp["sharded"] <= 0.3 * temp["single"], temp
    assert temp["sharded"] < 8 * n * n / dev  # far below the Gram's share


@pytest.mark.parametrize("name", MESHES)
def test_data_parallel_training_step_for_step(report, name):
    r = report[f"training/{name}"]
    assert r["dtype"] == "float32"
    assert r["step_losses_rel"] <= TRAIN_RTOL
    assert r["params_rel"] <= TRAIN_RTOL


def test_ensemble_vmapped_and_sharded(report):
    r = report["training/make_mesh"]
    assert r["ensemble_shape"] == [10, 3]  # 3 members on 4 devices (padded)
    assert r["ensemble_losses_rel"] <= TRAIN_RTOL
    assert r["ensemble_member_rel"] <= TRAIN_RTOL


def test_mapping_ensemble_sharded_equals_unsharded(report):
    # networks.train_ensemble (Table 1's sweep: none / basic / Gaussian at once, 3
    # members on 4 devices) with a mesh takes the same steps as without one.
    r = report["training/make_mesh"]
    assert r["mapping_ensemble_devices"] == 4
    assert r["mapping_ensemble_losses_rel"] <= TRAIN_RTOL
    assert r["mapping_ensemble_params_rel"] <= TRAIN_RTOL


def test_bad_meshes_in_subprocess(report):
    r = report["bad_input"]
    assert r["mesh_2d"][0] == "ValueError" and "mesh must be a 1-D" in r["mesh_2d"][1]
    assert r["device_list"][0] == "TypeError" and "mesh" in r["device_list"][1]
    assert r["int"][0] == "TypeError"
    assert (
        r["indivisible"][0] == "ValueError" and "multiple of 4" in r["indivisible"][1]
    )
    assert r["kernel_regression"][0] == "TypeError"
    assert r["spectrum"][0] == "ValueError"


# ------------------------------------------------------------------------------------
# In this process (one device): validation and the helpers.
# ------------------------------------------------------------------------------------


def test_check_mesh_here():
    assert sharding.check_mesh(None) is None
    mesh = Mesh(np.array(jax.devices()[:1]), ("any_name",))
    assert sharding.check_mesh(mesh) is mesh
    assert sharding.device_count(mesh) == 1 and sharding.device_count(None) == 1
    with pytest.raises(TypeError, match="mesh must be None or a 1-D"):
        sharding.check_mesh(jax.devices())
    two = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b"))
    with pytest.raises(ValueError, match="mesh must be a 1-D mesh"):
        sharding.check_mesh(two)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: ntkspec.ntk(ntkspec.ReluMLP(2), np.ones((4, 2)), mesh=m),
        lambda m: ntkspec.kernel_regression(
            ntkspec.ReluMLP(2), ntkspec.mappings.basic(1), np.ones((4, 1)),
            np.ones(4), np.ones((4, 1)), mesh=m,
        ),
        lambda m: ntkspec.spectrum(
            ntkspec.ReluMLP(2), ntkspec.mappings.basic(1), ntkspec.Grid((4,)), mesh=m
        ),
        lambda m: ntkspec.gd_dynamics(
            ntkspec.ReluMLP(2), ntkspec.mappings.basic(1), ntkspec.Grid((4,)),
            np.ones(4), ntkspec.Grid((4,)), [1.0], 0.1, mesh=m,
        ),
    ],
)  # fmt: skip
def test_entry_points_refuse_bad_mesh(call):
    with pytest.raises(TypeError, match="mesh"):
        call("x")
    two = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b"))
    with pytest.raises(ValueError, match="mesh"):
        call(two)


def test_one_device_mesh_equals_no_mesh():
    mesh = Mesh(np.array(jax.devices()[:1]), ("d",))
    arch = ntkspec.ReluMLP(3)
    x = np.random.default_rng(0).uniform(size=(6, 2))
    got = ntkspec.ntk(arch, x, mesh=mesh)
    np.testing.assert_allclose(got, ntkspec.ntk(arch, x), rtol=GRAM_RTOL, atol=0)


def test_pad_rows_and_sizes():
    x = np.arange(10.0).reshape(5, 2)
    p = sharding.pad_rows(x, 4)
    assert p.shape == (8, 2)
    np.testing.assert_array_equal(p[5:], np.repeat(x[-1:], 3, axis=0))
    assert sharding.padded_size(8, 4) == 8 and sharding.device_block(10, None) == 10


# ------------------------------------------------------------------------------------
# shard(operator, mesh): dispatch on the operator type (one device, in this process).
# ------------------------------------------------------------------------------------


def _one_device_mesh():
    return Mesh(np.array(jax.devices()[:1]), ("d",))


class _Unregistered:
    shape = (3, 3)

    def matvec(self, v):
        return v


def test_shard_refuses_an_unregistered_operator_type_by_name():
    op = _Unregistered()
    assert sharding.shard(op, None) is op  # no mesh: nothing to place
    msg = r"operator of type _Unregistered on a mesh: no sharding is registered"
    with pytest.raises(TypeError, match=msg):
        sharding.shard(op, _one_device_mesh())
    with pytest.raises(TypeError, match=r"register\(int\)"):
        sharding.shard_operator(3, _one_device_mesh())
    with pytest.raises(TypeError, match="mesh must be None or a 1-D"):
        sharding.shard(op, "x")


def test_shard_dispatches_per_type_and_recurses_into_compositions():
    """Each operator type of ntkspec.operators has its own registration; a
    composition shards its inner operator. Matvecs equal the unsharded ones (one
    device: the same sums) within 1e-14 relative."""
    from ntkspec import operators

    default = sharding.shard.dispatch(object)
    for t in (
        operators.BlockedGramOperator,
        operators.GridKernelOperator,
        operators.DenseOperator,
        operators.Shifted,
        operators.GridTestTrainOperator,
        operators.ComposedOperator,
        sharding.ShardedDense,
    ):
        assert sharding.shard.dispatch(t) is not default, t
    mesh = _one_device_mesh()
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 5))
    dense = operators.DenseOperator(m @ m.T)
    shifted = operators.Shifted(dense, 0.5)
    got = sharding.shard(shifted, mesh)
    assert isinstance(got, operators.Shifted)
    assert isinstance(got.operator, sharding.ShardedDense)
    assert sharding.shard(got.operator, mesh) is got.operator  # already sharded
    v = rng.normal(size=5)
    want = (m @ m.T) @ v + 0.5 * v  # independent: NumPy
    np.testing.assert_allclose(np.asarray(got.matvec(v)), want, rtol=1e-14, atol=1e-14)


def test_shard_register_adds_a_type_without_editing_a_ladder():
    class Doubled:
        def __init__(self, base):
            self.base = base

    @sharding.shard.register(Doubled)
    def _(op, mesh):
        return Doubled(sharding.shard(op.base, mesh))

    mesh = _one_device_mesh()
    from ntkspec import operators

    got = sharding.shard(Doubled(operators.DenseOperator(np.eye(2))), mesh)
    assert isinstance(got.base, sharding.ShardedDense)


# ------------------------------------------------------------------------------------
# The deprecated sharding.train_ensemble (the call form of networks.ensemble.
# train_stacked).
# ------------------------------------------------------------------------------------


def test_deprecated_train_ensemble_alias_warns_and_keeps_its_call_form():
    """Gradient descent on the quadratic sum((p - d)^2) / 2, member by member, has
    the closed form p_k = d + (1 - lr)^k (p_0 - d) and losses
    (1 - lr)^(2k) |p_0 - d|^2 / 2: the reference. float32: rtol 1e-6."""
    import jax.numpy as jnp
    import optax

    from ntkspec import networks

    p0 = jnp.asarray([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]], jnp.float32)
    d = jnp.asarray([[0.0, 1.0], [1.0, 1.0], [-2.0, 2.0]], jnp.float32)
    lr, steps = 0.3, 4

    def loss_fn(p, data):
        return 0.5 * jnp.sum((p - data) ** 2)

    with pytest.warns(DeprecationWarning, match="sharding.train_ensemble is deprecat"):
        p, losses = sharding.train_ensemble(
            loss_fn, p0, d, steps=steps, optimizer=optax.sgd(lr)
        )
    k = np.arange(steps)[:, None]
    gap = np.asarray(p0 - d, np.float64)
    want_losses = 0.5 * (1 - lr) ** (2 * k) * np.sum(gap**2, axis=1)[None, :]
    want_p = np.asarray(d, np.float64) + (1 - lr) ** steps * gap
    np.testing.assert_allclose(np.asarray(losses), want_losses, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(p), want_p, rtol=1e-6, atol=1e-7)
    # The same call without the alias: identical numbers, no warning.
    p2, losses2 = networks.train_stacked(
        loss_fn, p0, d, steps=steps, optimizer=optax.sgd(lr)
    )
    np.testing.assert_array_equal(np.asarray(p2), np.asarray(p))
    np.testing.assert_array_equal(np.asarray(losses2), np.asarray(losses))
