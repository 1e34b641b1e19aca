"""The ``ntkspec`` console script: a thin layer that parses, calls the library, writes.

Subcommands: ``report`` (the main job), ``spectrum``, ``regress``, ``suggest``,
``validate`` and ``profiles``; ``ntkspec COMMAND --help`` explains each with
examples. Usage errors (a bad option, an unreadable input file, a request too large
for this machine) print one line on stderr, no traceback, exit with code 2 and write
nothing: every argument and the writability of ``--out`` are checked before any work
or folder is made. Every output is written atomically (temp file, then rename);
``report`` builds its folder beside the target and swaps it in when complete. Ctrl-C
(SIGINT) and SIGTERM print one line and exit with 130 and 143.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import textwrap
from pathlib import Path

from ._interrupt import interrupts_raise, redeliver_if_dropped

__all__ = ["main", "MAPPINGS"]

#: Mapping names accepted by ``--mapping``.
MAPPINGS = ("none", "basic", "positional", "gaussian", "power-law")

#: Largest grid / image the CLI accepts (points), and the largest eigenvector block.
MAX_POINTS = 2**22
MAX_VECTOR_BYTES = 2 * 2**30
#: Non-periodic grids up to this many points are decomposed densely.
DENSE_POINTS = 1024

_EPILOG_MAIN = """\
examples:
  ntkspec report                       # headline figures + figures/report/index.html
  ntkspec report --quick --out /tmp/r  # the same at smoke-test size (< 1 minute)
  ntkspec spectrum --mapping gaussian --sigma 10 --grid 64 64 -k 20
  ntkspec spectrum --mapping power-law --p 1 --grid 256
  ntkspec regress photo.png --mapping gaussian --sigma 10
  ntkspec suggest photo.png --json choice.json
  ntkspec validate --quick
  ntkspec profiles

Each subcommand has its own --help. Numbers are float64; outputs are JSON (with the
command, versions, device, date and seed) beside each PNG.
"""

_EPILOG_SPECTRUM = """\
The Gram K of the kernel on the grid points is decomposed (K itself, not K/N):
periodic mappings (integer frequencies: basic, power-law, positional with integer
scales) give all eigenvalues by one FFT; others use Lanczos on an FFT matvec. Each
printed eigenvalue comes with the dominant frequency of its eigenvector.

examples:
  ntkspec spectrum --mapping basic --grid 32 32
  ntkspec spectrum --mapping gaussian --sigma 10 --num-freqs 256 --grid 64 64 -k 50
  ntkspec spectrum --mapping power-law --p 1.5 --grid 512 --kernel nngp
  ntkspec spectrum --mapping positional --scale 6 --grid 48 48 --out spectra/
"""

_EPILOG_REGRESS = """\
The image is split as in Tancik et al. (2020): the pixels [::2, ::2] are the training
set, the infinite-width network's prediction is made on the full grid, and PSNR is
reported on the held-out pixels [1::2, 1::2] (as the paper's code measured it) and on
all non-train pixels. PNG/JPEG are scaled to [0, 1]; .npy/.npz arrays of shape (H, W)
or (H, W, C) are used as they are (values meant in [0, 1]). Odd sizes lose their last
row/column. Frequencies are in cycles per image side: the paper's scales (Gaussian
σ = 10, positional S = 6) are for 512-pixel images; scale σ with the image size.

examples:
  ntkspec regress photo.png                          # Gaussian sigma 10, 256 freqs
  ntkspec regress photo.jpg --mapping positional --scale 6
  ntkspec regress image.npy --mapping basic --ridge 1e-6 --out results/
  ntkspec regress stack.npz --key image --mapping gaussian --sigma 14
