"""First-call latency in a fresh process, import included (issue 17, item 2).

Each task runs in a new Python process that imports ntkspec, then times the task once
(cold: import + compilation + run) and once more (warm), from before ``import ntkspec``:

* the paper's regression task: astronaut 256^2 train -> 512^2 predict, RGB, Gaussian
  sigma 10, 256 frequencies, depth 4 (``--quick``: 64^2 -> 128^2);
* the full exact periodic spectrum of a 512^2 grid (``--quick``: 64^2).

``cold_incl_import_s`` is ``import ntkspec``, building the architecture and mapping
(``setup_s``) and the first call; loading the test
image (``data.natural_images``, which reads and resizes five photographs with
scikit-image, about 1 s) is timed apart as ``data_s`` and is in
``cold_incl_import_and_data_s`` (until issue 17's second pass it was inside the cold
figure).

Both without and with JAX's persistent compilation cache (a fresh cache folder under
``figures/tmp``, filled by a first process, read by a second), the way the README
tells users to turn it on. The load average is recorded. Targets: regression < 2 s cold,
< 0.7 s warm; 512^2 periodic spectrum < 1 s cold.

Issue 28, item 4: each round (``--rounds``, default 5, 1 with ``--quick``) also runs
a fresh process that only imports NumPy and JAX, timed the same way from inside
(``import_jax_s``); the rounds interleave the processes, and
``excess_over_import_jax_s`` is the median over rounds of the paired difference
``cold_incl_import_s - import_jax_s`` (every field is reported as its median over
rounds, with the per-round values beside it). Targets:
512^2 periodic spectrum at most 1.0 s over ``import jax``, the paper regression at
most 2.0 s over.

Usage: ``python -m analysis bench_first_call [--quick] [--rounds R] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from analysis._bench import load_record, machine_record

_CHILD = r"""
import json, logging, sys, time
t0 = time.perf_counter()
import numpy as np
import jax
import ntkspec
from ntkspec import data, mappings
task, res = sys.argv[1], int(sys.argv[2])
t_import = time.perf_counter() - t0
import_cpu = time.process_time()  # CPU seconds of this process so far (all threads)
t_setup = time.perf_counter()
arch = ntkspec.ReluMLP(4)
gauss = mappings.gaussian(0, 2, 256, 10.0)
t_setup = time.perf_counter() - t_setup
td = time.perf_counter()
if task == "regression":
    img = data.natural_images(res)["astronaut"]
    g_tr, y_tr, g_te, _ = data.image_task(img)
    run = lambda: np.asarray(ntkspec.kernel_regression(arch, gauss, g_tr, y_tr, g_te))
else:
    per = mappings.FourierMapping(np.round(np.asarray(gauss.B)), np.ones(256))
    grid = ntkspec.Grid((res, res))
    run = lambda: ntkspec.spectrum(arch, per, grid)
