"""Run the same library calls on two source trees of ntkspec and compare the numbers.

Each tree runs every case in a fresh subprocess with ``PYTHONPATH`` set to it and
saves the outputs (NumPy arrays) to a temporary ``.npz``; the parent then reports,
per case, the relative difference :math:`\\max|new - old| / \\max|old|` against the
case's tolerance: 1e-12 for the direct and FFT paths (dense Cholesky/eigh, circulant
solves and spectra, the eigenbasis dynamics, the periodic design path), the solver
tolerance for the iterative ones (PCG, blocked CG, Lanczos top-k, Krylov dynamics,
the finite-time inverse problem), with a factor for the conditioning of each case
written beside it.

Cases are small (seconds on a CPU): kernel_regression (dense, FFT, PCG, blocked),
spectrum (dense, periodic FFT, Lanczos top-k), gd_dynamics (dense, FFT, Krylov; flow
and discrete), design.predicted_error (periodic FFT and structured Krylov paths),
inverse_regression (CG at t = inf, gradient flow and discrete GD by Lanczos).

Usage: ``python -m analysis.compare_outputs OLD_TREE NEW_TREE [--out FILE]``
(e.g. ``git archive 7fade22 ntkspec | tar -x -C /tmp/old``). Not a ``bench_``
script: ``python -m analysis all`` does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CASES = r"""
import sys, warnings
import numpy as np
import ntkspec
from ntkspec import design, mappings, measurements

warnings.simplefilter("ignore")
arch = ntkspec.ReluMLP(3)
rng = np.random.default_rng(0)
gauss = mappings.gaussian(1, 2, 32, 6.0)
per = mappings.FourierMapping(np.round(np.asarray(gauss.B)), np.ones(32))
g_tr, g_te = ntkspec.Grid((12, 12)), ntkspec.Grid((24, 24))
pts = rng.random((80, 2))
pts_te = rng.random((30, 2))
y_pts = rng.standard_normal((80, 2))
y_grid = rng.standard_normal((g_tr.size, 2))
out = {}

def reg(name, *args, **kw):
    pred, info = ntkspec.kernel_regression(arch, *args, return_info=True, **kw)
    out[name] = np.asarray(pred)
    out[name + ".path"] = np.asarray(info.solver)

reg("regression_dense", gauss, pts, y_pts, pts_te)
reg("regression_fft", per, g_tr, y_grid, g_te)
reg("regression_pcg", gauss, g_tr, y_grid, g_te, rtol=1e-12)
reg("regression_blocked", gauss, pts, y_pts, pts_te, solver="blocked", rtol=1e-12)

out["spectrum_dense"] = np.asarray(ntkspec.spectrum(arch, gauss, pts))
out["spectrum_fft"] = np.sort(np.asarray(ntkspec.spectrum(arch, per, g_te)).ravel())
out["spectrum_lanczos"] = np.asarray(ntkspec.spectrum(arch, gauss, g_te, k=12))

times = [0.0, 3.0, 300.0, np.inf]
for name, m, x, xt, y in (
    ("dynamics_dense", gauss, pts, pts_te, y_pts),
    ("dynamics_fft", per, g_tr, g_te, y_grid),
    ("dynamics_krylov", gauss, g_tr, g_te, y_grid),
):
    for disc, ts in ((False, times), (True, [0, 2, 50, 2000])):
        f_tr, f_te = ntkspec.gd_dynamics(
            arch, m, x, y, xt, ts, 1.0, discrete=disc, rtol=1e-12
        )
        key = name + ("_gd" if disc else "_flow")
        out[key + ".train"] = np.asarray(f_tr)
        out[key + ".test"] = np.asarray(f_te)

img = rng.random((16, 16))
out["design_fft"] = np.asarray(
    design.predicted_error(arch, mappings.basic(2), img, time=100.0)
)
out["design_krylov"] = np.asarray(
    design.predicted_error(arch, gauss, img, time=100.0, rtol=1e-12)
)