"""


_EPILOG_SUGGEST = """\
For each scale of the family (Gaussian sigma, or the official code's positional S) the
held-out PSNR of the infinitely wide ReLU MLP trained on the pixels [::2, ::2] for the
budget --time (gradient flow, learning rate 1, ntkspec.gd_dynamics units; default
calibrated so that the NTK's best sigma on astronaut, 512², is the GPU networks' 10) is
predicted from the NTK spectrum, without training; the best scale is printed with the
curve. Frequencies are in cycles per image side. Odd sizes lose their last row/column.

What it is worth: validated on 12 images (CPU, 128² crops; Adam networks, 2000 steps),
it loses 0.56 dB to a fixed sigma chosen on other images (+0.56 dB, 95 % t [+0.21,
+0.91]). With --time 178 it comes within 0.11 dB of that fixed sigma (not resolved).
On a set of similar images, a fixed sigma chosen on a few trained networks is the better
default; the suggestion helps on an image unlike its set. Details:
docs/guide/choosing_sigma.md.

examples:
  ntkspec suggest photo.png
  ntkspec suggest text.png --family positional --json suggestion.json
"""


#: First bytes of the image files ``regress`` reads: PNG, JPEG.
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class _UsageError(Exception):
    pass


class _Unavailable(Exception):
    pass


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that clean-up code runs."""


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the command runs, SIGTERM raises :class:`_Terminated` (main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum, frame):
        if redeliver_if_dropped(signum, frame):  # inside a gc callback: raise later
            return
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message):  # noqa: D102 (argparse API)
        print(
            f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr
        )
        raise SystemExit(2)


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def _wrap(text: str) -> str:
    return textwrap.fill(text, 88)


