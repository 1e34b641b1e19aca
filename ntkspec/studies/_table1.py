r"""Statistics of Table 1 entries, with collapsed runs detected and kept apart.

A run is *collapsed* when its prediction carries no image: the output is constant over
the pixels (a saturated sigmoid, dead ReLUs, a zero readout), it is not finite (a
diverged run), or its PSNR equals, within ``psnr_atol`` dB, that of a constant
predictor: the all-zero image or the per-channel mean of the training pixels. Two GPU
runs of the official setup on ``hubble_deep_field`` output exactly 0 and scored the
all-zero predictor's 17.59 dB; averaged in, they hid a broken run inside a mean.

:func:`summarize` averages only the runs that did not collapse, and lists the others
with their cause, so that a table entry always says how many runs it holds (``n``) and
how many it left out.
"""

from __future__ import annotations

import math

import numpy as np

from .. import data as datasets

__all__ = ["collapse_cause", "summarize", "constant_psnrs"]

#: PSNR tolerance (dB) for "equal to a constant predictor's".
PSNR_ATOL = 0.05
#: Relative spread below which an output counts as constant.
CONSTANT_RTOL = 1e-6


def constant_psnrs(y_train, y_eval) -> dict:
    """PSNR on ``y_eval`` of the all-zero and the train-mean constant predictors.

    Args:
        y_train: training targets, shape (n, c).
        y_eval: evaluation targets, shape (m, c).

    Returns:
        ``{"zero": dB, "mean": dB}``.
    """
    y_train = np.asarray(y_train, np.float64).reshape(-1, np.shape(y_eval)[-1])
    y_eval = np.asarray(y_eval, np.float64)
    mean = np.broadcast_to(y_train.mean(axis=0), y_eval.shape)
    return {
        "zero": datasets.psnr(np.zeros_like(y_eval), y_eval),
        "mean": datasets.psnr(mean, y_eval),
    }


def collapse_cause(
    prediction,
    y_eval,
    y_train,
    *,
    reference_psnr: float | None = None,
    psnr_atol: float = PSNR_ATOL,
    constant_rtol: float = CONSTANT_RTOL,
) -> str | None:
    """Why a run's prediction is collapsed, or None when it is not.

    Args:
        prediction: the run's output on the evaluation pixels, shape (m, c).
        y_eval: the targets there, shape (m, c).
        y_train: the training targets, shape (n, c) (for the train-mean predictor).
        reference_psnr: the PSNR the run should reach (the infinite-width theory's at
            the same budget), or None. When it, too, equals the constant predictor's,
            the budget learns little more than the mean: a network sitting there
            follows the theory and is not collapsed (constant or non-finite outputs
            still are).
        psnr_atol: dB within which a PSNR "equals" a constant predictor's.
        constant_rtol: spread (max - min per channel) below which the output is
            constant, relative to max(1, |output|).

    Returns:
        A one-line cause, or None.
    """
    p = np.asarray(prediction, np.float64)
    y = np.asarray(y_eval, np.float64)
    if p.shape != y.shape:
        raise ValueError(
            f"prediction must have the shape of y_eval {y.shape}; got {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        return "non-finite output (the run diverged)"
    p2 = p.reshape(-1, p.shape[-1]) if p.ndim > 1 else p[:, None]
    spread = np.ptp(p2, axis=0)
    scale = np.maximum(1.0, np.abs(p2).max(axis=0))
    if np.all(spread <= constant_rtol * scale):
        values = ", ".join(f"{v:.4g}" for v in p2[0])
        return f"constant output ({values}) over all evaluation pixels"
    value = datasets.psnr(p, y)
    for name, ref in constant_psnrs(y_train, y).items():
        expected_there = reference_psnr is not None and (
            abs(reference_psnr - ref) <= psnr_atol
        )
        if math.isfinite(ref) and abs(value - ref) <= psnr_atol and not expected_there:
            what = "all-zero" if name == "zero" else "train-mean constant"
            return (
                f"PSNR {value:.4f} dB equals the {what} predictor's {ref:.4f} dB "
                f"(within {psnr_atol} dB)"
            )
    return None


def summarize(runs: list[dict], key: str = "psnr_heldout") -> dict:
    """Mean ± sample std (ddof = 1) of ``run[key]`` over the runs that did not collapse.

    Args:
        runs: dicts with ``key`` and ``"collapsed"`` (a cause or None), plus labels
            (``"image"``, ``"seed"``) that are copied into the list of left-out runs.
        key: the number to average.

    Returns:
        ``{"mean", "std", "n", "values", "collapsed": [{"image", "seed", "value",
        "cause"}, ...]}``; ``std`` is None for n = 1, mean and std are None for n = 0.
    """
    kept = [float(r[key]) for r in runs if not r.get("collapsed")]
    left_out = [
        {
            "image": r.get("image"),
            "seed": r.get("seed"),
            "value": float(r[key]) if r.get(key) is not None else None,
            "cause": r["collapsed"],
        }
        for r in runs
        if r.get("collapsed")
    ]
    arr = np.asarray(kept, np.float64)
    n = int(arr.size)
    return {
        "mean": float(arr.mean()) if n else None,
        "std": float(arr.std(ddof=1)) if n > 1 else None,
        "n": n,
        "values": kept,
        "collapsed": left_out,
    }
