"""Execute the walkthrough notebooks through a real Jupyter kernel and save them.

The percent-format ``.py`` files are the source (reviewable diffs); each is paired by
jupytext with an ``.ipynb`` that is committed *with its outputs*, so that it renders on
GitHub. This script reads each ``.py``, runs it cell by cell in an IPython kernel
(nbclient + ipykernel) and writes the executed ``.ipynb`` beside it.

    python analysis/notebooks/execute.py            # full size (`make notebooks`)
    python analysis/notebooks/execute.py --quick    # test size, NTKSPEC_QUICK=1
    python analysis/notebooks/execute.py --no-write spectra_walkthrough

Figures the notebooks save go to ``NTKSPEC_NOTEBOOK_OUT`` (default here
``figures/tmp/notebooks``, ignored by git), so re-executing dirties only the notebooks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NAMES = ("spectra_walkthrough", "regression_walkthrough", "dynamics_vs_networks")


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the kernel (it inherits them), then restore."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(
    name: str,
    *,
    quick: bool,
    workdir: str | Path,
    figures: str | Path | None = None,
    timeout: int = 1800,
):
    """Run notebook ``name`` (its ``.py`` source) in a fresh kernel; return it executed.

    Args:
        name: stem of a file in ``analysis/notebooks``.
        quick: test sizes (``NTKSPEC_QUICK=1``).
        workdir: the kernel's working directory.
        figures: where the notebook saves its figures (``NTKSPEC_NOTEBOOK_OUT``);
            default ``workdir/notebook_outputs``.
        timeout: seconds allowed per cell.
    """
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(HERE / f"{name}.py")
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    figures = Path(workdir) / "notebook_outputs" if figures is None else Path(figures)
    env = {
        "NTKSPEC_QUICK": "1" if quick else "0",
        "NTKSPEC_NOTEBOOK_OUT": str(figures),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    with _environment(**env):
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="test sizes")
    parser.add_argument(
        "--no-write", action="store_true", help="execute only, save nothing"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; choose from {list(NAMES)}")
    import jupytext

    figures = REPO / "figures" / "tmp" / "notebooks"
    figures.mkdir(parents=True, exist_ok=True)
    for name in args.names or NAMES:
        t0 = time.perf_counter()
        notebook = execute(name, quick=args.quick, workdir=figures, figures=figures)
        if not args.no_write:
            target = HERE / f"{name}.ipynb"
            tmp = target.with_name(f".{name}.tmp.ipynb")
            jupytext.write(notebook, tmp, fmt="ipynb")
            os.replace(tmp, target)
        print(f"{name}: executed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
