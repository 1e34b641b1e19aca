"""Sweep of ``spectrum(..., k=)`` (the Lanczos path) against dense ``eigvalsh``.

Issue 30, item 1: on small non-periodic grids the top-k path returned eigenvalues
above the trace, or zeros with overflow warnings, flagged ``converged=True``. This
sweep checks every grid the CI property test samples, and more: every 1D size
2..``--max-1d`` with every k in 1..N, and every 2D shape (n1, n2) with
2 <= n1 <= n2 <= ``--max-side`` with k in {1, 2, b-1, b, b+1, 2b, 2b+1, N/4, N/2,
N-2b-1, N-2b, N-b-1, N-b, N-b+1, N-1, N} (b = 8, the default block; each value
clipped to [1, N]). Depth-4 ReLU NTK, Gaussian mapping (16 frequencies, sigma 3),
float64. Reference: ``numpy.linalg.eigvalsh`` of the dense Gram from
``ntkspec.ntk`` on the grid points (the closed-form kernel, not the FFT matvec).
Pass: ``max |lambda - dense| <= 1e-10 lambda_max``, ``converged`` and no warning.

Usage: ``python -m analysis.sweep_topk [--max-1d 20] [--max-side 20] [--out PATH]``;
``--part I/P`` runs every P-th shape from the I-th into a part file, ``--merge P``
combines the P part files. Writes JSON (atomically, after every shape; ``complete``
says whether all shapes ran) with the worst error per shape, all failures, the machine
and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from analysis._bench import load_record, machine_record

BLOCK = 8
TOL = 1e-10
_PAD = 400  # the largest grid of the default sweep (20 x 20)


def _ks(n: int, every: bool) -> list[int]:
    if every:
        return list(range(1, n + 1))
    b = BLOCK
    cand = {1, 2, b - 1, b, b + 1, 2 * b, 2 * b + 1, n // 4, n // 2}
    cand |= {n - 2 * b - 1, n - 2 * b, n - b - 1, n - b, n - b + 1, n - 1, n}
    return sorted(k for k in cand if 1 <= k <= n)


def _check_shape(arch, mapping, shape, every_k):
    import ntkspec
    from ntkspec import Grid

    grid = Grid(shape)
    pts = grid.points()
    # Padded to a fixed row count by repeating the last point (one compilation for
    # every shape of a dimension); the leading N x N block is the Gram.
    n = grid.size
    padded = np.concatenate([pts, np.repeat(pts[-1:], _PAD - n, axis=0)])
    gram = np.asarray(ntkspec.ntk(arch, mapping(padded)))[:n, :n]
    dense = np.linalg.eigvalsh(gram)[::-1]
    worst, failures, dense_cases = 0.0, [], 0
    for k in _ks(grid.size, every_k):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lam, info = ntkspec.spectrum(
                arch, mapping, grid, k=k, method="lanczos", return_info=True
            )
        err = float(np.max(np.abs(lam - dense[:k])) / dense[0])
        dense_cases += info.lanczos.method == "dense"
        worst = max(worst, err)
        if not (err <= TOL and info.converged and not caught and lam.shape == (k,)):
            failures.append(
                {
                    "shape": list(shape),
                    "k": k,
                    "rel_error": err,
                    "converged": bool(info.converged),
                    "warnings": [str(w.message)[:200] for w in caught],
                }
            )
    return worst, failures, len(_ks(grid.size, every_k)), dense_cases


def _result(rows, failures, t0, load_before, complete):
    return {
        "what": "spectrum(k=) (Lanczos path) against dense eigvalsh, issue 30 item 1",
        "arch": "ReluMLP(4) NTK",
        "mapping": "mappings.gaussian(0, d, 16, 3.0)",
        "tolerance": f"max |dlambda| <= {TOL} lambda_max, converged, no warning",
        "block_size": BLOCK,
        "k_values": "every k for 1D; for 2D "
        + ", ".join(
            ["1", "2", "b-1", "b", "b+1", "2b", "2b+1", "N/4", "N/2"]
            + ["N-2b-1", "N-2b", "N-b-1", "N-b", "N-b+1", "N-1", "N"]
        ),
        "complete": complete,
        "shapes": len(rows),
        "cases": sum(r["cases"] for r in rows),
        "failures": failures,
        "worst_rel_error": max((r["worst_rel_error"] for r in rows), default=None),
        "dense_fallback_cases": sum(r["dense_fallback_cases"] for r in rows),
        "per_shape": rows,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_record(),
        "load_average_1_5_15min": load_record(load_before),
        "device": "CPU",
    }


def _write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


def _merge(out: Path, parts: int) -> int:
    """Combine the part files of a split run into ``out`` (then removes them)."""
    files = [out.with_suffix(f".part{i}of{parts}.json") for i in range(parts)]
    loaded = [json.loads(f.read_text()) for f in files]
    rows = sorted(
        (r for d in loaded for r in d["per_shape"]),
        key=lambda r: (len(r["shape"]), r["shape"]),
    )
    merged = dict(loaded[0])
    merged.update(
        complete=all(d["complete"] for d in loaded),
        shapes=len(rows),
        cases=sum(r["cases"] for r in rows),
        failures=[f for d in loaded for f in d["failures"]],
        worst_rel_error=max(r["worst_rel_error"] for r in rows),
        dense_fallback_cases=sum(r["dense_fallback_cases"] for r in rows),
        per_shape=rows,
        seconds=[d["seconds"] for d in loaded],
        load_average_1_5_15min=[d["load_average_1_5_15min"] for d in loaded],
        parts=f"{parts} processes side by side, each a strided share of the shapes",
    )
    _write(out, merged)
    for f in files:
        f.unlink()
    print(f"merged {len(rows)} shapes, {merged['cases']} cases -> {out}")
    return 1 if merged["failures"] else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-1d", type=int, default=20)
    parser.add_argument("--max-side", type=int, default=20)
    parser.add_argument(
        "--out", type=Path, default=Path("figures/bench/sweep_topk.json")
    )
    parser.add_argument(
        "--part", type=str, default=None, help="I/P: every P-th shape from the I-th"
    )
    parser.add_argument("--merge", type=int, default=None, help="merge P part files")
    args = parser.parse_args(argv)
    if args.merge is not None:
        return _merge(args.out, args.merge)
    if max(args.max_side**2, args.max_1d) > _PAD:
        parser.error(f"grids up to {_PAD} points (--max-side <= 20)")
    import ntkspec
    from ntkspec import mappings

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    arch = ntkspec.ReluMLP(4)
    shapes = [((n,), True) for n in range(2, args.max_1d + 1)]
    shapes += [
        ((n1, n2), False)
        for n1 in range(2, args.max_side + 1)
        for n2 in range(n1, args.max_side + 1)
    ]
    out = args.out
    if args.part is not None:
        i, p = (int(v) for v in args.part.split("/"))
        shapes = shapes[i::p]
        out = out.with_suffix(f".part{i}of{p}.json")
    maps = {1: mappings.gaussian(0, 1, 16, 3.0), 2: mappings.gaussian(0, 2, 16, 3.0)}
    rows, failures = [], []
    for shape, every_k in shapes:
        worst, fails, count, nd = _check_shape(arch, maps[len(shape)], shape, every_k)
        rows.append(
            {
                "shape": list(shape),
                "cases": count,
                "dense_fallback_cases": nd,
                "worst_rel_error": worst,
            }
        )
        failures += fails
        print(f"{shape}: {count} k, worst {worst:.1e}, failures {len(fails)}")
        # Written after every shape (complete: false until the last).
        _write(out, _result(rows, failures, t0, load_before, False))
    _write(out, _result(rows, failures, t0, load_before, True))
    print(f"{sum(r['cases'] for r in rows)} cases, {len(failures)} failures -> {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
