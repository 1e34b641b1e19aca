"""Compute neural-tangents 0.6.5 stax kernels; runs INSIDE .venv-nt as a subprocess.

Usage::

    python nt_reference.py --check                        # print versions as JSON
    python nt_reference.py INPUTS.npz CONFIGS.json OUT.npz

INPUTS.npz holds named float64 arrays of shape (n, d). CONFIGS.json is a list of dicts:

    name              unique string; prefixes the output keys
    depth             number of Dense layers L (readout included)
    W_std, b_std      floats; b_std may be null (no bias)
    parameterization  "ntk" or "standard"
    width             declared hidden width of the Dense layers (default 512)
    x1, x2            input names; x2 null means kernel_fn(x1, None)
    get               list of "nngp" / "ntk" (default both)
    eager             compute with kernel_fn as shipped (default true)
    jit               also with jax.jit(kernel_fn, static_argnames="get")
                      (default false)
    repeats           if > 0: time each mode, one warm-up call then ``repeats`` timed
                      calls with block_until_ready (default 0)
    keep              write the kernel values (default true)

The network is ``stax.serial(*[Dense(width, W_std, b_std, parameterization=p), Relu()]
* (L - 1), Dense(1, W_std, b_std, parameterization=p))``. OUT.npz gets
``{name}/{kernel}/{mode}`` arrays (mode "eager" or "jit"), ``{name}/seconds/{mode}``
(the timed calls) and ``{name}/first_seconds/{mode}`` when timing, and ``__meta__``, a
JSON string: versions, ``rss_before_kib`` (after imports and inputs) and
``max_rss_kib`` (peak RSS of this process before writing the output).

This file must not import ntkspec: it runs on jax 0.4.30. NT's package ``__init__``
imports ``neural_tangents.experimental``, which needs TensorFlow; when TensorFlow is
absent an empty module is registered under that name first (all of ``stax`` works
without it).
"""

from __future__ import annotations

import importlib.util
import json
import resource
import sys
import time
import types


def _install_shim() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        name = "neural_tangents.experimental"
        sys.modules.setdefault(name, types.ModuleType(name))


def _import_nt():
    _install_shim()
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import neural_tangents as nt

    return jax, nt


def _versions(jax, nt) -> dict:
    import jaxlib
    import numpy as np

    return {
        "python": sys.version.split()[0],
        "neural_tangents": nt.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "x64": bool(jax.config.jax_enable_x64),
        "tensorflow_shim": importlib.util.find_spec("tensorflow") is None,
    }


def _current_rss_kib() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _kernel_fn(nt, cfg):
    stax = nt.stax
    p = cfg.get("parameterization", "ntk")
    width = int(cfg.get("width") or 512)
    w, b = float(cfg["W_std"]), cfg.get("b_std")
    b = None if b is None else float(b)
    layers = []
    for _ in range(int(cfg["depth"]) - 1):
        layers += [stax.Dense(width, W_std=w, b_std=b, parameterization=p), stax.Relu()]
    layers.append(stax.Dense(1, W_std=w, b_std=b, parameterization=p))
    return stax.serial(*layers)[2]


def _compute(jax, nt, inputs, cfg) -> dict:
    import numpy as np

    kernel_fn = _kernel_fn(nt, cfg)
    x1 = jax.numpy.asarray(inputs[cfg["x1"]], dtype=np.float64)
    x2 = None if cfg.get("x2") is None else jax.numpy.asarray(inputs[cfg["x2"]])
    gets = tuple(cfg.get("get") or ("nngp", "ntk"))
    get = gets[0] if len(gets) == 1 else gets
    modes = []
    if cfg.get("eager", True):
        modes.append(("eager", kernel_fn))
    if cfg.get("jit", False):
        modes.append(("jit", jax.jit(kernel_fn, static_argnames="get")))
    repeats = int(cfg.get("repeats", 0))
    out = {}
    name = cfg["name"]
    for mode, fn in modes:
        t0 = time.perf_counter()
        res = jax.block_until_ready(fn(x1, x2, get=get))
        first = time.perf_counter() - t0
        if repeats > 0:
            times = []
            for _ in range(repeats):
                del res
                t0 = time.perf_counter()
                res = jax.block_until_ready(fn(x1, x2, get=get))
                times.append(time.perf_counter() - t0)
            out[f"{name}/seconds/{mode}"] = np.asarray(times)
            out[f"{name}/first_seconds/{mode}"] = np.asarray(first)
        if cfg.get("keep", True):
            values = (res,) if len(gets) == 1 else tuple(res)
            for g, v in zip(gets, values, strict=True):
                out[f"{name}/{g}/{mode}"] = np.asarray(v)
        del res
    return out


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        jax, nt = _import_nt()
        print(json.dumps(_versions(jax, nt)))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    jax, nt = _import_nt()
    import numpy as np

    in_path, cfg_path, out_path = argv
    with np.load(in_path, allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    with open(cfg_path) as fh:
        configs = json.load(fh)
    names = [c["name"] for c in configs]
    if len(set(names)) != len(names):
        raise ValueError("config names must be unique")
    rss_before = _current_rss_kib()
    out = {}
    for cfg in configs:
        out.update(_compute(jax, nt, inputs, cfg))
    meta = _versions(jax, nt)
    meta["rss_before_kib"] = rss_before
    meta["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["__meta__"] = np.asarray(json.dumps(meta))
    np.savez(out_path, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
