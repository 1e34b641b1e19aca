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

from .grid import Grid

__all__ = [
    "is_traced",
    "as_points",
    "check_positive_int",
    "check_real",
    "check_kernel",
    "check_grid",
    "check_inputs",
    "check_targets",
    "check_hyperparameter",
    "check_real_array",
    "check_magnitude",
    "check_symmetric",
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


# --------------------------------------------------------------------------------------
# Checks of the library's own values. The checks of an architecture and of a mapping
# live beside their classes (kernels.check_arch, mappings.check_mapping): this module
# imports no value module but the leaf grid (no import cycle).
# --------------------------------------------------------------------------------------


def check_kernel(kernel) -> str:
    """``kernel`` must be "ntk" or "nngp"; returns it."""
    if kernel not in ("ntk", "nngp"):
        raise ValueError(f"kernel must be 'ntk' or 'nngp'; got {kernel!r}")
    return kernel


def check_grid(grid, name: str = "grid") -> None:
    """Refuse anything but a :class:`ntkspec.Grid`."""
    if not isinstance(grid, Grid):
        raise TypeError(f"{name} must be a ntkspec.Grid; got {type(grid).__name__}")


def check_inputs(x, name: str, mapping):
    """Points (n, d) or a Grid, of the mapping's dimension: ``(points or None, grid)``.

    Points come back as a float64 NumPy array; a Grid as itself (points None).
    """
    if isinstance(x, Grid):
        pts, dim, grid = None, x.dim, x
    else:
        pts = np.asarray(as_points(x, name), dtype=np.float64)
        dim, grid = pts.shape[1], None
    if mapping.dim is not None and dim != mapping.dim:
        raise ValueError(
            f"{name} has dimension {dim} but the mapping takes "
            f"{mapping.dim}-dimensional points"
        )
    return pts, grid


def check_targets(
    y, n: int, name: str = "y_train", x_name: str = "x_train", unit: str = "points"
):
    """Finite real targets of shape (n,) or (n, c); returned as float64 NumPy."""
    y = np.asarray(y)
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] < 1):
        raise ValueError(f"{name} must have shape (n,) or (n, c); got {y.shape}")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers; got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(
            f"{name} has {y.shape[0]} rows but {x_name} has {n} {unit}; they must match"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} must be finite; it contains NaN or inf")
    return y.astype(np.float64)


def check_hyperparameter(
    value,
    name: str,
    *,
    low: float,
    low_inclusive: bool,
    allow_none: bool = False,
):
    """Check a value-class field: a real number, or a concrete real array, in range.

    Python numbers and concrete arrays (0-d or batched, e.g. for ``vmap``) are checked
    entry by entry; tracers and other objects (pytree placeholders) pass through.
    """
    op = ">=" if low_inclusive else ">"
    if value is None:
        if allow_none:
            return value
        raise TypeError(f"{name} must be a real number {op} {low}; got None")
    if isinstance(value, bool | str | bytes | complex) or is_traced(value):
        if is_traced(value):
            return value
        raise TypeError(f"{name} must be a real number {op} {low}; got {value!r}")
    if isinstance(value, numbers.Real):
        return check_real(value, name, low=low, low_inclusive=low_inclusive)
    if not isinstance(value, np.ndarray | np.generic | jax.Array):
        return value
    dt = np.dtype(value.dtype)
    if dt == np.bool_ or not (
        np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers; got dtype {dt}")
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr.tolist()}")
    bad = arr < low if low_inclusive else arr <= low
    if np.any(bad):
        raise ValueError(f"{name} must be {op} {low}; got {arr.tolist()}")
    return value


def check_real_array(x, name: str) -> None:
    """Refuse complex (or other non-real) concrete arrays with a TypeError."""
    if hasattr(x, "dtype") and not is_traced(x):
        dt = np.dtype(x.dtype)
        if np.issubdtype(dt, np.complexfloating):
            raise TypeError(f"{name} must be real; got complex dtype {dt}")
        if dt == np.bool_ or not (
            np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer)
        ):
            raise TypeError(f"{name} must hold real numbers; got dtype {dt}")


def check_magnitude(x, name: str, dtype) -> None:
    """Refuse inputs so large that the kernel recursion overflows ``dtype``.

    The recursion multiplies two squared norms (``|x|^2 |x'|^2 / d^2``), so entries
    above about the fourth root of the largest float, with a margin of 100, would give
    inf/NaN: 1e75 in float64, 1e7 in float32. Tracers are not checked.
    """
    if is_traced(x):
        return
    limit = float(np.finfo(np.dtype(dtype)).max) ** 0.25 / 100.0
    arr = np.asarray(x)
    biggest = float(np.max(np.abs(arr))) if arr.size else 0.0
    if biggest > limit:
        raise ValueError(
            f"{name} has entries of magnitude up to {biggest:.3g}; above {limit:.3g} "
            f"the kernel overflows {np.dtype(dtype)} (it multiplies squared norms): "
            f"rescale {name}"
        )


#: Relative tolerance of :func:`check_symmetric`: entries of ``K - K^T`` up to this
#: times ``max |K|`` are accepted (float32 kernels, such as empirical NTKs, pass).
SYMMETRY_RTOL = 1e-5


def check_symmetric(k, name: str, *, check_finite: bool = True) -> np.ndarray:
    """Check a kernel matrix: square, finite (unless ``check_finite=False``), symmetric.

    Returns it as a float64 NumPy array. ``eigh`` reads only one triangle, so a NaN or
    an asymmetry in the other would otherwise pass silently.
    """
    arr = np.asarray(k, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be square (n, n); got {arr.shape}")
    if check_finite and not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} must be finite; it contains NaN or inf (check_finite=False skips "
            "this check)"
        )
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    with np.errstate(invalid="ignore"):
        gap = float(np.max(np.abs(arr - arr.T))) if arr.size else 0.0
    if gap > SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{name} must be symmetric: max |K - K^T| = {gap:.3g} is above "
            f"{SYMMETRY_RTOL:g} * max |K| = {SYMMETRY_RTOL * scale:.3g}"
        )
    return arr
