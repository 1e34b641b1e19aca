"""neural-tangents 0.6.5 ``predict`` outputs; runs INSIDE .venv-nt as a subprocess.

Usage::

    python predict_reference.py INPUTS.npz CONFIGS.json OUT.npz

INPUTS.npz holds named float64 arrays. CONFIGS.json is a list of dicts with ``name``,
``kind`` and:

* kind "mse": ``predict.gradient_descent_mse(k_train_train, y_train, learning_rate,
  diag_reg)`` then ``predict_fn(t, fx_train_0, fx_test_0, k_test_train)`` for each t in
  ``times`` (null = infinity); keys ``k_train_train``, ``k_test_train``, ``y_train``,
  ``fx_train_0`` / ``fx_test_0`` (input names or null for 0), ``learning_rate``,
  ``diag_reg``.
* kind "ensemble": ``predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train,
  learning_rate, diag_reg)`` then ``predict_fn(t, x_test, get)`` for each t; the stax
  MLP ``[Dense(width, W_std, b_std, p), Relu()] * (depth - 1) + [Dense(1, ...)]``; keys
  ``x_train``, ``x_test``, ``y_train``, ``depth``, ``W_std``, ``b_std``,
  ``parameterization``, ``width``, ``learning_rate``, ``diag_reg``, ``get``.

OUT.npz gets ``{name}/train/{i}`` and ``{name}/test/{i}`` (mse) or ``{name}/test/{i}``
(ensemble) for the i-th time. This file must not import ntkspec (it runs on jax 0.4.30);
the TensorFlow shim is the same as in nt_reference.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types


def _import_nt():
    if importlib.util.find_spec("tensorflow") is None:
        name = "neural_tangents.experimental"
        sys.modules.setdefault(name, types.ModuleType(name))
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import neural_tangents as nt

    return jax, nt


def _mse(nt, np, inputs, cfg) -> dict:
    def arr(key):
        k = cfg.get(key)
        return 0.0 if k is None else np.asarray(inputs[k])

    predict_fn = nt.predict.gradient_descent_mse(
        np.asarray(inputs[cfg["k_train_train"]]),
        np.asarray(inputs[cfg["y_train"]]),
        learning_rate=float(cfg["learning_rate"]),
        diag_reg=float(cfg["diag_reg"]),
    )
    out = {}
    for i, t in enumerate(cfg["times"]):
        f_tr, f_te = predict_fn(
            t=t,
            fx_train_0=arr("fx_train_0"),
            fx_test_0=arr("fx_test_0"),
            k_test_train=np.asarray(inputs[cfg["k_test_train"]]),
        )
        out[f"{cfg['name']}/train/{i}"] = np.asarray(f_tr)
        out[f"{cfg['name']}/test/{i}"] = np.asarray(f_te)
    return out


def _ensemble(nt, np, inputs, cfg) -> dict:
    stax = nt.stax
    p, width = cfg["parameterization"], int(cfg["width"])
    w, b = float(cfg["W_std"]), cfg.get("b_std")
    b = None if b is None else float(b)
    layers = []
    for _ in range(int(cfg["depth"]) - 1):
        layers += [stax.Dense(width, W_std=w, b_std=b, parameterization=p), stax.Relu()]
    layers.append(stax.Dense(1, W_std=w, b_std=b, parameterization=p))
    kernel_fn = stax.serial(*layers)[2]
    predict_fn = nt.predict.gradient_descent_mse_ensemble(
        kernel_fn,
        np.asarray(inputs[cfg["x_train"]]),
        np.asarray(inputs[cfg["y_train"]]),
        learning_rate=float(cfg["learning_rate"]),
        diag_reg=float(cfg["diag_reg"]),
    )
    out = {}
    for i, t in enumerate(cfg["times"]):
        res = predict_fn(t=t, x_test=np.asarray(inputs[cfg["x_test"]]), get=cfg["get"])
        out[f"{cfg['name']}/test/{i}"] = np.asarray(res)
    return out


def main(argv: list[str]) -> int:
    import numpy as np

    _, nt = _import_nt()
    inputs_path, configs_path, out_path = argv
    with np.load(inputs_path) as data:
        inputs = {k: data[k] for k in data.files}
    with open(configs_path) as fh:
        configs = json.load(fh)
    out = {}
    for cfg in configs:
        fn = _mse if cfg["kind"] == "mse" else _ensemble
        out.update(fn(nt, np, inputs, cfg))
    out["__meta__"] = np.asarray(json.dumps({"neural_tangents": nt.__version__}))
    np.savez(out_path, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