def _add_mapping_args(p: argparse.ArgumentParser, *, default: str) -> None:
    g = p.add_argument_group("mapping (Fourier features of the input coordinates)")
    g.add_argument(
        "--mapping",
        choices=MAPPINGS,
        default=default,
        help=f"input mapping (default {default}): none = raw coordinates; basic = "
        "[cos 2πv, sin 2πv]; positional = log-spaced axis frequencies; gaussian = "
        "random B ~ N(0, σ²); power-law = 1D b_j = j, a_j = j^-p",
    )
    g.add_argument("--sigma", type=float, default=None, help="gaussian: σ (default 10)")
    g.add_argument(
        "--num-freqs",
        type=int,
        default=None,
        help="gaussian: number of frequencies m (default 256); positional: per axis "
        "(default 128); power-law: m (default 64)",
    )
    g.add_argument(
        "--scale",
        type=float,
        default=None,
        help="positional: scale S, frequencies 2^linspace(0, S, m) - 1 (default 6)",
    )
    g.add_argument(
        "--p", type=float, default=None, help="power-law: exponent (default 1)"
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="gaussian: seed of the draw of B (default 0)",
    )
    a = p.add_argument_group("architecture (infinitely wide ReLU MLP)")
    a.add_argument(
        "--depth",
        type=int,
        default=4,
        help="Dense layers, readout included (default 4)",
    )
    a.add_argument(
        "--kernel", choices=("ntk", "nngp"), default="ntk", help="kernel (default ntk)"
    )


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="JAX platform to run on (default auto: JAX's default); a device that is "
        "not there is refused",
    )


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="ntkspec",
        description=_wrap(
            "Spectral analysis of coordinate MLPs with Fourier-feature inputs "
            "(Tancik et al. 2020): infinite-width NTK/NNGP kernels, their spectra, "
            "kernel regression, and checks against trained networks."
        ),
        epilog=_EPILOG_MAIN,
        formatter_class=fmt,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "report",
        help="run every study and write figures/report/index.html (the main job)",
        description=_wrap(
            "Run every study (spectra, NTK regression Table 1 and sigma sweep, 1D "
            "study, theory vs networks) at report size, about 5 minutes on a 2-core "
            "CPU, then write OUT/index.html (figures, tables beside the paper's "
            "numbers, provenance) and OUT/report.json (every file and number)."
        ),
        epilog="examples:\n  ntkspec report\n  ntkspec report --quick --out /tmp/r\n"
        "  ntkspec report --device gpu --seed 1\n",
        formatter_class=fmt,
    )
    r.add_argument(
        "--out",
        default="figures/report",
        help="output folder; the page is OUT/index.html (default: figures/report)",
    )
    r.add_argument(
        "--quick", action="store_true", help="smallest sizes: a smoke test (< 1 min)"
    )
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_device_arg(r)

    s = sub.add_parser(
        "spectrum",
        help="eigenvalues of the NTK/NNGP Gram of a mapping on a grid",
        description=_wrap(
            "Print the top eigenvalues of the kernel Gram on a regular grid "
            "with their frequencies; write spectrum_MAPPING.json and a log-log plot."
        ),
        epilog=_EPILOG_SPECTRUM,
        formatter_class=fmt,
    )
    s.add_argument(
        "--grid",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="points per axis, 1 to 3 axes (default 64 64; 256 for power-law)",
    )
    s.add_argument(
        "-k",
        "--top",
        type=int,
        default=None,
        help="how many of the largest eigenvalues (default 20, or all if fewer)",
    )
    s.add_argument("--out", default=".", help="output folder (default: .)")
    _add_mapping_args(s, default="gaussian")
    _add_device_arg(s)

    g = sub.add_parser(
        "regress",
        help="infinite-width NTK regression of an image (train on every other pixel)",
        description=_wrap(
            "Fit the image's every other pixel by NTK (or NNGP) kernel "
            "regression, predict the full image, write the prediction and its PSNR."
        ),
        epilog=_EPILOG_REGRESS,
        formatter_class=fmt,
    )
    g.add_argument("image", help="PNG/JPEG file, or .npy/.npz array (H, W[, C])")
    g.add_argument("--key", default=None, help=".npz: which array (default: the first)")
    g.add_argument(
        "--ridge", type=float, default=0.0, help="ridge added to K (default 0)"
    )
    g.add_argument("--out", default=".", help="output folder (default: .)")
    _add_mapping_args(g, default="gaussian")
    _add_device_arg(g)

    sg = sub.add_parser(
        "suggest",
        help="suggest the mapping scale for an image from the NTK (no training)",
        description=_wrap(
            "Predict the held-out PSNR of the infinite-width network against the "
            "mapping scale after a finite training budget and print the best scale "
            "(ntkspec.design.suggest_scale)."
        ),
        epilog=_EPILOG_SUGGEST,
        formatter_class=fmt,
    )
    sg.add_argument("image", help="PNG/JPEG file, or .npy/.npz array (H, W[, C])")
    sg.add_argument("--key", default=None, help=".npz: which array (default: first)")
    sg.add_argument(
        "--family",
        choices=("gaussian", "positional"),
        default="gaussian",
        help="mapping family (default gaussian: scale = sigma)",
    )
    sg.add_argument("--json", default=None, metavar="PATH", help="write JSON here")
    sg.add_argument(
        "--time", type=float, default=None, help="budget t (default: calibrated)"
    )
    sg.add_argument(
        "--num-freqs", type=int, default=256, help="frequencies (default 256)"
    )
    sg.add_argument("--depth", type=int, default=4, help="Dense layers (default 4)")
    sg.add_argument("--seed", type=int, default=0, help="Gaussian draw (default 0)")
    _add_device_arg(sg)

    v = sub.add_parser(
        "validate",
        help="theory against trained finite networks (CPU-reduced with --quick)",
        description=_wrap(
            "Train finite ReLU MLPs and compare them with the infinite-width "
            "theory: empirical NTK against width, training dynamics, Table 1 with "
            "networks. Writes figures, JSON and a markdown summary."
        ),
        epilog="examples:\n  ntkspec validate --quick\n"
        "  ntkspec validate --device gpu --out figures/validation\n",
        formatter_class=fmt,
    )
    v.add_argument("--out", default="figures/validation", help="output folder")
    v.add_argument("--quick", action="store_true", help="reduced CPU version")
    v.add_argument(
        "--size",
        choices=("tiny", "quick", "full", "gpu"),
        default=None,
        help="tiny (smoke test), quick (= --quick, ~2 min CPU), full (~12 min CPU), "
        "gpu (the full Table-1 sweep; minutes on one GPU). Default: gpu when JAX "
        "sees a GPU, else full (quick with --quick)",
    )
    v.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_device_arg(v)

    pr = sub.add_parser(
        "profiles",
        help="plot the NTK against the coordinate offset for the paper's mappings",
        description=_wrap(
            "The NTK of each of the paper's 2D mappings against the offset."
        ),
        epilog="example:\n  ntkspec profiles --depth 4 --out figures/profiles\n",
        formatter_class=fmt,
    )
    pr.add_argument("--out", default="figures/profiles", help="output folder")
    pr.add_argument("--depth", type=int, default=4, help="Dense layers (default 4)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the Gaussian mapping")
    return p


# --------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------


def _check_finite_positive(value: float, flag: str, *, allow_zero: bool = False):
    bad = not math.isfinite(value) or (value < 0 if allow_zero else value <= 0)
    if bad:
        need = ">= 0" if allow_zero else "> 0"
        raise _UsageError(f"{flag} must be a finite number {need}; got {value:g}")


