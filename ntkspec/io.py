"""Writing outputs atomically (temp file, then rename), and drawing figures off pyplot.

An interrupted run therefore never leaves a half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "atomic_write",
    "write_json",
    "save_figure",
    "agg_figure",
    "agg_subplots",
    "readable",
    "check_writable_folder",
]


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename the temp file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=path.suffix + ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        writer(tmp)
        # mkstemp creates the file 0600; give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON, atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.write("\n")

    return atomic_write(path, _write)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically (format from the suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def agg_figure(**figure_kw):
    """A matplotlib ``Figure`` on its own Agg canvas, outside pyplot.

    Library code draws files this way so that the caller's pyplot backend (inline
    plots in a notebook, say) is left alone: no ``matplotlib.use``, no pyplot state,
    nothing to close.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**figure_kw)
    FigureCanvasAgg(fig)
    return fig


def agg_subplots(
    nrows: int = 1, ncols: int = 1, *, figsize=None, layout=None, **subplots_kw
):
    """``(fig, axes)`` as ``pyplot.subplots`` gives them, on an Agg canvas."""
    fig = agg_figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **subplots_kw)


def readable(fig, *, fontsize: float = 11.0) -> None:
    """Raise tick, label, legend and title sizes of ``fig`` to read at page width."""
    for ax in fig.axes:
        ax.tick_params(labelsize=fontsize - 1)
        ax.xaxis.label.set_size(fontsize)
        ax.yaxis.label.set_size(fontsize)
        ax.title.set_size(fontsize + 0.5)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(max(text.get_fontsize(), fontsize - 2))


def check_writable_folder(
    out: str | os.PathLike, names: tuple[str, ...] = (), *, what: str = "out"
) -> Path:
    """Check, creating nothing, that files ``names`` can be written into folder ``out``.

    ``out`` must be a folder or not exist yet; its nearest existing ancestor must be a
    folder in which a file can be created (probed with a temp file, removed at once:
    permission bits say nothing for root or for /proc); no ``out / name`` may be a
    folder. Run it before any work, so a bad output path fails at once.

    Raises:
        ValueError: naming ``what``, the path and the reason.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{what} {str(out)!r} exists and is not a folder")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(
            f"{what} {str(out)!r} cannot be created: {str(probe)!r} is a file, not a "
            "folder"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ntkspec-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(
            f"{what} {str(out)!r} cannot be written: no file can be created in "
            f"{str(probe)!r} ({reason})"
        ) from None
    for name in names:
        target = out / name
        if target.is_dir():
            raise ValueError(
                f"{what} {str(out)!r}: the output file {str(target)!r} is a folder; "
                "move it away or choose another folder"
            )
    return out
