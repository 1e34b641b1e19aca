"""Time two source trees of ntkspec against each other, in one run, as ratios.

Each task runs in a fresh subprocess with ``PYTHONPATH`` set to one tree; trees
alternate (old, new, old, new, ...) so that load from other processes on the machine
falls on both alike. Reported: per task, the median warm seconds of each tree and the
ratio new / old (below 1.10 is the issue-10 target).

Tasks: the paper's image regression (astronaut, 256^2 train -> 512^2, Gaussian sigma
10, 256 frequencies, depth-4 NTK; PCG path), the exact periodic spectrum at 512^2 and
block Lanczos top-100 at 512^2 (Gaussian sigma 10), and the CT reconstruction at 512^2
(``analysis/bench_ct.py``'s problem: 20 projections, Gaussian sigma 4, ridge 1e-6 x the
mean measured diagonal, residual 1e-8).

Each subprocess runs in a scratch folder outside both trees (``python -c`` puts the
working directory ahead of ``PYTHONPATH``) and reports the ``ntkspec`` it imported,
which must lie in its tree. The result is written to ``--out`` (JSON, with the machine
and the load).

Usage: ``python -m analysis.compare_versions OLD_TREE NEW_TREE [--rounds 3]``
(e.g. ``git archive 58093b9 ntkspec | tar -x -C /tmp/old``). Not a ``bench_`` script:
``python -m analysis all`` does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from ntkspec.io import write_json

from ._bench import machine_record

_TASK = r"""
import json, sys, time, warnings
import numpy as np
import ntkspec
from ntkspec import data, mappings
task = sys.argv[1]
arch = ntkspec.ReluMLP(4)
gauss = mappings.gaussian(0, 2, 256, 10.0)
if task == "regression":
    img = data.natural_images(512)["astronaut"]
    g_tr, y_tr, g_te, _ = data.image_task(img)
    fn = lambda: ntkspec.kernel_regression(arch, gauss, g_tr, y_tr, g_te)
elif task == "periodic_spectrum":
    per = mappings.FourierMapping(np.round(np.asarray(gauss.B)), np.ones(256))
    fn = lambda: ntkspec.spectrum(arch, per, ntkspec.Grid((512, 512)))
elif task == "ct":
    from ntkspec import inverse, measurements, operators, phantoms
    g4 = mappings.gaussian(0, 2, 256, 4.0)
    grid = ntkspec.Grid((512, 512))
    img = phantoms.ct_phantoms(512, num_search=0, num_test=1).test[0].reshape(-1)
    A = measurements.ct_projections(grid.shape, 20)
    y = A.to_scipy() @ img
    G = operators.composed(A, operators.grid_operator(arch, g4, grid))
    ridge = 1e-6 * inverse.mean_measured_diagonal(G, rows=64)
    fn = lambda: ntkspec.inverse_regression(
        arch, g4, grid, A, y, ridge=ridge, rtol=1e-8
    )
else:
    from ntkspec.operators import grid_operator
    from ntkspec.spectra import lanczos_eigenpairs
    op = grid_operator(arch, gauss, ntkspec.Grid((512, 512)))
    fn = lambda: lanczos_eigenpairs(op, 100)
np.asarray(fn() if task != "lanczos" else fn().eigenvalues)
runs = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    out = fn()
    np.asarray(out if task != "lanczos" else out.eigenvalues)
    runs.append(time.perf_counter() - t0)
print(ntkspec.__file__)
print(json.dumps(runs))
"""

TASKS = {"regression": 2, "periodic_spectrum": 5, "lanczos": 1, "ct": 1}


def _run(tree: str, task: str, repeats: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=tree)
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run(
            [sys.executable, "-c", _TASK, task, str(repeats)],
            env=env,
            cwd=scratch,
            capture_output=True,
            text=True,
            check=True,
        )
    lines = out.stdout.strip().splitlines()
    imported = os.path.realpath(lines[-2])
    if not imported.startswith(os.path.realpath(tree) + os.sep):
        raise RuntimeError(f"{task}: imported {imported}, not from {tree}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--out", default=None, help="JSON file to write (atomically)")
    args = p.parse_args(argv)
    result = {
        "command": "python -m analysis.compare_versions "
        + " ".join(argv or sys.argv[1:]),
        "old": os.path.realpath(args.old),
        "new": os.path.realpath(args.new),
        "rounds": args.rounds,
        "target": "new / old below 1.10 per task",
        "load_before": os.getloadavg(),
    }
    for task in args.tasks.split(","):
        times = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name in ("old", "new"):
                times[name] += _run(getattr(args, name), task, TASKS[task])
        old, new = (statistics.median(times[k]) for k in ("old", "new"))
        result[task] = {"old_s": old, "new_s": new, "ratio_new_over_old": new / old}
        print(task, json.dumps(result[task]), flush=True)
    result["load_after"] = os.getloadavg()
    result["machine"] = machine_record()
    print(json.dumps(result, indent=1))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
