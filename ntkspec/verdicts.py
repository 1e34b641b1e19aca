r"""Verdicts on trained-network tables: collapsed runs, paired gaps, cell summaries.

A table that compares input mappings (Tancik et al. 2020, Table 1) is only as good as
the rules that turn runs into numbers. This module writes them down once.

**Collapse.** A run is *collapsed* when its prediction carries no image:

* its output is constant over the evaluation pixels or not finite, or
* its held-out PSNR lies within ``psnr_atol`` (0.1 dB) of the best constant
  predictor's (the all-zero image or the per-channel train mean) **while** the
  infinite-width theory at the same budget predicts at least ``theory_margin``
  (1 dB) more.

A low PSNR that the theory also predicts is not a collapse: the run learned what the
budget allows (a PSNR just below a constant's, where the theory predicts about the
same).
When the prediction itself is not recorded, a PSNR equal to a constant predictor's to
``exact_atol`` (1e-6 dB) is read as that constant output.

**Cells.** A table cell (image set, mapping, column) is ``{"runs": [...], "summary":
{...}}``: every run with ``image``, ``seed``, ``psnr_heldout``, ``collapsed`` and
``cause``, and a summary over the runs that did not collapse, seeds averaged within
an image first, so that the n of a cell counts images:

.. math::

    \bar x_i = \frac{1}{|S_i|}\sum_{s\in S_i} x_{is}, \qquad
    \bar x = \frac1n\sum_{i=1}^n \bar x_i .

**Paired gaps.** A gap between two cells (e.g. Gaussian minus positional) is the mean
of per-image differences :math:`d_i = \bar a_i - \bar b_i` over the images where both
cells have a run, with a 95 % interval over images: the t-interval
:math:`\bar d \pm t_{0.975, n-1}\, s_d/\sqrt n` and a BCa bootstrap interval
(Efron 1987; :func:`scipy.stats.bootstrap` with ``method="BCa"``), which corrects the
percentile bootstrap's under-coverage at small n. A gap is *resolved* when its
interval excludes 0 (both intervals, where both exist).

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
    Efron, "Better Bootstrap Confidence Intervals", JASA 82 (1987) 171-185.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = [
    "PSNR_ATOL",
    "THEORY_MARGIN",
    "constant_psnrs",
    "collapse_verdict",
    "output_collapse",
    "mark_runs",
    "image_means",
    "mean_interval",
    "paired_gap",
    "cell",
    "format_cell",
    "format_gap",
]

#: dB within which a PSNR "equals" the best constant predictor's.
PSNR_ATOL = 0.1
#: dB by which the theory must exceed the constant predictor for a run there to count
#: as collapsed.
THEORY_MARGIN = 1.0
#: dB within which a recorded PSNR identifies the output as that constant.
EXACT_ATOL = 1e-6
#: Relative spread (max - min per channel) below which an output counts as constant.
CONSTANT_RTOL = 1e-6


def _psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((prediction - target) ** 2))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def constant_psnrs(y_train, y_eval) -> dict[str, float]:
    r"""Held-out PSNR of the constant predictors: all-zero and per-channel train mean.

    PSNR is :math:`-10\log_{10}\mathrm{MSE}` for data in [0, 1], the MSE over all
    entries.

    Args:
        y_train: training targets, shape (n,) or (n, c).
        y_eval: evaluation targets, shape (m,) or (m, c), same channels.

    Returns:
        ``{"zero": dB, "mean": dB}``.

    Raises:
        ValueError: if the channel counts differ.
    """
    y_eval = np.asarray(y_eval, np.float64)
    y_eval2 = y_eval.reshape(len(y_eval), -1)
    y_train = np.asarray(y_train, np.float64)
    y_train2 = y_train.reshape(len(y_train), -1)
    if y_train2.shape[1] != y_eval2.shape[1]:
        raise ValueError(
            "y_train and y_eval must have the same channels; got "
            f"{y_train.shape} and {y_eval.shape}"
        )
    mean = np.broadcast_to(y_train2.mean(axis=0), y_eval2.shape)
    return {
        "zero": _psnr(np.zeros_like(y_eval2), y_eval2),
        "mean": _psnr(mean, y_eval2),
    }


def collapse_verdict(
    psnr_heldout: float,
    *,
    constant_psnr: Mapping[str, float],
    theory_psnr: float | None = None,
    prediction=None,
    psnr_atol: float = PSNR_ATOL,
    theory_margin: float = THEORY_MARGIN,
    exact_atol: float = EXACT_ATOL,
    constant_rtol: float = CONSTANT_RTOL,
) -> tuple[bool, str | None]:
    r"""Whether a run collapsed, and why (the module docstring's rule).

    Args:
        psnr_heldout: the run's held-out PSNR (dB); NaN or inf count as non-finite.
        constant_psnr: held-out PSNR of each constant predictor by name, e.g.
            :func:`constant_psnrs` (``{"zero": dB, "mean": dB}``).
        theory_psnr: the infinite-width theory's held-out PSNR at the same budget on
            the same image, or None when unknown (then the PSNR clause does not
            apply: only constant or non-finite output is a collapse).
        prediction: the run's output on the evaluation pixels, (m,) or (m, c), or
            None when not recorded.
        psnr_atol: dB within which the PSNR equals the best constant's (0.1).
        theory_margin: dB the theory must predict above the best constant (1.0).
        exact_atol: without ``prediction``, dB within which the PSNR identifies the
            output as a constant predictor's (1e-6).
        constant_rtol: spread per channel below which ``prediction`` is constant,
            relative to max(1, ``|output|``).

    Returns:
        ``(collapsed, cause)``: cause is a one-line reason, None when not collapsed.

    Raises:
        ValueError: if ``constant_psnr`` is empty or a tolerance is negative.

    Examples:
        >>> collapse_verdict(12.04, constant_psnr={"mean": 12.05}, theory_psnr=12.29)
        (False, None)
        >>> collapse_verdict(12.04, constant_psnr={"mean": 12.05}, theory_psnr=20.0)[0]
        True
    """
    if not constant_psnr:
        raise ValueError("constant_psnr must name at least one constant predictor")
    for name, v in (
        ("psnr_atol", psnr_atol),
        ("theory_margin", theory_margin),
        ("exact_atol", exact_atol),
        ("constant_rtol", constant_rtol),
    ):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0; got {v}")
    value = float(psnr_heldout)
    if prediction is not None:
        cause = output_collapse(prediction, constant_rtol=constant_rtol)
        if cause is not None:
            return True, cause
    if not math.isfinite(value):
        return True, f"non-finite PSNR ({value}): the run diverged"
    if prediction is None:
        for name, ref in constant_psnr.items():
            if math.isfinite(ref) and abs(value - ref) <= exact_atol:
                return True, (
                    f"output is the {_label(name)} predictor: PSNR {value:.4f} dB "
                    f"equals its {ref:.4f} dB to {exact_atol:g} dB"
                )
    name, best = max(constant_psnr.items(), key=lambda kv: kv[1])
    if theory_psnr is None or not math.isfinite(best):
        return False, None
    if abs(value - best) <= psnr_atol and theory_psnr >= best + theory_margin:
        return True, (
            f"PSNR {value:.2f} dB within {psnr_atol:g} dB of the best constant "
            f"({_label(name)}) predictor's {best:.2f} dB, while the theory at the "
            f"same budget predicts {theory_psnr:.2f} dB"
        )
    return False, None


def output_collapse(prediction, *, constant_rtol: float = CONSTANT_RTOL) -> str | None:
    """The cause when an output collapsed by itself (non-finite, or constant), or None.

    ``prediction``: the run's output on the evaluation points, (m,) or (m, c). An
    output is constant when every channel's spread (max - min) is at most
    ``constant_rtol`` times max(1, its largest magnitude).
    """
    p = np.asarray(prediction, np.float64)
    if not np.all(np.isfinite(p)):
        return "non-finite output (the run diverged)"
    p2 = p.reshape(len(p), -1)
    spread = np.ptp(p2, axis=0)
    scale = np.maximum(1.0, np.abs(p2).max(axis=0))
    if np.all(spread <= constant_rtol * scale):
        values = ", ".join(f"{v:.4g}" for v in p2[0])
        return f"constant output ({values}) over all evaluation pixels"
    return None


def _label(name: str) -> str:
    return {"zero": "all-zero", "mean": "train-mean"}.get(name, name)


def mark_runs(runs: Iterable[Mapping], **verdict_kwargs) -> list[dict]:
    """Copies of ``runs`` in the cell layout, with ``collapsed`` and ``cause`` set.

    Each run needs ``image``, ``seed`` and ``psnr_heldout``; optional per-run
    ``constant_psnr``, ``theory_psnr`` and ``prediction`` (dropped from the copy)
    override the keyword arguments, which are passed to :func:`collapse_verdict`;
    without any ``constant_psnr`` a run is not collapsed. Other keys are kept. A
    run already marked collapsed (``collapsed`` true, with a ``cause``) stays so.
    """
    out = []
    for r in runs:
        r = dict(r)
        kw = dict(verdict_kwargs)
        for key in ("constant_psnr", "theory_psnr"):
            if r.get(key) is not None:
                kw[key] = r[key]
        if r.get("prediction") is not None:
            kw["prediction"] = r.pop("prediction")
        if r.get("collapsed") and r.get("cause"):
            collapsed, cause = True, r["cause"]
        elif "constant_psnr" in kw:
            collapsed, cause = collapse_verdict(r["psnr_heldout"], **kw)
        else:
            collapsed, cause = False, None
        r["collapsed"], r["cause"] = bool(collapsed), cause
        out.append(r)
    return out


def image_means(runs: Iterable[Mapping], key: str = "psnr_heldout") -> dict:
    """Per image, the mean of ``run[key]`` over its seeds that did not collapse.

    Returns:
        ``{image: mean}`` in first-seen order; images with no kept run are absent.
    """
    sums: dict = {}
    for r in runs:
        if r.get("collapsed"):
            continue
        sums.setdefault(r["image"], []).append(float(r[key]))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def _intervals(values: np.ndarray, confidence: float, n_resamples: int, seed: int):
    from scipy import stats

    n = values.size
    t_int = bca = None
    if n >= 2:
        sem = float(values.std(ddof=1)) / math.sqrt(n)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
        t_int = [float(values.mean() - half), float(values.mean() + half)]
    # BCa needs a jackknife of at least 3 points and some spread
    if n >= 3 and np.ptp(values) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate-resample warnings at small n
            res = stats.bootstrap(
                (values,),
                np.mean,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method="BCa",
                rng=np.random.default_rng(seed),
            )
        lo, hi = res.confidence_interval
        if math.isfinite(lo) and math.isfinite(hi):
            bca = [float(lo), float(hi)]
    return t_int, bca


def mean_interval(
    values,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> dict:
    r"""Mean of per-image numbers with its t-interval and BCa bootstrap interval.

    Args:
        values: one number per image, shape (n,).
        confidence: level of both intervals, in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap's generator (the interval is reproducible).

    Returns:
        ``{"mean", "n", "t_interval", "bca_interval"}``; the t-interval is None for
        n < 2, the BCa interval for n < 3 or no spread; the mean is None for n = 0.

    Raises:
        ValueError: if ``confidence`` is not in (0, 1) or ``values`` is not 1-D.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    v = np.asarray(values, np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must have shape (n,); got {v.shape}")
    t_int, bca = _intervals(v, confidence, n_resamples, seed)
    return {
        "mean": float(v.mean()) if v.size else None,
        "n": int(v.size),
        "t_interval": t_int,
        "bca_interval": bca,
    }


def paired_gap(
    runs_a: Iterable[Mapping],
    runs_b: Iterable[Mapping],
    *,
    key: str = "psnr_heldout",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> dict:
    r"""Gap a - b as the mean of per-image differences, with intervals over images.

    Seeds are averaged within an image first (collapsed runs left out); images where
    either side has no kept run are left out and listed.

    Returns:
        ``{"mean", "n", "differences": {image: dB}, "t_interval", "bca_interval",
        "resolved", "images_left_out"}``; ``resolved`` is True when every available
        interval excludes 0, None when there is none.
    """
    a, b = image_means(runs_a, key), image_means(runs_b, key)
    common = [k for k in a if k in b]
    diffs = {k: a[k] - b[k] for k in common}
    stat = mean_interval(
        np.asarray(list(diffs.values()), np.float64),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    intervals = [i for i in (stat["t_interval"], stat["bca_interval"]) if i]
    resolved = all(lo > 0 or hi < 0 for lo, hi in intervals) if intervals else None
    left = sorted((set(a) | set(b)) - set(common))
    return {**stat, "differences": diffs, "resolved": resolved, "images_left_out": left}


def cell(runs: Iterable[Mapping], *, key: str = "psnr_heldout", **kwargs) -> dict:
    """A table cell: ``{"runs": [...], "summary": {...}}`` (module docstring).

    ``runs`` must already carry ``collapsed``/``cause`` (:func:`mark_runs`); the
    summary is :func:`mean_interval` of :func:`image_means`, plus ``runs`` (count of
    all runs) and ``collapsed`` (count left out).
    """
    runs = [dict(r) for r in runs]
    means = image_means(runs, key)
    summary = mean_interval(np.asarray(list(means.values()), np.float64), **kwargs)
    summary["images"] = list(means)
    summary["runs"] = len(runs)
    summary["collapsed"] = sum(1 for r in runs if r.get("collapsed"))
    return {"runs": runs, "summary": summary}


def format_cell(c: Mapping, digits: int = 2) -> str:
    """``mean [lo, hi] (n = k)`` of a cell, t-interval; "–" when empty.

    The count of collapsed runs follows as ``, k collapsed`` when there are any.
    """
    s = c["summary"]
    if s["mean"] is None:
        text = "–"
    else:
        text = f"{s['mean']:.{digits}f}"
        if s["t_interval"]:
            lo, hi = s["t_interval"]
            text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    text += f" (n = {s['n']}"
    if s.get("collapsed"):
        text += f", {s['collapsed']} collapsed"
    return text + ")"


def format_gap(g: Mapping, digits: int = 2) -> str:
    """``mean, t [lo, hi], BCa [lo, hi], n = k, resolved/not resolved``."""
    if g["mean"] is None:
        return "– (n = 0)"

    def iv(i):
        return f"[{i[0]:+.{digits}f}, {i[1]:+.{digits}f}]" if i else "–"

    verdict = {True: "resolved", False: "not resolved", None: "no interval"}[
        g["resolved"]
    ]
    if g["resolved"] is not None and not g["bca_interval"]:
        verdict += ", t-interval only"
    return (
        f"{g['mean']:+.{digits}f} (t {iv(g['t_interval'])}, BCa "
        f"{iv(g['bca_interval'])}, n = {g['n']}; {verdict})"
    )