grid = ntkspec.Grid((12, 12))
A = measurements.ct_projections(grid.shape, num_angles=5)
f = rng.random(grid.size)
y = A.to_scipy() @ f
out["inverse_cg"] = np.asarray(
    ntkspec.inverse_regression(arch, gauss, grid, A, y, ridge=1e-6, rtol=1e-12)
)
out["inverse_flow"] = np.asarray(
    ntkspec.inverse_regression(arch, gauss, grid, A, y, time=30.0, lr=1e-2,
                               krylov_dim=60, rtol=1e-12)
)
out["inverse_gd"] = np.asarray(
    ntkspec.inverse_regression(arch, gauss, grid, A, y, steps=40, lr=1e-3,
                               krylov_dim=60, rtol=1e-12)
)
out["__file__"] = np.asarray(ntkspec.__file__)
np.savez(sys.argv[1], **out)
"""

#: Tolerance of each case (relative to the largest old value) and why.
DIRECT = 1e-12
TOLERANCES = {
    "regression_dense": DIRECT,
    "regression_fft": DIRECT,
    # PCG / blocked CG stop at the residual rtol = 1e-12; the error of alpha is at
    # most cond(K) times that; 1e-8 on the prediction leaves cond up to 1e4.
    "regression_pcg": 1e-8,
    "regression_blocked": 1e-8,
    "spectrum_dense": DIRECT,
    "spectrum_fft": DIRECT,
    # Lanczos top-k: converged Ritz values to tol (default 1e-10 of lambda_max).
    "spectrum_lanczos": 1e-10,
    "dynamics_dense_flow": DIRECT,
    "dynamics_dense_gd": DIRECT,
    "dynamics_fft_flow": DIRECT,
    "dynamics_fft_gd": DIRECT,
    # Krylov f(K) r to rtol = 1e-12, PCG at t = inf to 1e-12 (times cond, as above).
    "dynamics_krylov_flow": 1e-8,
    "dynamics_krylov_gd": 1e-8,
    "design_fft": DIRECT,
    "design_krylov": 1e-8,
    "inverse_cg": 1e-8,
    "inverse_flow": 1e-8,
    "inverse_gd": 1e-8,
}


def _run(tree: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu")
    # cwd outside both trees: with ``-c`` the working directory comes first on
    # sys.path, before PYTHONPATH.
    subprocess.run(
        [sys.executable, "-c", _CASES, str(path)],
        env=env,
        cwd=path.parent,
        check=True,
        capture_output=True,
        text=True,
    )
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    imported = Path(str(out.pop("__file__"))).resolve()
    if not imported.is_relative_to(Path(tree).resolve()):
        raise RuntimeError(f"the run for {tree} imported {imported}")
    return out


def _case(key: str) -> str:
    base = key.split(".")[0]
    return base


def compare(old: dict, new: dict) -> dict:
    """Per case: paths taken, the relative difference, the tolerance and the verdict."""
    rows: dict[str, dict] = {}
    for key in sorted(old):
        if key.endswith(".path"):
            continue
        case = _case(key)
        a, b = np.asarray(old[key], float), np.asarray(new[key], float)
        scale = float(np.max(np.abs(a))) or 1.0
        diff = float(np.max(np.abs(b - a))) / scale if a.size else 0.0
        row = rows.setdefault(case, {"rel_diff": 0.0, "tol": TOLERANCES[case]})
        row["rel_diff"] = max(row["rel_diff"], diff)
        if case + ".path" in old:
            row["path_old"] = str(old[case + ".path"])
            row["path_new"] = str(new[case + ".path"])
    for row in rows.values():
        row["ok"] = bool(row["rel_diff"] <= row["tol"]) and row.get(
            "path_old"
        ) == row.get("path_new")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--out", default=None, help="write the JSON here too")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old = _run(args.old, Path(tmp) / "old.npz")
        new = _run(args.new, Path(tmp) / "new.npz")
    rows = compare(old, new)
    width = max(len(k) for k in rows)
    print(f"{'case':<{width}}  {'rel. diff':>9}  {'tol':>7}  ok  path")
    for case, r in rows.items():
        print(
            f"{case:<{width}}  {r['rel_diff']:9.1e}  {r['tol']:7.0e}  "
            f"{'yes' if r['ok'] else 'NO':>3}  {r.get('path_new', '')}"
        )
    result = {
        "old": os.path.abspath(args.old),
        "new": os.path.abspath(args.new),
        "cases": rows,
        "all_ok": all(r["ok"] for r in rows.values()),
    }
    if args.out:
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.out)
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
