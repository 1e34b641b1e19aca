"""Benchmark of the grid matvec: the operator's real-to-complex FFTs vs complex FFTs.

One process, float64, depth-4 ReLU NTK, one column (and, at 512^2, a block of 3):

* ``complex``: the complex-FFT formula, kept here as the baseline: the full complex
  spectrum :math:`\\hat k = \\mathrm{fftn}(\\text{column})` stored once, then
  ``ifftn(fftn(pad(v)) * k_hat).real`` cropped to the grid (the Toeplitz embedding of
  size :math:`(2n_1, \\dots, 2n_d)`, or the grid itself for a circulant);
* ``previous``: main's matvec before issue 28 (real-to-complex, a block transformed
  as one batch), copied here;
* ``operator``: ``GridKernelOperator.matvec`` (jitted; real half-spectrum, ``rfft`` on
  the last axis, complex FFTs on the others applied to the zero-padded axes only,
  inverse cropped axis by axis).

Rounds are interleaved (complex, previous, operator, complex, ...) and each time is the
median over rounds (``--rounds`` for the 3-D case, 8x that for the millisecond 2-D
ones), so both see the same load. The two products are compared as well (max
difference relative to the largest entry). Target (issue 28, item 1): the operator at
most 0.6x the baseline's time per column at 512^2 and at 128^3.

Usage: ``python -m analysis bench_matvec [--quick] [--rounds R] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from analysis._bench import load_record, machine_record

TARGET = 0.6


def _complex_matvec_fn(shape: tuple[int, ...], circulant: bool):
    """The baseline: complex fftn of the zero-padded vector times the full spectrum."""
    import jax
    import jax.numpy as jnp

    d = len(shape)
    lengths = shape if circulant else tuple(2 * n for n in shape)

    @jax.jit
    def matvec(k_hat, v):
        rows = v[None, :] if v.ndim == 1 else v.T
        x = rows.reshape((rows.shape[0],) + shape)
        axes = tuple(range(1, d + 1))
        y = jnp.fft.ifftn(jnp.fft.fftn(x, s=lengths, axes=axes) * k_hat, axes=axes)
        y = y.real[(slice(None),) + tuple(slice(0, n) for n in shape)]
        y = y.reshape(rows.shape)
        return y[0] if v.ndim == 1 else y.T

    return matvec


def _previous_matvec_fn(shape: tuple[int, ...], circulant: bool):
    """The operator's matvec before issue 28: real-to-complex, a block at once.

    A copy of main's formula at b1bd2fb (``circulant_matvec`` / ``toeplitz_matvec``):
    the block's transpose ``(c, N)`` transformed as one batch.
    """
    import jax
    import jax.numpy as jnp

    d = len(shape)

    def rows_circulant(symbol, x_rows):
        axes = tuple(range(1, d + 1))
        x = x_rows.reshape((x_rows.shape[0],) + shape)
        y = jnp.fft.irfftn(
            jnp.fft.rfftn(x, axes=axes) * symbol[None], s=shape, axes=axes
        )
        return y.reshape(x_rows.shape)

    def rows_toeplitz(symbol, x_rows):
        x = x_rows.reshape((x_rows.shape[0],) + shape)
        y = jnp.fft.rfft(x, n=2 * shape[-1], axis=-1)
        for ax in range(d - 2, -1, -1):
            y = jnp.fft.fft(y, n=2 * shape[ax], axis=ax + 1)
        y = y * symbol[None]
        for ax in range(d - 1):
            y = jnp.fft.ifft(y, axis=ax + 1)
            y = jax.lax.slice_in_dim(y, 0, shape[ax], axis=ax + 1)
        y = jnp.fft.irfft(y, n=2 * shape[-1], axis=-1)[..., : shape[-1]]
        return y.reshape(x_rows.shape)

    rows_fn = rows_circulant if circulant else rows_toeplitz

    @jax.jit
    def matvec(symbol, v):
        rows = v[None, :] if v.ndim == 1 else v.T
        out = rows_fn(symbol, rows)
        return out[0] if v.ndim == 1 else out.T

    return matvec


def _case(name, arch, mapping, shape, channels, rounds) -> dict:
    import jax
    import jax.numpy as jnp

    from ntkspec.grid import Grid
    from ntkspec.operators import grid_operator

    grid = Grid(shape)
    op = grid_operator(arch, mapping, grid)
    rng = np.random.default_rng(0)
    v_np = rng.standard_normal((grid.size,) if channels == 1 else (grid.size, channels))
    with jax.enable_x64(True):
        v = jnp.asarray(v_np)
        k_hat = jnp.fft.fftn(op.column)  # full complex spectrum, computed once
        base = _complex_matvec_fn(shape, op.is_circulant)
        prev = _previous_matvec_fn(shape, op.is_circulant)
        new = jax.jit(lambda o, x: o.matvec(x))
        fns = {
            "complex": lambda: base(k_hat, v).block_until_ready(),
            "previous": lambda: prev(op.symbol, v).block_until_ready(),
            "operator": lambda: new(op, v).block_until_ready(),
        }
        outs = {k: np.asarray(f()) for k, f in fns.items()}  # compile and warm
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for k, f in fns.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(t) for k, t in times.items()}
    scale = float(np.abs(outs["complex"]).max())
    ratio = med["operator"] / med["complex"]
    diff = {
        k: float(np.abs(outs["operator"] - outs[k]).max()) / scale
        for k in ("complex", "previous")
    }
    return {
        "case": name,
        "grid": list(shape),
        "structure": op.structure,
        "channels": channels,
        "rounds": rounds,
        "complex_s_per_column": med["complex"] / channels,
        "previous_s_per_column": med["previous"] / channels,
        "operator_s_per_column": med["operator"] / channels,
        "ratio_operator_over_complex": ratio,
        "ratio_operator_over_previous": med["operator"] / med["previous"],
        "per_round_s": {k: [round(x, 6) for x in t] for k, t in times.items()},
        "max_abs_diff_rel": diff,
    }


def bench(quick: bool, rounds: int) -> dict:
    """Run every case; returns the JSON record (without provenance)."""
    import ntkspec
    from ntkspec import mappings

    arch = ntkspec.ReluMLP(4)
    gauss2 = mappings.gaussian(0, 2, 256, 10.0)
    periodic2 = mappings.FourierMapping(
        np.round(np.asarray(gauss2.B)), np.ones(gauss2.num_freqs)
    )
    gauss3 = mappings.gaussian(0, 3, 256, 10.0)
    n2, n3 = (64, 16) if quick else (512, 128)
    cases = [
        (f"toeplitz {n2}^2", arch, gauss2, (n2, n2), 1),
        (f"toeplitz {n2}^2, 3 channels", arch, gauss2, (n2, n2), 3),
        (f"circulant {n2}^2", arch, periodic2, (n2, n2), 1),
        (f"toeplitz {n3}^3", arch, gauss3, (n3, n3, n3), 1),
    ]
    load_before = os.getloadavg()
    # the 2-D cases take milliseconds: more rounds there, so the medians settle
    rows = [_case(*c, rounds=rounds * (8 if len(c[3]) == 2 else 1)) for c in cases]
    return {
        "rows": rows,
        "target": f"operator <= {TARGET} x the baseline's time per column",
        "targets_hit": {
            f"{r['case']} vs {b}": r[f"ratio_operator_over_{b}"] <= TARGET
            for r in rows
            for b in ("complex", "previous")
        },
        "machine": machine_record(),
        "load": load_record(load_before),
        "dtype": "float64",
        "note": (
            "the operator's matvec has used real-to-complex FFTs (real half-spectrum "
            "symbol, pruned per-axis Toeplitz transforms) since the operator layer; "
            "'complex' is the complex-FFT formula, 'previous' main's real-to-complex "
            "formula before issue 28 (a block transformed as one batch); both copied "
            "in this script"
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--out", default="figures/bench/matvec.json")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        print("bench_matvec: --rounds must be >= 1", file=sys.stderr)
        return 2
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    t0 = time.perf_counter()
    res = bench(args.quick, args.rounds)
    res["quick"] = bool(args.quick)
    res["seconds_total"] = time.perf_counter() - t0
    res["provenance"] = provenance(
        " ".join(
            ["python -m analysis bench_matvec"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        0,
    )
    write_json(Path(args.out), res)
    for r in res["rows"]:
        print(
            f"{r['case']:>28}: complex {r['complex_s_per_column'] * 1e3:8.2f} ms, "
            f"operator {r['operator_s_per_column'] * 1e3:8.2f} ms per column, ratio "
            f"{r['ratio_operator_over_complex']:.2f}; previous "
            f"{r['previous_s_per_column'] * 1e3:8.2f} ms, ratio "
            f"{r['ratio_operator_over_previous']:.2f}; diff "
            f"{max(r['max_abs_diff_rel'].values()):.1e}"
        )
    print(f"load {res['load']['before']} -> {res['load']['after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
