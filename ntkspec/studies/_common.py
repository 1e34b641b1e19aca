r"""What several studies share: their common tail and the paper's settings.

* the tail of every ``run``: stamp the data, write its JSON, plot from it
  (:func:`write_study`), and the per-image statistics the tables print;
* the numbers and settings of Tancik et al. (2020) that the studies compare against
  (:data:`PAPER_TABLE1`, :data:`MAPPING_NAMES`, :data:`SCALES`) and their mappings;
* the Table 1 tasks that more than one study runs: the crops, the budget's learning
  rate, the trained network of the official notebook.

Source of the paper's numbers: the official notebook
``Experiments/2d_image_regression.ipynb`` (its "Paper Experiments" cell output), as
recorded in the project's reference notes.

Like the studies, this module uses only the public API of ntkspec; no study imports
another study, they import what they share from here (and ``_table1``).

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from .. import data as datasets
from .. import mappings, operators
from ..grid import Grid
from ..inverse import inverse_regression, mean_measured_diagonal
from ..io import write_json
from ..kernels import ReluMLP
from ..linalg import largest_eigenvalue
from ..provenance import provenance
from ..spectra import spectrum
from ._table1 import collapse_cause, constant_psnrs

#: Table 1, 2D image regression, PSNR dB (mean, std) with trained 4 x 256 networks.
PAPER_TABLE1 = {
    "natural": {
        "none": (19.32, 2.48),
        "basic": (21.72, 2.72),
        "positional": (24.95, 3.72),
        "gaussian": (25.57, 4.19),
    },
    "text": {
        "none": (18.40, 2.34),
        "basic": (20.48, 1.96),
        "positional": (27.57, 3.07),
        "gaussian": (30.47, 2.11),
    },
}
#: Row order of Table 1.
MAPPING_NAMES = ("none", "basic", "positional", "gaussian")
#: The paper's best scales per image set: Gaussian sigma, positional-encoding scale S.
SCALES = {
    "natural": dict(sigma=10.0, pe_scale=6.0),
    "text": dict(sigma=14.0, pe_scale=5.0),
}
#: The infinitely wide network and the GD networks' architecture of the budget studies.
ARCH = ReluMLP(4, W_std=math.sqrt(2.0), b_std=0.1)
#: Side of the paper's images, pixels.
RES = datasets.IMAGE_RES


def write_study(
    out_dir: str | Path,
    name: str,
    data: dict,
    plot: Callable[[dict, Path], None],
    *,
    started: float,
    quick: bool,
    seed: int,
    command: str | None,
    **fields,
) -> dict:
    """Stamp ``data``, then write ``<name>.json`` and ``<name>.png`` into ``out_dir``.

    ``fields``, ``quick``, ``seconds`` and the provenance are added to ``data``; the
    figure is drawn from the data as written.

    Returns:
        ``{"json": path, "png": path, "seconds": s}``, what ``run`` returns.
    """
    out_dir = Path(out_dir)
    data.update(
        fields,
        quick=quick,
        seconds=round(time.perf_counter() - started, 2),
        provenance=provenance(command, seed),
    )
    write_json(out_dir / f"{name}.json", data)
    plot(data, out_dir / f"{name}.png")
    return {
        "json": str(out_dir / f"{name}.json"),
        "png": str(out_dir / f"{name}.png"),
        "seconds": data["seconds"],
    }


def format_stat(stat: dict | None, digits: int = 2) -> str:
    """``mean ± std (n = k)`` for a ``{"mean", "std", "per_image" | "n"}`` entry.

    One run shows ``mean (n = 1)`` (no ``± 0``); a missing or non-finite entry "–".
    """
    if not stat or not math.isfinite(float(stat.get("mean", math.nan))):
        return "–"
    n = stat.get("n", len(stat.get("per_image", [])) or None)
    text = f"{stat['mean']:.{digits}f}"
    if n != 1 and stat.get("std") is not None:
        text += f" ± {stat['std']:.{digits}f}"
    return text + (f" (n = {n})" if n else "")


def per_image_stat(values) -> dict:
    """``{"mean", "std", "per_image"}`` of per-image numbers (population std)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "per_image": v.tolist()}


