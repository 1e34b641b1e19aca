"""Sharded vs single-device runs on 4 forced host devices; prints one JSON report.

Run by tests/test_sharding.py in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (set before JAX starts), so
the rest of the suite keeps one device. Every entry is a measured difference or a
fact; the tolerances are in the test.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

import ntkspec  # noqa: E402
from ntkspec import measurements, networks, operators, sharding, solvers  # noqa: E402
from ntkspec._numerics import x64_scope  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
ARCH = ntkspec.ReluMLP(3)
REPORT: dict = {}


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def meshes():
    devs = np.array(jax.devices())
    return {
        "make_mesh": jax.make_mesh((4,), ("x",)),
        "Mesh": Mesh(devs, ("dev",)),
    }


def kernels(name, mesh, rng):
    x = rng.uniform(size=(40, 2))
    mp = ntkspec.mappings.gaussian(0, 2, 16, 4.0)
    f = np.asarray(mp(x))
    f = np.concatenate([f, f[:4]])  # duplicate rows: exact pairs off the diagonal
    out = {}
    for kname, fn in (("ntk", ntkspec.ntk), ("nngp", ntkspec.nngp)):
        ref = np.asarray(fn(ARCH, f))
        got = fn(ARCH, f, mesh=mesh)
        out[f"{kname}_gram_rel"] = rel(got, ref)
        out[f"{kname}_spec"] = [str(a) for a in got.sharding.spec]
        out[f"{kname}_shard_rows"] = sorted(
            int(s.data.shape[0]) for s in got.addressable_shards
        )
        out[f"{kname}_is_jax_array"] = isinstance(got, jax.Array)
    f2 = f[:12]
    out["ntk_cross_rel"] = rel(
        ntkspec.ntk(ARCH, f, f2, mesh=mesh), ntkspec.ntk(ARCH, f, f2)
    )
    raw = rng.uniform(size=(16, 3))  # unequal norms: the exact recursion
    out["ntk_raw_rel"] = rel(ntkspec.ntk(ARCH, raw, mesh=mesh), ntkspec.ntk(ARCH, raw))
    REPORT[f"kernels/{name}"] = out


def regression(name, mesh, rng, full=True):
    out = {}
    mp = ntkspec.mappings.gaussian(1, 2, 16, 3.0)
    x = rng.uniform(size=(42, 2))  # not a multiple of 4: padded rows
    xt = rng.uniform(size=(10, 2))
    y = np.sin(3 * x[:, :1]) + x[:, 1:] ** 2
    y = np.concatenate([y, np.cos(2 * x[:, :1])], axis=1)
    for solver in ("cholesky", "blocked") if full else ("blocked",):
        kw = {"ridge": 1e-4, "solver": solver, "return_info": True}
        if solver == "blocked":
            kw["block_rows"] = 16
        ref, ri = ntkspec.kernel_regression(ARCH, mp, x, y, xt, **kw)
        got, gi = ntkspec.kernel_regression(ARCH, mp, x, y, xt, mesh=mesh, **kw)
        out[f"{solver}_diff"] = float(np.max(np.abs(got - ref)))
        out[f"{solver}_devices"] = [ri.devices, gi.devices]
        out[f"{solver}_converged"] = bool(gi.converged)
    g_tr, g_te = ntkspec.Grid((8, 8)), ntkspec.Grid((16, 16))
    img = rng.normal(size=(g_tr.size, 3))
    cases = (("pcg", mp), ("fft", ntkspec.mappings.basic(2)))
    for label, mapping in cases if full else cases[:1]:
        ref, ri = ntkspec.kernel_regression(
            ARCH, mapping, g_tr, img, g_te, ridge=1e-3, return_info=True
        )
        got, gi = ntkspec.kernel_regression(
            ARCH, mapping, g_tr, img, g_te, ridge=1e-3, return_info=True, mesh=mesh
        )
        out[f"{label}_diff"] = float(np.max(np.abs(got - ref)))
        out[f"{label}_solver"] = [ri.solver, gi.solver]
        out[f"{label}_devices"] = gi.devices
    REPORT[f"regression/{name}"] = out


def spectra_dynamics_inverse(name, mesh, rng, full=True):
    out = {}
    mp = ntkspec.mappings.gaussian(2, 2, 16, 3.0)
    grid = ntkspec.Grid((12, 12))
    ref = ntkspec.spectrum(ARCH, mp, grid, k=6, method="lanczos")
    got = ntkspec.spectrum(ARCH, mp, grid, k=6, method="lanczos", mesh=mesh)
    out["lanczos_rel"] = rel(got, ref)
    if not full:
        REPORT[f"spectra/{name}"] = out
        return
    g_tr, g_te = ntkspec.Grid((8, 8)), ntkspec.Grid((16, 16))
    y = rng.normal(size=(g_tr.size, 2))
    t = [0.0, 5.0, 50.0, np.inf]
    a = ntkspec.gd_dynamics(ARCH, mp, g_tr, y, g_te, t, 1.0, ridge=1e-3)
    b = ntkspec.gd_dynamics(ARCH, mp, g_tr, y, g_te, t, 1.0, ridge=1e-3, mesh=mesh)
    out["dynamics_diff"] = max(
        float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True)
    )
    g3 = ntkspec.Grid((8, 8))
    A = measurements.ct_projections(g3.shape, num_angles=4)
    f = rng.random((g3.size, 2))
    yy = A.to_scipy() @ f
    ref = ntkspec.inverse_regression(ARCH, mp, g3, A, yy, ridge=1e-4)
    got = ntkspec.inverse_regression(ARCH, mp, g3, A, yy, ridge=1e-4, mesh=mesh)
    out["inverse_diff"] = float(np.max(np.abs(got - ref)))
    REPORT[f"spectra/{name}"] = out


def operators_and_memory(name, mesh, rng, full=True):
    out = {}
    # A 3D Toeplitz grid, one channel: sharded along its first axis (slab layout).
    g = ntkspec.Grid((8, 8, 6))
    op = operators.grid_operator(ARCH, ntkspec.mappings.gaussian(4, 3, 16, 2.0), g)
    sop = sharding.shard_operator(op, mesh)
    for c in (1, 3, 6) if full else (1,):
        v = rng.normal(size=(g.size, c))
        out[f"grid3d_c{c}_rel"] = rel(sop.matvec(v), op.matvec(v))
        out[f"grid3d_c{c}_layout"] = sop.layout(c)
    v = rng.normal(size=g.size)
    out["grid3d_vector_rel"] = rel(sop.matvec(v), op.matvec(v))
    # Blocked Gram: CG, and the compiled matvec's memory per device.
    n, b = 256, 64
    f = np.asarray(ntkspec.mappings.gaussian(5, 2, 16, 3.0)(rng.uniform(size=(n, 2))))
    single = operators.blocked_gram(ARCH, f, block_rows=b)
    sharded = sharding.shard_operator(
        operators.blocked_gram(ARCH, f, block_rows=sharding.device_block(b, mesh)), mesh
    )
    y = rng.normal(size=(n, 2))
    s1 = solvers.cg(operators.Shifted(single, 1e-3), y, rtol=1e-12, max_iter=3000)
    s2 = solvers.cg(operators.Shifted(sharded, 1e-3), y, rtol=1e-12, max_iter=3000)
    out["cg_diff"] = float(np.max(np.abs(np.asarray(s1.value) - np.asarray(s2.value))))
    out["cg_converged"] = [bool(s1.converged), bool(s2.converged)]
    with x64_scope(np.float64):
        vj = jnp.asarray(y)

        def temp_bytes(o):
            mv = jax.jit(lambda o, v: o.matvec(v)).lower(o, vj).compile()
            return int(mv.memory_analysis().temp_size_in_bytes)

        out["matvec_temp_bytes"] = {
            "single": temp_bytes(single),
            "sharded": temp_bytes(sharded),
        }
    out["matvec_sizes"] = {"n": n, "block": b, "devices": 4, "d": f.shape[1], "c": 2}
    out["blocked_rel"] = rel(sharded.matvec(y), single.matvec(y))
    REPORT[f"operators/{name}"] = out


def training(name, mesh, rng, full=True):
    out = {}
    net = networks.mlp(ARCH, ntkspec.mappings.gaussian(6, 2, 16, 3.0), 32, out_dim=2)
    params = net.init(jax.random.key(0))
    x = rng.uniform(size=(70, 2)).astype(np.float32)
    y = np.stack([np.sin(4 * x[:, 0]), x[:, 1] ** 2], axis=1).astype(np.float32)
    kw = {"steps": 8, "learning_rate": 1e-2, "eval_every": 4, "block_rows": 32}
    kw["progress"] = False
    a = networks.train(net, params, x, y, **kw)
    b = networks.train(net, params, x, y, mesh=mesh, **kw)
    out["step_losses_rel"] = rel(b.history.step_losses, a.history.step_losses)
    out["params_rel"] = max(
        rel(p, q)
        for p, q in zip(
            jax.tree_util.tree_leaves(b.params),
            jax.tree_util.tree_leaves(a.params),
            strict=True,
        )
    )
    out["dtype"] = str(a.history.step_losses.dtype)
    if not full:
        REPORT[f"training/{name}"] = out
        return
    # Ensemble: 3 seeds (fewer than the devices), vmapped and sharded.
    keys = jax.random.split(jax.random.key(1), 3)
    stacked = jax.vmap(net.init)(keys)
    xs = jnp.asarray(np.stack([x] * 3))
    ys = jnp.asarray(np.stack([y, 2 * y, -y]))

    def loss_fn(p, data):
        xx, yy = data
        return jnp.mean((net.apply(p, xx) - yy) ** 2)

    opt = optax.adam(1e-2)
    p1, l1 = networks.ensemble.train_stacked(
        loss_fn, stacked, (xs, ys), steps=10, optimizer=opt
    )
    p2, l2 = networks.ensemble.train_stacked(
        loss_fn, stacked, (xs, ys), steps=10, optimizer=opt, mesh=mesh
    )
    out["ensemble_losses_rel"] = rel(l2, l1)
    out["ensemble_shape"] = list(l2.shape)
    # Member 1 alone, single device, the same steps.
    p0 = jax.tree_util.tree_map(lambda a: a[1:2], stacked)
    _, l0 = networks.ensemble.train_stacked(
        loss_fn, p0, (xs[1:2], ys[1:2]), steps=10, optimizer=opt
    )
    out["ensemble_member_rel"] = rel(l2[:, 1], l0[:, 0])
    # Table 1's sweep: one network per mapping (different input widths), one call.
    maps = [
        ntkspec.mappings.identity(2),
        ntkspec.mappings.basic(2),
        ntkspec.mappings.gaussian(0, 2, 8, 2.0),
    ]
    nets = [
        networks.mlp(ARCH, m, 16, out_dim=2, output="sigmoid", initialization="stax")
        for m in maps
    ]
    inits = [n.init(jax.random.PRNGKey(3 + i)) for i, n in enumerate(nets)]
    yy = np.abs(np.sin(3 * x[:, :1] + np.arange(2)))
    kw = dict(steps=8, learning_rate=[1e-2, 1e-2, 1e-3])
    e1 = networks.train_ensemble(nets, inits, x, yy, **kw)
    e2 = networks.train_ensemble(nets, inits, x, yy, mesh=mesh, **kw)
    out["mapping_ensemble_losses_rel"] = rel(e2.step_losses, e1.step_losses)
    out["mapping_ensemble_params_rel"] = max(
        rel(p, q)
        for a, b in zip(e2.params, e1.params, strict=True)
        for p, q in zip(
            jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True
        )
    )
    out["mapping_ensemble_devices"] = e2.stats["devices"]
    REPORT[f"training/{name}"] = out


def bad_input():
    out = {}
    devs = np.array(jax.devices()).reshape(2, 2)
    x = np.random.default_rng(0).uniform(size=(8, 2))
    cases = {
        "mesh_2d": Mesh(devs, ("a", "b")),
        "device_list": list(jax.devices()),
        "int": 4,
    }
    for label, mesh in cases.items():
        try:
            ntkspec.ntk(ARCH, x, mesh=mesh)
            out[label] = "no error"
        except (TypeError, ValueError) as e:
            out[label] = [type(e).__name__, str(e)]
    try:
        ntkspec.ntk(ARCH, x[:7], mesh=meshes()["Mesh"])
        out["indivisible"] = "no error"
    except ValueError as e:
        out["indivisible"] = ["ValueError", str(e)]
    for label, call in {
        "kernel_regression": lambda: ntkspec.kernel_regression(
            ARCH, ntkspec.mappings.basic(2), x, x[:, 0], x, mesh="x"
        ),
        "spectrum": lambda: ntkspec.spectrum(
            ARCH, ntkspec.mappings.basic(2), x, mesh=cases["mesh_2d"]
        ),
    }.items():
        try:
            call()
            out[label] = "no error"
        except (TypeError, ValueError) as e:
            out[label] = [type(e).__name__, str(e)]
    REPORT["bad_input"] = out


def main() -> None:
    caught = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        REPORT["devices"] = len(jax.devices())
        REPORT["jax"] = jax.__version__
        rng = np.random.default_rng(0)
        # Everything on the Explicit mesh (the harder case), the core on the Auto one.
        for name, mesh in meshes().items():
            full = name == "make_mesh"
            REPORT[f"axis_types/{name}"] = [str(t) for t in mesh.axis_types]
            for fn in (
                kernels,
                regression,
                spectra_dynamics_inverse,
                operators_and_memory,
                training,
            ):
                t0 = time.perf_counter()
                if fn is kernels:
                    fn(name, mesh, rng)
                else:
                    fn(name, mesh, rng, full)
                print(name, fn.__name__, time.perf_counter() - t0, file=sys.stderr)
        bad_input()
        caught = [
            f"{w.category.__name__}: {w.message}"
            for w in rec
            if issubclass(w.category, RuntimeWarning | UserWarning)
        ]
    REPORT["warnings"] = caught
    json.dump(REPORT, sys.stdout)


if __name__ == "__main__":
    main()
