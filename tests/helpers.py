"""Independent references used by several test modules (NumPy, float64, arccos form).

Also ``run_checked``, the subprocess runner of the wheel fixture (conftest.py) and
test_wheel.py.
"""

import subprocess

import numpy as np

# Per-dtype default tolerances for closeness checks (looser values say why where used).
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-4, atol=1e-5)}


def reference_kernels(x1, x2, depth, W_std, b_std, parameterization="ntk", width=None):
    """NNGP and NTK of the neural-tangents stax MLP, written out from its layer maps.

    Independent of ntkspec: arccos of the clipped correlation (accurate off the
    angle-zero
    entries only), the NTK maps of neural_tangents.md section 3.
    """
    x1 = np.asarray(x1, np.float64)
    x2 = np.asarray(x2, np.float64)
    d = x1.shape[1]
    sw2 = W_std**2
    sb2 = 0.0 if b_std is None else b_std**2
    bias = 0.0 if b_std is None else 1.0
    k0 = x1 @ x2.T / d
    v1 = np.sum(x1**2, 1) / d
    v2 = np.sum(x2**2, 1) / d
    K = sw2 * k0 + sb2
    T = d * k0 + bias if parameterization == "standard" else K.copy()
    v1, v2 = sw2 * v1 + sb2, sw2 * v2 + sb2
    for _ in range(depth - 1):
        prod = np.sqrt(np.outer(v1, v2))
        c = np.clip(K / np.where(prod > 0, prod, 1.0), -1.0, 1.0)
        th = np.where(prod > 0, np.arccos(c), np.pi / 2)
        k_relu = prod * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
        t_relu = T * (np.pi - th) / (2 * np.pi)
        v1, v2 = v1 / 2, v2 / 2
        K = sw2 * k_relu + sb2
        if parameterization == "standard":
            T = width * k_relu + sw2 * t_relu + bias
        else:
            T = K + sw2 * t_relu
        v1, v2 = sw2 * v1 + sb2, sw2 * v2 + sb2
    return K, T


def theta_zero_kernels(
    q1, q2, depth, W_std, b_std, parameterization="ntk", width=None, d=1
):
    """Exact kernels of a pair at angle 0 with input variances q1, q2 (= |x|^2/d).

    The pair stays at angle 0 through every layer when q1 == q2 (duplicates) or when
    there is no bias term (collinear inputs with b_std None or 0). At theta = 0 the ReLU
    maps are kappa_0 = 1/2 and K -> sqrt(v1 v2)/2 (no arccos needed).
    """
    sw2 = W_std**2
    sb2 = 0.0 if b_std is None else b_std**2
    bias = 0.0 if b_std is None else 1.0
    v1, v2 = sw2 * q1 + sb2, sw2 * q2 + sb2
    K = np.sqrt(v1 * v2)
    T = d * np.sqrt(q1 * q2) + bias if parameterization == "standard" else K
    for _ in range(depth - 1):
        k_relu = np.sqrt(v1 * v2) / 2
        t_relu = T / 2
        v1, v2 = sw2 * v1 / 2 + sb2, sw2 * v2 / 2 + sb2
        K = sw2 * k_relu + sb2
        T = (
            (width * k_relu + sw2 * t_relu + bias)
            if parameterization == "standard"
            else (K + sw2 * t_relu)
        )
    return K, T


def run_checked(cmd, *, cwd, env, timeout=900):
    """Run ``cmd``; fail the test with the tails of its output unless it exits 0."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    return proc