def fit_loglog_slope(x, y) -> tuple[float, float, float]:
    """Least-squares line through (log x, log y): (slope, intercept, slope std err)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    A = np.column_stack([lx, np.ones_like(lx)])
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    resid = ly - A @ coef
    dof = max(len(lx) - 2, 1)
    cov = (resid @ resid / dof) * np.linalg.inv(A.T @ A)
    return float(coef[0]), float(coef[1]), float(math.sqrt(max(cov[0, 0], 0.0)))


def paper_mappings(image_set: str, seed: int = 0) -> dict:
    """The four Table-1 mappings with the paper's scales; ``seed`` draws Gaussian B."""
    sc = SCALES[image_set]
    return {
        "none": mappings.identity(2),
        "basic": mappings.basic(2),
        "positional": mappings.positional(2, 128, scale=sc["pe_scale"]),
        "gaussian": mappings.gaussian(seed, 2, 256, sc["sigma"]),
    }


def paper_mappings_2d(seed: int = 0) -> dict:
    """The paper's 2D mappings: none, basic, positional, Gaussian sigma 1, 10, 100.

    Positional encoding is the official code's form (128 frequencies per axis, scale 6,
    as its Table 1 used on natural images); Gaussian mappings share one draw of 256
    directions rescaled per sigma, as in the official notebook.
    """
    base = mappings.gaussian(seed, 2, 256, 1.0)
    out = {
        "none": mappings.identity(2),
        "basic": mappings.basic(2),
        "positional (S=6)": mappings.positional(2, 128, scale=6.0),
    }
    for sigma in (1.0, 10.0, 100.0):
        out[f"gaussian sigma={sigma:g}"] = mappings.FourierMapping(
            sigma * np.asarray(base.B), np.asarray(base.a)
        )
    return out


def table1_images(image_set: str, crop: int, count: int) -> dict:
    """The first ``count`` images of a set as centre crops (``table1_matched``'s)."""
    if image_set == "natural":
        return dict(list(datasets.natural_set(RES, crop=crop).items())[:count])
    return datasets.text_set(RES, count=count, crop=crop)


def table1_psnr(pred, y) -> float:
    """PSNR of a prediction against targets, both cast to float64."""
    return datasets.psnr(np.asarray(pred, np.float64), np.asarray(y, np.float64))


def network_scores(pred, y, tr, held) -> dict:
    """A trained network's scores and the flags that the collapse rule reads.

    Held-out and train PSNR, train MSE, whether the prediction is constant over the
    held-out pixels (peak-to-peak at most 1e-6 per channel) and whether it is finite.
    """
    pred = np.asarray(pred, np.float64)
    return dict(
        psnr_heldout=table1_psnr(pred[held], y[held]),
        psnr_train=table1_psnr(pred[tr], y[tr]),
        train_mse=float(np.mean((pred[tr] - y[tr]) ** 2)),
        prediction_constant=bool(np.all(np.ptp(pred[held], axis=0) <= 1e-6)),
        prediction_finite=bool(np.all(np.isfinite(pred))),
    )


def table1_network_run(task, mapping, x, y, tr, held, cfg) -> dict:
    """One Adam network of the matched Table 1 (``table1_matched``), as its fields.

    ``task``: ``kind`` ("adam": the paper's 4 x ``cfg["width"]`` sigmoid-output stax
    network at :func:`adam_learning_rate`; "control": linear readout, NTK
    parameterization, :data:`ARCH`, 1e-3), ``set``, ``mapping`` (its name) and
    ``seed`` (initial key 10 + seed). ``x``: the crop's pixel coordinates (C-order),
    ``y`` its (n, 3) values, ``tr``/``held`` the train / held-out indices;
    ``cfg["steps"]`` full-batch Adam steps on ``x[tr]``.
    """
    import jax

    from ..networks import mlp, train

    control = task["kind"] == "control"
    if control:
        net = mlp(ARCH, mapping, cfg["width"], out_dim=3)
        lr = 1e-3
    else:
        net = mlp(
            ReluMLP(4),
            mapping,
            cfg["width"],
            out_dim=3,
            output="sigmoid",
            initialization="stax",
        )
        lr = adam_learning_rate(task["set"], task["mapping"])
    params = net.init(jax.random.PRNGKey(10 + task["seed"]))
    result = train(
        net,
        params,
        x[tr],
        y[tr],
        steps=cfg["steps"],
        learning_rate=lr,
        eval_every=cfg["steps"],
        progress=False,
        record_outputs=True,
        eval_sets={"all": (x, y)},
    )
    pred = np.asarray(result.history.outputs["all"][-1], np.float64)
    return dict(
        learning_rate=lr,
        steps=cfg["steps"],
        network="linear readout, NTK parameterization (the theory's arch), Adam"
        if control
        else "4 x 256 sigmoid output, stax initialisation, Adam (paper)",
        **network_scores(pred, y, tr, held),
    )


