"""Private numerical helpers: scoped float64, dtype resolution and the dense-memory cap.

ntkspec never changes JAX's global configuration. Public entry points that compute in
float64 wrap their work in :func:`x64_scope`, a context manager around JAX's own scoped
``enable_x64`` switch, which is part of the jit cache key, so a caller who runs in
float32
elsewhere is not affected.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import jax
import numpy as np

__all__ = [
    "x64_scope",
    "resolve_dtype",
    "dense_cap_bytes",
    "check_dense_request",
    "machine_memory_bytes",
    "work_cap_bytes",
    "check_work_request",
    "check_grid_work",
]

#: Default cap on one dense float64 output (4 GiB). Overridden per call by an argument,
#: globally by the ``NTKSPEC_MAX_DENSE_BYTES`` environment variable.
DEFAULT_DENSE_CAP_BYTES = 4 * 2**30
DENSE_CAP_ENV = "NTKSPEC_MAX_DENSE_BYTES"


def _enable_x64_context(enabled: bool):
    # jax >= 0.6 exposes the scoped switch as ``jax.enable_x64``; older releases kept
    # it in
    # ``jax.experimental``.  Both are context managers over the same thread-local flag.
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None:
        return ctx(enabled)
    from jax.experimental import disable_x64, enable_x64  # pragma: no cover

    return enable_x64() if enabled else disable_x64()  # pragma: no cover


@contextlib.contextmanager
def x64_scope(dtype) -> Iterator[None]:
    """Enable 64-bit types inside the block when ``dtype`` is float64."""
    if np.dtype(dtype) == np.float64:
        with _enable_x64_context(True):
            yield
    else:
        yield


def resolve_dtype(dtype) -> np.dtype:
    """Return ``np.dtype(dtype)``, allowing only float32 and float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from err
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


def dense_cap_bytes(max_bytes: int | float | None = None) -> float:
    """The cap for one dense output: the argument, else the env var, else 4 GiB."""
    if max_bytes is not None:
        if not isinstance(max_bytes, int | float) or isinstance(max_bytes, bool):
            raise TypeError(f"max_bytes must be a number of bytes; got {max_bytes!r}")
        if not max_bytes > 0:
            raise ValueError(f"max_bytes must be > 0; got {max_bytes}")
        return float(max_bytes)
    env = os.environ.get(DENSE_CAP_ENV)
    if env:
        try:
            value = float(env)
        except ValueError as err:
            raise ValueError(
                f"environment variable {DENSE_CAP_ENV} must be a number of bytes; "
                f"got {env!r}"
            ) from err
        if not value > 0:
            raise ValueError(f"{DENSE_CAP_ENV} must be > 0; got {env!r}")
        return value
    return float(DEFAULT_DENSE_CAP_BYTES)


def check_dense_request(
    shape: tuple[int, ...],
    itemsize: int,
    max_bytes: int | float | None,
    *,
    what: str,
    alternative: str,
) -> None:
    """Refuse a dense array of ``shape`` over the cap, naming the way out."""
    cap = dense_cap_bytes(max_bytes)
    need = float(np.prod([float(s) for s in shape])) * itemsize
    if need > cap:
        raise ValueError(
            f"{what} of shape {tuple(shape)} would need {need / 2**30:.2f} GiB, "
            f"over the "
            f"dense memory cap of {cap / 2**30:.2f} GiB (argument max_bytes or env var "
            f"{DENSE_CAP_ENV}). {alternative}"
        )


# --------------------------------------------------------------------------------------
# Working memory of the structured (grid) paths: capped by what the machine can hold.
# --------------------------------------------------------------------------------------

#: Overrides the machine's physical memory as the cap on one call's working memory.
WORK_CAP_ENV = "NTKSPEC_MAX_WORK_BYTES"


def machine_memory_bytes() -> float | None:
    """Physical memory of this machine in bytes, or None where the OS does not say."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return None
    if pages <= 0 or page <= 0:  # pragma: no cover
        return None
    return float(pages) * float(page)


def work_cap_bytes() -> float:
    """The cap on one call's working memory: env var, else physical memory."""
    env = os.environ.get(WORK_CAP_ENV)
    if env:
        try:
            value = float(env)
        except ValueError as err:
            raise ValueError(
                f"environment variable {WORK_CAP_ENV} must be a number of bytes; "
                f"got {env!r}"
            ) from err
        if not value > 0:
            raise ValueError(f"{WORK_CAP_ENV} must be > 0; got {env!r}")
        return value
    mem = machine_memory_bytes()
    return float("inf") if mem is None else mem


def check_work_request(need_bytes: float, *, what: str, alternative: str = "") -> None:
    """Refuse work whose estimated memory exceeds what the machine can hold.

    Run before anything is allocated, so a request too large ends in a ValueError
    instead of a MemoryError or an abort inside XLA.
    """
    cap = work_cap_bytes()
    if need_bytes > cap:
        tail = f" {alternative}" if alternative else ""
        source = (
            f"set by the env var {WORK_CAP_ENV}"
            if os.environ.get(WORK_CAP_ENV)
            else f"what this machine can hold, its physical memory; the env var "
            f"{WORK_CAP_ENV} overrides it"
        )
        raise ValueError(
            f"{what} would need about {need_bytes / 2**30:.3g} GiB of memory "
            f"({need_bytes:.3g} bytes), over the cap of {cap / 2**30:.3g} GiB "
            f"({cap:.3g} bytes; {source}).{tail}"
        )


#: Estimated working bytes per entry of a grid kernel column (offsets, profile
#: temporaries, FFTs), from the peak memory of the structured paths at 2048 x 2048.
GRID_BYTES_PER_ENTRY = 128


def check_grid_work(shape, *, embed: bool, what: str, extra_bytes: float = 0.0) -> None:
    """Size the FFT/Toeplitz work on a grid of ``shape`` before it allocates."""
    entries = 1.0
    for n in shape:
        entries *= float(2 * n if embed else n)
    check_work_request(
        entries * GRID_BYTES_PER_ENTRY + extra_bytes,
        what=what,
        alternative="Use a smaller grid.",
    )