#: Mapping options: the mappings each applies to, and its default there.
_MAPPING_OPTIONS = {
    "sigma": (("gaussian",), 10.0),
    "seed": (("gaussian",), 0),
    "scale": (("positional",), 6.0),
    "p": (("power-law",), 1.0),
    "num_freqs": (("gaussian", "positional", "power-law"), None),
}


def _resolve_mapping_options(args) -> None:
    """Refuse options the chosen mapping ignores, then fill in the defaults."""
    if getattr(args, "_mapping_options_resolved", False):
        return
    for option, (applies_to, default) in _MAPPING_OPTIONS.items():
        value = getattr(args, option, None)
        if value is not None and args.mapping not in applies_to:
            flag = "--" + option.replace("_", "-")
            raise _UsageError(
                f"{flag} applies to --mapping {' or '.join(applies_to)}, "
                f"not to --mapping {args.mapping}"
            )
        if value is None:
            setattr(args, option, default)
    args._mapping_options_resolved = True


def _mapping_from_args(args, dim: int):
    """Build the mapping named on the command line for inputs of dimension ``dim``."""
    from . import mappings

    _resolve_mapping_options(args)
    name = args.mapping
    if args.depth < 1:
        raise _UsageError(f"--depth must be >= 1; got {args.depth}")
    if args.num_freqs is not None and args.num_freqs < 1:
        raise _UsageError(f"--num-freqs must be >= 1; got {args.num_freqs}")
    if name == "none":
        return mappings.identity(dim)
    if name == "basic":
        return mappings.basic(dim)
    if name == "positional":
        if not math.isfinite(args.scale) or args.scale < 0:
            raise _UsageError(
                f"--scale must be a finite number >= 0; got {args.scale:g}"
            )
        return mappings.positional(dim, args.num_freqs or 128, scale=args.scale)
    if name == "gaussian":
        _check_finite_positive(args.sigma, "--sigma")
        return mappings.gaussian(args.seed, dim, args.num_freqs or 256, args.sigma)
    if name == "power-law":
        if dim != 1:
            raise _UsageError(
                f"--mapping power-law is a 1D mapping; the input is {dim}D "
                "(give a 1D --grid N)"
            )
        if math.isnan(args.p) or args.p < 0:
            raise _UsageError(f"--p must be >= 0 (or inf); got {args.p:g}")
        return mappings.power_law(args.num_freqs or 64, args.p)
    raise _UsageError(f"unknown mapping {name!r}; choose from {', '.join(MAPPINGS)}")


def _mapping_settings(args) -> dict:
    _resolve_mapping_options(args)
    out = {"mapping": args.mapping, "depth": args.depth, "kernel": args.kernel}
    if args.mapping == "gaussian":
        out |= {
            "sigma": args.sigma,
            "num_freqs": args.num_freqs or 256,
            "seed": args.seed,
        }
    elif args.mapping == "positional":
        out |= {"scale": args.scale, "num_freqs": args.num_freqs or 128}
    elif args.mapping == "power-law":
        out |= {"p": args.p, "num_freqs": args.num_freqs or 64}
    return out


def _check_out(args, names: tuple[str, ...] = ()) -> Path:
    """Check --out before any work: writable, creating nothing (one-line error)."""
    from .io import check_writable_folder

    try:
        return check_writable_folder(args.out, names, what="--out")
    except ValueError as err:
        raise _UsageError(str(err)) from None


def _library(name: str):
    """A public name of ntkspec, or a clear error when this installation lacks it."""
    import ntkspec

    fn = getattr(ntkspec, name, None)
    if fn is None:
        raise _Unavailable(
            f"ntkspec.{name} is not available in this installation of ntkspec"
        )
    return fn


