"""Private checks shared by the algorithms of :mod:`ntkspec.linalg`.

An *operator* is a value with ``shape`` (N, N) and a pure ``matvec`` over (N,) or
(N, c); right-hand sides are taken as (N, c) columns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_operator", "as_columns"]


def check_operator(operator, name: str = "operator") -> int:
    shape = getattr(operator, "shape", None)
    if not callable(getattr(operator, "matvec", None)) or shape is None:
        raise TypeError(
            f"{name} must be a kernel operator with shape and matvec (a "
            f"GridKernelOperator or another ntkspec.operators value); got "
            f"{type(operator).__name__}"
        )
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be square; got shape {shape}")
    return int(shape[0])


def as_columns(b, n: int, dtype, name: str):
    """``b`` as an (N, c) array of ``dtype`` and whether it was a vector."""
    if b.ndim not in (1, 2) or b.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, c); got {b.shape}")
    # A transfer or a no-op for float arrays of the right dtype: no eager op to compile.
    b = jax.device_put(np.asarray(b, dtype)) if isinstance(b, np.ndarray) else b
    b = b if b.dtype == dtype else jnp.asarray(b, dtype)
    return (b[:, None], True) if b.ndim == 1 else (b, False)
