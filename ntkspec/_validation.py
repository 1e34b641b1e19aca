"""Private argument checks run at the public boundary, in plain Python, before tracing.

Each check raises ``TypeError`` for a wrong kind of argument and ``ValueError`` for a
wrong
value, and names the argument, what is allowed and what was given.
"""

from __future__ import annotations

import math
import numbers

import jax
import numpy as np

__all__ = [
    "is_traced",
    "as_points",
    "check_positive_int",
    "check_real",
]


def is_traced(x) -> bool:
    """True when ``x`` is a JAX tracer (inside jit/grad/vmap): no values to read."""
    return isinstance(x, jax.core.Tracer)


def as_points(x, name: str, *, dim: int | None = None, dim_name: str = "dimension"):
    """Check that ``x`` is a finite real (n, d) array; return it (NumPy or JAX array).

    Tracers are checked for shape and dtype only.
    """
    if isinstance(x, list | tuple):
        x = np.asarray(x)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{name} must be an array of shape (n, d); got {type(x).__name__}"
        )
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d); got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{name} must have n >= 1 rows and d >= 1 columns; got {x.shape}"
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers; got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} has {x.shape[1]} columns but the {dim_name} is {dim}; "
            f"{name} must have shape (n, {dim})"
        )
    if not is_traced(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} must be finite; it contains NaN or inf")
    return x


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Check ``value`` is an int >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_real(
    value,
    name: str,
    *,
    low: float | None = None,
    low_inclusive: bool = True,
    allow_inf: bool = False,
):
    """Check a real scalar (Python or 0-d array) lies in range; tracers pass through."""
    if is_traced(value):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if isinstance(value, numbers.Real):
        v = float(value)
    elif hasattr(value, "shape") and np.shape(value) == ():
        v = float(np.asarray(value))
    else:
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be finite; got {v}")
    if low is not None:
        ok = v >= low if low_inclusive else v > low
        if not ok:
            op = ">=" if low_inclusive else ">"
            raise ValueError(f"{name} must be {op} {low}; got {v}")
    return value