def _dominant_frequency(vector, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The integer frequency where an eigenvector's DFT is largest in magnitude."""
    import numpy as np

    spec = np.abs(np.fft.fftn(np.asarray(vector).reshape(shape)))
    index = np.unravel_index(int(np.argmax(spec)), shape)
    return tuple(
        int(round(np.fft.fftfreq(n)[i] * n)) for i, n in zip(index, shape, strict=True)
    )


def _save_png_image(path: Path, image) -> None:
    """Write values in [0, 1] (clipped) as an 8-bit PNG, grey or RGB, atomically."""
    import imageio.v3 as iio
    import numpy as np

    from .io import atomic_write

    img = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    img8 = np.round(img * 255.0).astype(np.uint8)
    atomic_write(path, lambda tmp: iio.imwrite(tmp, img8, extension=".png"))


# --------------------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------------------


def _cmd_report(args, command: str) -> int:
    from .report import run_report

    _check_out(args, ("index.html", "report.json"))
    summary = run_report(
        args.out, quick=args.quick, seed=args.seed, command=command, device=args.device
    )
    for rec in summary["studies"]:
        extra = f" ({rec['error']})" if rec["error"] else ""
        seconds = "" if rec["seconds"] is None else f" {rec['seconds']} s"
        print(f"{rec['key']:<18} {rec['status']}{seconds}{extra}")
    print(f"wrote {Path(args.out) / summary['page']} ({summary['seconds']} s)")
    return 1 if any(r["status"] == "failed" for r in summary["studies"]) else 0


def _cmd_spectrum(args, command: str) -> int:
    import numpy as np

    from .io import write_json
    from .provenance import provenance

    shape = (
        tuple(args.grid)
        if args.grid
        else ((256,) if args.mapping == "power-law" else (64, 64))
    )
    if not 1 <= len(shape) <= 3:
        raise _UsageError(f"--grid takes 1 to 3 sizes; got {len(shape)}")
    if min(shape) < 1:
        raise _UsageError(f"--grid sizes must be >= 1; got {' '.join(map(str, shape))}")
    n = math.prod(shape)
    if n > MAX_POINTS:
        raise _UsageError(
            f"--grid {' x '.join(map(str, shape))} has {n:,} points, over the CLI's "
            f"limit of {MAX_POINTS:,}; use the Python API (ntkspec.spectrum) for more"
        )
    if args.top is None:
        args.top = min(20, n)
    if not 1 <= args.top <= n:
        raise _UsageError(
            f"-k/--top must be between 1 and the {n} grid points; got {args.top}"
        )
    if n * args.top * 8 > MAX_VECTOR_BYTES:
        raise _UsageError(
            f"-k {args.top} eigenvectors on {n:,} points would need "
            f"{n * args.top * 8 / 2**30:.1f} GiB; ask for fewer with -k"
        )
    mapping = _mapping_from_args(args, len(shape))
    stem = f"spectrum_{args.mapping}"
    out = _check_out(args, (f"{stem}.json", f"{stem}.png"))
    from .kernels import ReluMLP

    arch = ReluMLP(args.depth)
    grid_cls, spectrum = _library("Grid"), _library("spectrum")
    grid = grid_cls(shape)
    points = grid
    from .operators import structure

    if n <= DENSE_POINTS and structure(mapping, grid) != "circulant":
        # Small non-periodic grids: the dense path (the points in the grid's C order)
        # is exact and cheaper than Lanczos, whose Krylov space would be most of N.
        points = grid.points()
    lam, vecs = spectrum(
        arch, mapping, points, k=args.top, kernel=args.kernel, vectors=True
    )
    lam = np.asarray(lam, dtype=np.float64)
    vecs = np.asarray(vecs)
    freqs = [_dominant_frequency(vecs[:, i], shape) for i in range(lam.size)]
    radial = [float(np.sqrt(sum(f * f for f in fr))) for fr in freqs]

    print(
        f"top {lam.size} eigenvalues of the {args.kernel.upper()} Gram, "
        f"{args.mapping} mapping, grid {' x '.join(map(str, shape))}:"
    )
    print(f"{'rank':>5}  {'eigenvalue':>14}  {'λ/λ1':>10}  {'|k|':>7}  frequency")
    for i, (value, fr, r) in enumerate(zip(lam, freqs, radial, strict=True)):
        print(f"{i + 1:>5}  {value:>14.6e}  {value / lam[0]:>10.3e}  {r:>7.2f}  {fr}")

    data = {
        "description": "Top eigenvalues of the kernel Gram K on the grid (K itself, "
        "not K/N), with the dominant frequency of each eigenvector.",
        "grid": list(shape),
        **_mapping_settings(args),
        "eigenvalues": lam.tolist(),
        "frequencies": [list(f) for f in freqs],
        "frequency_magnitude": radial,
        "provenance": provenance(command, args.seed),
    }
    _plot_spectrum(
        lam,
        radial,
        out / f"{stem}.png",
        title=f"{args.mapping}, grid {' x '.join(map(str, shape))}",
    )
    write_json(out / f"{stem}.json", data)
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
    return 0


def _plot_spectrum(lam, radial, path: Path, *, title: str) -> None:
    from . import plotting
    from .io import agg_subplots, save_figure

    fig, axes = agg_subplots(1, 2, figsize=(10, 3.8))
    plotting.eigenvalue_spectrum(lam, axes[0], marker=".")
    axes[0].set_title(f"eigenvalues by rank ({title})", fontsize=10)
    plotting.radial_spectrum(radial, lam, axes[1], logx=False)
    axes[1].set_title("eigenvalue against |frequency| of its eigenvector", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _load_image(path_str: str, key: str | None):
    """Load an image file or array as float64 (H, W, C); errors are one line."""
    import numpy as np

    path = Path(path_str)
    if not path.is_file():
        raise _UsageError(f"image file {path_str!r} does not exist or is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            _check_npy_header(path, path_str)
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if not names:
                    raise _UsageError(f"{path_str}: the .npz file holds no arrays")
                if key is not None and key not in names:
                    raise _UsageError(
                        f"{path_str}: no array {key!r}; it holds {', '.join(names)}"
                    )
                arr = z[key if key is not None else names[0]]
        else:
            data = path.read_bytes()
            if not data.startswith(_IMAGE_SIGNATURES):
                raise _UsageError(
                    f"{path_str} is not a PNG or JPEG image (nor a .npy/.npz array)"
                )
            size = _image_size(data)
            if size is not None and size[0] * size[1] > MAX_POINTS:
                raise _UsageError(
                    f"{path_str}: the image is {size[1]} x {size[0]} "
                    f"({size[0] * size[1]:,} pixels, read from its header), over the "
                    f"CLI's limit of {MAX_POINTS:,}; downsample it or use the Python "
                    "API"
                )
            import imageio.v3 as iio

            arr = iio.imread(data)  # from bytes: no file handle left open on failure
    except _UsageError:
        raise
    except Exception as err:  # any reader failure is the file's fault here
        reason = " ".join(str(err).split()) or type(err).__name__
        raise _UsageError(
            f"cannot read {path_str!r} as an image (PNG/JPEG) or .npy/.npz array: "
            f"{reason[:200]}"
        ) from None
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    else:
        raise _UsageError(
            f"{path_str}: image values must be real numbers; got dtype {arr.dtype}"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise _UsageError(
            f"{path_str}: an image must have shape (H, W) or (H, W, C) with C in 1..4; "
            f"got {arr.shape}"
        )
    if arr.shape[2] in (2, 4):  # drop alpha
        arr = arr[:, :, : arr.shape[2] - 1]
    if not np.all(np.isfinite(arr)):
        raise _UsageError(f"{path_str}: the image contains NaN or inf values")
    return arr


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, without decoding; None if unknown."""
    if data.startswith(_IMAGE_SIGNATURES[0]):
        # The first chunk of a PNG is IHDR: width and height, 4 bytes each, big-endian.
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(
                data[20:24], "big"
            )
        return None
    try:  # JPEG: Pillow reads only the header on open
        import io
        import warnings

        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with imageio
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we judge size
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:
        return (MAX_POINTS + 1, 1)
    except Exception:  # let the decoder report a broken file
        return None


def _check_npy_header(path: Path, path_str: str) -> None:
    """Refuse a .npy whose header declares more values than the CLI takes."""
    import numpy as np

    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
    except Exception:  # let np.load report a broken file
        return
    values = math.prod(shape)
    if values > 4 * MAX_POINTS:
        raise _UsageError(
            f"{path_str}: the array has shape {tuple(shape)} ({values:,} values, read "
            f"from its header), over the CLI's limit of {MAX_POINTS:,} pixels"
        )


def _psnr(pred, target) -> float:
    from .data import psnr

    return psnr(pred, target)


def _cmd_regress(args, command: str) -> int:
    import numpy as np

    from .io import write_json
    from .provenance import provenance

    _check_finite_positive(args.ridge, "--ridge", allow_zero=True)
    img = _load_image(args.image, args.key)
    h, w, c = img.shape
    if min(h, w) < 4:
        raise _UsageError(
            f"{args.image}: the image is {h} x {w}; it must be at least 4 x 4 pixels "
            "(training uses every other pixel)"
        )
    if h * w > MAX_POINTS:
        raise _UsageError(
            f"{args.image}: the image has {h * w:,} pixels, over the CLI's limit of "
            f"{MAX_POINTS:,}; downsample it or use the Python API"
        )
    cropped = (h % 2, w % 2) != (0, 0)
    img = img[: h - h % 2, : w - w % 2]
    h, w = img.shape[:2]
    mapping = _mapping_from_args(args, 2)
    stem = f"{Path(args.image).stem}_{args.mapping}"
    out = _check_out(args, (f"{stem}_pred.png", f"{stem}.json"))
    from .kernels import ReluMLP

    arch = ReluMLP(args.depth)
    grid_cls, kernel_regression = _library("Grid"), _library("kernel_regression")
    train = img[::2, ::2]
    y_train = train.reshape(-1, c)
    pred = kernel_regression(
        arch,
        mapping,
        grid_cls((h // 2, w // 2)),
        y_train,
        grid_cls((h, w)),
        kernel=args.kernel,
        ridge=args.ridge,
    )
    pred = np.asarray(pred, dtype=np.float64).reshape(h, w, c)
    if not np.all(np.isfinite(pred)):
        raise _UsageError(
            "the prediction is not finite (an ill-conditioned system); try --ridge 1e-6"
        )
    train_mask = np.zeros((h, w), dtype=bool)
    train_mask[::2, ::2] = True
    psnr = {
        "heldout_1_1": _psnr(pred[1::2, 1::2], img[1::2, 1::2]),
        "all_non_train": _psnr(pred[~train_mask], img[~train_mask]),
        "train": _psnr(pred[train_mask], img[train_mask]),
    }
    data = {
        "description": "NTK/NNGP kernel regression of an image: trained on pixels "
        "[::2, ::2], predicted on the full grid; PSNR = -10 log10(MSE) on values in "
        "[0, 1].",
        "image": str(args.image),
        "shape": [h, w, c],
        "cropped_to_even": cropped,
        **_mapping_settings(args),
        "ridge": args.ridge,
        "psnr": psnr,
        "prediction": f"{stem}_pred.png",
        "provenance": provenance(command, args.seed),
    }
    _save_png_image(out / f"{stem}_pred.png", pred)
    write_json(out / f"{stem}.json", data)
    print(
        f"PSNR held-out [1::2, 1::2] {psnr['heldout_1_1']:.2f} dB · all non-train "
        f"{psnr['all_non_train']:.2f} dB · train {psnr['train']:.2f} dB"
    )
    print(f"wrote {out / (stem + '_pred.png')} and {out / (stem + '.json')}")
    return 0


def _cmd_suggest(args, command: str) -> int:
    from .io import write_json
    from .provenance import provenance

    if args.time is not None:
        _check_finite_positive(args.time, "--time")
    if args.num_freqs < 2:
        raise _UsageError(f"--num-freqs must be >= 2; got {args.num_freqs}")
    if args.depth < 1:
        raise _UsageError(f"--depth must be >= 1; got {args.depth}")
    json_path = None
    if args.json is not None:
        json_path = Path(args.json)
        if json_path.is_dir():
            raise _UsageError(f"--json {args.json!r} is a folder, not a file path")
        try:
            from .io import check_writable_folder

            check_writable_folder(json_path.parent, (json_path.name,), what="--json")
        except ValueError as err:
            raise _UsageError(str(err)) from None
    img = _load_image(args.image, args.key)
    h, w, c = img.shape
    if min(h, w) < 4:
        raise _UsageError(
            f"{args.image}: the image is {h} x {w}; it must be at least 4 x 4 pixels "
            "(training uses every other pixel)"
        )
    if h * w > MAX_POINTS:
        raise _UsageError(
            f"{args.image}: the image has {h * w:,} pixels, over the CLI's limit of "
            f"{MAX_POINTS:,}; downsample it or use the Python API"
        )
    cropped = (h % 2, w % 2) != (0, 0)
    img = img[: h - h % 2, : w - w % 2]
    from .design import suggest_scale
    from .kernels import ReluMLP

    choice = suggest_scale(
        ReluMLP(args.depth),
        img,
        family=args.family,
        num_freqs=args.num_freqs,
        times=args.time,
        seed=args.seed,
    )
    name = "sigma" if args.family == "gaussian" else "S"
    print(
        f"suggested {args.family} {name} = {choice.scale:g} "
        f"(budget t = {choice.time:g}, no network trained)"
    )
    print(f"{name:>8}  predicted held-out PSNR (dB)")
    for sc, ps in zip(choice.scales, choice.predicted_psnr, strict=True):
        mark = "  <- best" if sc == choice.scale else ""
        print(f"{sc:>8g}  {ps:.2f}{mark}")
    if json_path is not None:
        data = {
            "description": "Mapping scale suggested by ntkspec.design.suggest_scale: "
            "predicted held-out PSNR ([1::2, 1::2]) of the infinite-width network "
            "trained on [::2, ::2] for the budget `time`.",
            "image": str(args.image),
            "shape": [int(img.shape[0]), int(img.shape[1]), c],
            "cropped_to_even": cropped,
            "depth": args.depth,
            **choice.to_dict(),
            "provenance": provenance(command, args.seed),
        }
        write_json(json_path, data)
        print(f"wrote {json_path}")
    return 0


def _is_file_path(value) -> bool:
    """True for a str/Path naming an existing file (long or multi-line text is not)."""
    if (
        not isinstance(value, str | Path)
        or len(str(value)) > 1024
        or "\n" in str(value)
    ):
        return False
    try:
        return Path(value).is_file()
    except OSError:
        return False


def _cmd_validate(args, command: str) -> int:
    try:
        from .validation import run_validation
    except ImportError:
        raise _Unavailable(
            "ntkspec.validation is not available in this installation of ntkspec"
        ) from None
    _check_out(args)
    written = run_validation(
        args.out, quick=args.quick, seed=args.seed, command=command, size=args.size
    )
    for name, info in written.items():
        if isinstance(info, dict):
            files = [str(v) for v in info.values() if _is_file_path(v)]
            seconds = info.get("seconds")
            extra = f" ({seconds} s)" if seconds is not None else ""
            print(f"{name}{extra}: {', '.join(files) or 'done'}")
        else:
            print(f"{name}: {info}")
    return 0


def _cmd_profiles(args, command: str) -> int:
    if args.depth < 1:
        raise _UsageError(f"--depth must be >= 1; got {args.depth}")
    _check_out(args, ("ntk_profiles.png", "ntk_profiles.json"))
    from .studies.profiles import ntk_profiles

    ntk_profiles(args.out, depth=args.depth, seed=args.seed, command=command)
    print(f"wrote {args.out}/ntk_profiles.png and ntk_profiles.json")
    return 0


_COMMANDS = {
    "report": _cmd_report,
    "spectrum": _cmd_spectrum,
    "regress": _cmd_regress,
    "suggest": _cmd_suggest,
    "validate": _cmd_validate,
    "profiles": _cmd_profiles,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ntkspec`` console script; returns the exit code.

    0 on success, 1 when a capability is missing from this installation or a report
    study failed, 2 on a usage error (one line on stderr, nothing written).
    """
    as_process = argv is None  # the console script / python -m ntkspec
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    command = "ntkspec " + " ".join(argv)
    prog = f"ntkspec {args.command}"
    try:
        with _terminate_as_interrupt(), interrupts_raise():
            device = getattr(args, "device", "auto")
            from .report import device_scope

            with device_scope(device):
                return _COMMANDS[args.command](args, command)
    except KeyboardInterrupt as err:
        # Outputs are atomic and the report is swapped in only when complete, so an
        # interrupted run has left the previous files as they were.
        how = "terminated (SIGTERM)" if isinstance(err, _Terminated) else "interrupted"
        print(f"{prog}: {how}", file=sys.stderr)
        code = 143 if isinstance(err, _Terminated) else 130
        if as_process:
            # Clean-up has run (temp files and folders are gone). Skip the interpreter's
            # teardown: with XLA's threads stopped mid-work it can crash (SIGSEGV).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except OSError as err:
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(
            f"{prog}: error: {err.strerror or type(err).__name__}{where}",
            file=sys.stderr,
        )
        return 2
    except _UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except _Unavailable as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    except ImportError as err:
        # One of ntkspec's own modules is missing or broken: never "not available".
        print(f"{prog}: broken installation: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as err:
        # The library validates its arguments at the boundary with these, naming the
        # argument: a usage error seen from the command line.
        text = " ".join(str(err).split())
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