def table1_ntk_run(mapping, x, y, tr, held, cfg) -> dict:
    """The NTK columns of the matched Table 1 on one crop, as its fields.

    :func:`ntkspec.gd_dynamics` of :data:`ARCH` (dense, raw coordinates) at eta = 1 on
    a log grid of ``12 * cfg["times_per_decade"] + 1`` times from 1e-2 to 1e10, plus
    0, ``cfg["budget"]`` and infinity: train MSE and held-out PSNR on the grid, the
    PSNR at the budget and at t = infinity.
    """
    from ..dynamics import gd_dynamics

    per = cfg["times_per_decade"]
    grid = np.logspace(-2, 10, 12 * per + 1)
    times = np.concatenate([[0.0], grid, [cfg["budget"], np.inf]])
    f_tr, f_te = gd_dynamics(ARCH, mapping, x[tr], y[tr], x[held], times, 1.0)
    mse = [float(np.mean((f - y[tr]) ** 2)) for f in f_tr]
    psnr = [table1_psnr(f, y[held]) for f in f_te]
    return dict(
        arch=dict(depth=ARCH.depth, W_std=ARCH.W_std, b_std=ARCH.b_std),
        budget=cfg["budget"],
        times=grid.tolist(),
        train_mse=mse[1:-2],
        psnr_curve=psnr[1:-2],
        train_mse_0=mse[0],
        psnr_heldout=psnr[-2],  # at the budget
        psnr_budget=psnr[-2],
        psnr_inf=psnr[-1],
        train_mse_budget=mse[-2],
    )


def adam_learning_rate(image_set: str, mapping_name: str) -> float:
    """1e-2 for none/basic on natural images, 1e-3 otherwise (official notebook)."""
    return (
        1e-2 if image_set == "natural" and mapping_name in ("none", "basic") else 1e-3
    )


def crop_grid(crop: int, res: int = RES) -> np.ndarray:
    """Coordinates (k + offset)/res of the centre ``crop``^2 pixels, C-order."""
    off = (res - crop) // 2
    g = (off + np.arange(crop)) / res
    return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)


def task_inputs(mapping, crop: int, res: int = RES):
    """``(mapping, x_train, x_test)`` for a centre crop of side ``crop``, pitch 1/res.

    A Fourier mapping gets Grids (train ``crop/2`` per axis, test ``crop``) and its
    frequencies scaled by crop/res: the features of grid point k/crop are those of
    pixel k at pitch 1/res (up to the crop's offset, a phase that a stationary kernel
    ignores). Raw coordinates get the pixels' own coordinates (offset + k)/res as
    points, C-order, train = pixels ``[::2, ::2]`` of the crop.
    """
    half = crop // 2
    if isinstance(mapping, mappings.FourierMapping):
        scaled = mappings.FourierMapping(
            np.asarray(mapping.B) * (crop / res), np.asarray(mapping.a)
        )
        return scaled, Grid((half, half)), Grid((crop, crop))
    pts = crop_grid(crop, res)
    return mapping, pts[datasets.train_indices((crop, crop))], pts