t_data = time.perf_counter() - td
compiles = []
class _Count(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Finished XLA compilation"):
            compiles.append(float(msg.rsplit(" ", 2)[-2]))
handler = _Count()
logging.getLogger("jax").addHandler(handler)
t1, c1 = time.perf_counter(), time.process_time()
with jax.log_compiles(True):
    run()
cold_call = time.perf_counter() - t1
cold_call_cpu = time.process_time() - c1
logging.getLogger("jax").removeHandler(handler)
t2 = time.perf_counter()
run()
warm = time.perf_counter() - t2
print(json.dumps({"import_s": t_import, "data_s": t_data,
                  "setup_s": t_setup,
                  "cold_incl_import_s": t_import + t_setup + cold_call,
                  "cold_incl_import_and_data_s": t_import + t_setup + t_data
                  + cold_call,
                  "cold_call_s": cold_call, "cold_call_cpu_s": cold_call_cpu,
                  "import_cpu_s": import_cpu, "warm_s": warm,
                  "xla_compilations": len(compiles),
                  "xla_compile_s": sum(compiles)}))
"""


_JAX_ONLY = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import jax
print(json.dumps({"import_jax_s": time.perf_counter() - t0}))
"""


def _child(
    task: str, res: int, env: dict, src: Path | None = None, code: str = _CHILD
) -> dict:
    repo = Path(__file__).resolve().parents[1]
    env = dict(env, PYTHONPATH=str(src or repo))
    out = subprocess.run(
        [sys.executable, "-c", code, task, str(res)],
        cwd=src or repo,  # ``python -c`` puts the working directory first on sys.path
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_record(records: list[dict]) -> dict:
    """Field by field median of the rounds' records, with the per-round values."""
    out = {}
    for key in records[0]:
        vals = [r[key] for r in records]
        out[key] = statistics.median(vals)
        out[f"{key}_rounds"] = vals
    return out


def _round(cases, base: dict, baseline_src: Path | None) -> dict:
    """One round: the JAX-only process, then each task without and with the cache."""
    out = {"jax": _child("jax", 0, base, code=_JAX_ONLY)}
    for task, res in cases:
        plain = _child(task, res, base)
        before = _child(task, res, base, baseline_src) if baseline_src else None
        cache = Path(tempfile.mkdtemp(prefix="jaxcache-"))
        try:
            env = dict(
                base,
                JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
            )
            _child(task, res, env)  # fills the cache
            cached = _child(task, res, env)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        out[task] = (plain, cached, before)
    return out


def bench(
    quick: bool = False, baseline_src: Path | None = None, rounds: int = 5
) -> dict:
    cases = (
        (("regression", 128), ("periodic_spectrum", 64))
        if quick
        else (
            ("regression", 512),
            ("periodic_spectrum", 512),
        )
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION")}
    load0 = os.getloadavg()
    runs = [_round(cases, base, baseline_src) for _ in range(rounds)]
    jax_only = _median_record([r["jax"] for r in runs])
    rows = []
    for task, res in cases:
        plain = [r[task][0] for r in runs]
        excess = [
            p["cold_incl_import_s"] - r["jax"]["import_jax_s"]
            for p, r in zip(plain, runs, strict=True)
        ]
        cached_excess = [
            r[task][1]["cold_incl_import_s"] - r["jax"]["import_jax_s"] for r in runs
        ]
        rows.append(
            {
                "task": task,
                "resolution": res,
                "rounds": rounds,
                "no_cache": _median_record(plain),
                "persistent_cache_second_process": _median_record(
                    [r[task][1] for r in runs]
                ),
                "baseline_src_no_cache": (
                    _median_record([r[task][2] for r in runs]) if baseline_src else None
                ),
                "import_jax_s": jax_only["import_jax_s"],
                "excess_over_import_jax_s": statistics.median(excess),
                "excess_over_import_jax_rounds": excess,
                "excess_over_import_jax_cached_s": statistics.median(cached_excess),
            }
        )
    targets = {}
    for r in rows:
        if r["task"] == "regression" and r["resolution"] == 512:
            targets["regression < 2 s cold (no cache)"] = (
                r["no_cache"]["cold_incl_import_s"] < 2.0
            )
            targets["regression < 0.7 s warm"] = r["no_cache"]["warm_s"] < 0.7
            targets["regression <= 2.0 s over import jax (no cache)"] = (
                r["excess_over_import_jax_s"] <= 2.0
            )
        if r["task"] == "periodic_spectrum" and r["resolution"] == 512:
            targets["512^2 periodic spectrum < 1 s cold (no cache)"] = (
                r["no_cache"]["cold_incl_import_s"] < 1.0
            )
            targets["512^2 periodic spectrum <= 1.0 s over import jax (no cache)"] = (
                r["excess_over_import_jax_s"] <= 1.0
            )
    return {
        "rows": rows,
        "import_jax": jax_only,
        "targets_hit": targets,
        "cpus": os.cpu_count(),
        "machine": machine_record(),
        "load": load_record(load0),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", default="figures/bench/first_call.json")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run each task without the cache from this source tree (e.g. an "
        "export of an earlier commit) in the same run, for a before/after ratio",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds of fresh processes (JAX only, each task; medians reported); "
        "default 5, 1 with --quick",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; got {args.rounds}")
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    res = bench(quick=args.quick, baseline_src=args.baseline_src, rounds=args.rounds)
    res["quick"] = bool(args.quick)
    res["provenance"] = provenance(
        " ".join(
            ["python -m analysis bench_first_call"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        0,
    )
    write_json(Path(args.out), res)
    for r in res["rows"]:
        cold = r["no_cache"]["cold_incl_import_s"]
        print(
            f"{r['task']} {r['resolution']}: cold {cold:.2f} s incl. import, import "
            f"jax {r['import_jax_s']:.2f} s, excess {r['excess_over_import_jax_s']:.2f}"
            f" s (cached {r['excess_over_import_jax_cached_s']:.2f} s), warm "
            f"{r['no_cache']['warm_s']:.3f} s, {r['rounds']} rounds"
        )
    print(f"load {res['load']}")
    print(res["targets_hit"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
