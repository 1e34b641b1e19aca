"""One process of a two-process (two "hosts") run on CPU; prints one JSON report.

Run by tests/test_multihost.py: two copies of this script, each with 2 forced host
devices, join through ``jax.distributed.initialize`` (gloo collectives on CPU), so the
mesh spans 4 devices of which each process addresses 2 — the README's multi-host
recipe. Every entry is a measured difference (sharded over both processes against
the same call on this process alone) or a fact; the tolerances are in the test.
"""

from __future__ import annotations

import json
import sys
import warnings

import jax
import numpy as np

import ntkspec
from ntkspec import networks

ARCH = ntkspec.ReluMLP(3)


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def main(coordinator: str, process_id: int) -> None:
    # Global JAX state is set here, in the worker process only (never on import, which
    # pytest's doctest collection does).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=2, process_id=process_id)
    report: dict = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
    }
    mesh = jax.make_mesh((jax.device_count(),), ("hosts",))
    rng = np.random.default_rng(0)  # the same data on both processes
    mapping = ntkspec.mappings.gaussian(0, 2, 16, 4.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A Gram row-sharded over both hosts: each process holds its rows.
        x = rng.uniform(size=(32, 2))
        f = np.asarray(mapping(x))
        ref = np.asarray(ntkspec.ntk(ARCH, f))
        got = ntkspec.ntk(ARCH, f, mesh=mesh)
        report["gram_local_rows_rel"] = max(
            rel(s.data, ref[s.index]) for s in got.addressable_shards
        )
        report["gram_local_shards"] = len(got.addressable_shards)
        # Blocked matrix-free regression (CG on the sharded Gram) on scattered points.
        y = np.sin(6 * x[:, :1]) + x[:, 1:] ** 2
        xt = rng.uniform(size=(9, 2))
        kw = dict(ridge=1e-3, solver="blocked", return_info=True)
        p1, i1 = ntkspec.kernel_regression(ARCH, mapping, x, y, xt, **kw)
        p2, i2 = ntkspec.kernel_regression(ARCH, mapping, x, y, xt, mesh=mesh, **kw)
        report["regression_abs"] = float(np.max(np.abs(np.asarray(p2) - p1)))
        report["regression_devices"] = i2.devices
        kw["solver"] = "cholesky"  # the dense path: the Gram gathered from both hosts
        p3, i3 = ntkspec.kernel_regression(ARCH, mapping, x, y, xt, mesh=mesh, **kw)
        report["regression_dense_devices"] = i3.devices
        p4, _ = ntkspec.kernel_regression(ARCH, mapping, x, y, xt, **kw)
        report["regression_dense_abs"] = float(np.max(np.abs(np.asarray(p3) - p4)))
        # Top eigenvalues by Lanczos on a grid operator sharded over both hosts.
        grid = ntkspec.Grid((16, 16))
        s1 = ntkspec.spectrum(ARCH, mapping, grid, k=6, method="lanczos")
        s2 = ntkspec.spectrum(ARCH, mapping, grid, k=6, method="lanczos", mesh=mesh)
        report["lanczos_rel"] = rel(s2, s1)
        # Data-parallel training over both hosts, and a mapping ensemble.
        v = rng.uniform(size=(64, 2)).astype(np.float32)
        t = np.stack([np.sin(4 * v[:, 0]), v[:, 1] ** 2], axis=1)
        net = networks.mlp(ARCH, mapping, 16, out_dim=2)
        params = net.init(jax.random.key(0))
        tk = dict(steps=5, learning_rate=1e-2, progress=False, block_rows=16)
        a = networks.train(net, params, v, t, **tk)
        b = networks.train(net, params, v, t, mesh=mesh, **tk)
        report["train_losses_rel"] = rel(b.history.step_losses, a.history.step_losses)
        nets = [
            networks.mlp(ARCH, m, 16, out_dim=2)
            for m in (ntkspec.mappings.basic(2), mapping)
        ]
        inits = [n.init(jax.random.key(1)) for n in nets]
        e1 = networks.train_ensemble(nets, inits, v, t, steps=5, learning_rate=1e-2)
        e2 = networks.train_ensemble(
            nets, inits, v, t, steps=5, learning_rate=1e-2, mesh=mesh
        )
        report["ensemble_losses_rel"] = rel(e2.step_losses, e1.step_losses)
    report["warnings"] = [str(w.message) for w in caught]
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