def budget_learning_rate(mapping, x_train, channels: int) -> tuple[float, float]:
    r"""``(eta, lambda_max)``: :math:`\eta = N_y/\lambda_{\max}` of the train Gram.

    Half the stability limit of discrete GD on :math:`\sum(f-y)^2/(2N_y)`,
    :math:`N_y = n\cdot` ``channels``. :math:`\lambda_{\max}` by Lanczos on a Grid,
    dense eigenvalues on points.
    """
    n = x_train.size if isinstance(x_train, Grid) else len(x_train)
    lam = float(np.max(spectrum(ARCH, mapping, x_train, k=1)))
    return n * channels / lam, lam


def fit_image(image, mapping, lr: float, steps: int, seed: int):
    """Train the paper's network on ``image[::2, ::2]``; return PSNRs and prediction.

    ``image`` is a centre crop of a 512 x 512 image (or the whole image); its pixels sit
    at the coordinates (k + offset)/512.
    """
    from ..networks import mlp, train

    crop = image.shape[0]
    grid = crop_grid(crop)
    y = image.reshape(-1, 3)
    tr = datasets.train_indices((crop, crop))
    net = mlp(
        ReluMLP(4), mapping, 256, out_dim=3, output="sigmoid", initialization="stax"
    )
    params = net.init(jax.random.PRNGKey(seed))
    result = train(
        net,
        params,
        grid[tr],
        y[tr],
        steps=steps,
        learning_rate=lr,
        eval_every=steps,
        progress=False,
        record_outputs=True,
        eval_sets={"all": (grid, y)},
    )
    pred = np.asarray(result.history.outputs["all"][-1], np.float64)
    held = datasets.heldout_indices((crop, crop))
    nontrain = datasets.nontrain_indices((crop, crop))
    cause = collapse_cause(pred[held], y[held], y[tr])
    return dict(
        collapsed=cause is not None,
        cause=cause,
        constant_psnr=constant_psnrs(y[tr], y[held]),
        psnr_heldout=datasets.psnr(pred[held], y[held]),
        psnr_nontrain=datasets.psnr(pred[nontrain], y[nontrain]),
        psnr_train=datasets.psnr(pred[tr], y[tr]),
        seconds=result.history.stats["seconds"],
        steps_per_second=float(
            steps / max(result.history.stats["chunk_seconds"].sum(), 1e-9)
        ),
    ), pred.reshape(crop, crop, 3)


def dense_inverse_case(arch, grid, forward, y, steps: int):
    """Raw coordinates ("none") through measurements: t = infinity and k GD steps.

    ``inverse_regression``'s dense path (A K A^T formed, raw coordinates, no FFT
    structure), with the ridge 1e-6 x the mean measured diagonal and the step
    1 / lambda_max(A K A^T + ridge I) (power iteration, 100 steps).

    Returns:
        ``(f_inf, f_k, info)``: the two predictions on the grid and a dict with the
        ridge, the solver and the step.
    """
    raw = mappings.identity()
    G = operators.composed(forward, operators.kernel_operator(arch, raw, grid))
    ridge = 1e-6 * mean_measured_diagonal(G, rows=None)
    m = int(forward.shape[0])
    lr = 1.0 / largest_eigenvalue(operators.Shifted(G, ridge), m, iters=100)
    f_inf = inverse_regression(arch, raw, grid, forward, y, ridge=ridge)
    f_k = inverse_regression(
        arch, raw, grid, forward, y, ridge=ridge, times=steps, discrete=True,
        learning_rate=lr,
    )  # fmt: skip
    return (
        f_inf,
        f_k,
        {"ridge": ridge, "solver": "dense (inverse_regression)", "lr": lr},
    )


def power_law_field_2d(res: int, seed: int, *, band_limited: bool) -> np.ndarray:
    """Random field on res x res, DFT amplitude (1 + |k|)^-1, scaled to [-.5, .5].

    ``band_limited``: zero the DFT coefficients with |k| >= res / 2.
    """
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(res) * res
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    coef = (rng.standard_normal((res, res)) + 1j * rng.standard_normal((res, res))) / (
        1.0 + kk
    )
    if band_limited:
        coef[kk >= res / 2] = 0.0
    y = np.real(np.fft.ifft2(coef))
    return (y - y.min()) / (y.max() - y.min()) - 0.5
