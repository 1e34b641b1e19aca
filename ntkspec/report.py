"""The main job (``ntkspec report``): run every study, then assemble one HTML page.

Each study in :data:`STUDIES` is a module with ``run(out_dir, *, quick, seed, command)``
that writes its numbers as JSON (with a ``"provenance"`` entry) and its figures as PNG
into ``out/<key>/`` and returns what it wrote. The report first imports every study
(a study module of ntkspec's own that fails to import stops the report with
:class:`StudyImportError`: a broken installation is never "not available"), then runs
them in turn (one that raises is listed as "failed" with its one-line error, and the
others still run), then writes

* ``out/index.html``: a self-contained page (inline CSS, no scripts, no network)
  with every figure embedded in an ``<img>`` as a ``data:`` URI (its file named in
  ``data-source``), every table of numbers
  the studies' JSON holds, what each study reduced to fit the report's time budget, and
  the provenance (command, versions, device, date, seed) beside each table;
* ``out/report.json``: every file the run wrote, every study's status and every
  number the page shows, each with the JSON file and JSON pointer it was read from (the
  tests check the page against it).

Tables come from a study's JSON in one shared form (see :func:`tables_of`)::

    "tables": [{"title": "...", "columns": ["mapping", "ours", "paper"],
                "rows": [["gaussian", 25.1, {"mean": 25.57, "std": 4.19}], ...],
                "note": "..."}]

and what the study reduced for the report's budget under ``"reduced"`` (a string, a list
of strings or a mapping name -> string). All outputs are written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import importlib
import importlib.util
import math
import numbers
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from .io import atomic_write, check_writable_folder, write_json

__all__ = [
    "Study",
    "StudyImportError",
    "STUDIES",
    "run_report",
    "device_scope",
    "tables_of",
]


@dataclasses.dataclass(frozen=True)
class Study:
    """One entry of the report: where its code lives and how the page titles it.

    Attributes:
        key: identifier and output sub-folder (``out/<key>/``).
        title: heading on the page.
        module: importable module holding the study.
        function: name of its entry point, ``(out_dir, *, quick, seed, command)``
            returning a dict.
        section: group heading on the page.
        report_options: extra keyword arguments at report size (for example the
            CPU-reduced size of a study whose own default is larger).
        quick_options: extra keyword arguments under ``--quick`` (a smoke-test size).
            Options the entry point does not accept are dropped, so a study that
            changes its signature still runs.
    """

    key: str
    title: str
    module: str
    function: str = "run"
    section: str = "Kernels"
    report_options: tuple[tuple[str, object], ...] = ()
    quick_options: tuple[tuple[str, object], ...] = ()


#: The studies the report runs, in page order. Adding one is one line here.
STUDIES: tuple[Study, ...] = (
    Study("profiles", "NTK against the coordinate offset", "ntkspec.studies.profiles"),
    Study(
        "spectra_1d",
        "1D power-law mappings: kernel and eigenvalue falloff",
        "ntkspec.studies.spectra_1d",
        section="Spectra",
    ),
    Study(
        "spectra_2d",
        "2D spectra of the paper's mappings",
        "ntkspec.studies.spectra_2d",
        section="Spectra",
    ),
    Study(
        "regression_table",
        "Table 1 by NTK regression (2D images)",
        "ntkspec.studies.regression_table",
        section="Kernel regression",
        quick_options=(("size", "tiny"),),
    ),
    Study(
        "ct_table",
        "Table 1, CT column, by NTK regression",
        "ntkspec.studies.ct_table",
        section="Kernel regression",
    ),
    Study(
        "mri_table",
        "Table 1, MRI column, by NTK regression",
        "ntkspec.studies.mri_table",
        section="Kernel regression",
    ),
    Study(
        "shape_table",
        "Table 1, 3D shape column, by NTK regression",
        "ntkspec.studies.shape_table",
        section="Kernel regression",
    ),
    Study(
        "sigma_sweep",
        "Gaussian scale sweep: under- and overfitting",
        "ntkspec.studies.sigma_sweep",
        section="Kernel regression",
    ),
    Study(
        "learning_1d",
        "1D study: test error and training dynamics against p",
        "ntkspec.studies.learning_1d",
        section="Kernel regression",
    ),
    Study(
        "eigenlearning",
        "Generalisation predicted from the spectrum",
        "ntkspec.studies.eigenlearning",
        section="Kernel regression",
    ),
    Study(
        "table1_budget",
        "Table 1 at the training budget: NTK theory, GD and Adam networks",
        "ntkspec.studies.table1_budget",
        section="Networks",
        report_options=(("size", "report"),),
        quick_options=(("size", "tiny"),),
    ),
    Study(
        "psnr_vs_time",
        "Held-out PSNR against training time, per mapping (infinite-width NTK)",
        "ntkspec.studies.psnr_vs_time",
        section="Networks",
        quick_options=(("size", "tiny"),),
    ),
    Study(
        "validation",
        "Theory against trained networks",
        "ntkspec.validation",
        function="run_validation",
        section="Networks",
        # the CPU-reduced validation, with the per-mode gap study
        report_options=(
            ("size", "quick"),
            (
                "studies",
                ("ntk_convergence", "dynamics_validation", "table1", "mode_gap"),
            ),
        ),
        quick_options=(("size", "tiny"), ("studies", ("ntk_convergence",))),
    ),
    Study(
        "scale_suggestion",
        "Choosing sigma from the NTK spectrum (ntkspec suggest) vs FreSh",
        "ntkspec.studies.scale_suggestion",
        section="Design",
    ),
)

_FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
_PROVENANCE_FIELDS = ("command", "ntkspec", "jax", "device", "date", "seed")
_REDUCED_KEYS = ("reduced", "reductions", "reduced_for_report")


# --------------------------------------------------------------------------------------
# Device selection
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def device_scope(device: str = "auto") -> Iterator[str]:
    """Run the block on the requested JAX platform; yield a description of the device.

    Args:
        device: "cpu", "gpu" or "auto" (JAX's default device).

    Raises:
        ValueError: an unknown name, or a platform JAX does not see on this machine.
    """
    if device not in ("cpu", "gpu", "auto"):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'auto'; got {device!r}")
    import jax

    if device == "auto":
        yield _describe(jax.devices()[0])
        return
    try:
        devices = jax.devices(device)
    except RuntimeError:
        devices = []
    if not devices:
        seen = sorted({d.platform for d in jax.devices()})
        raise ValueError(
            f"device {device!r} was requested but JAX sees no such device on this "
            f"machine (it sees: {', '.join(seen)}); use --device auto or cpu"
        )
    with jax.default_device(devices[0]):
        yield _describe(devices[0])


def _describe(dev) -> str:
    """'GPU (NVIDIA H100 80GB HBM3)' or 'CPU (2 cores)'."""
    if dev.platform == "cpu":
        return f"CPU ({os.cpu_count()} cores)"
    return f"{dev.platform.upper()} ({getattr(dev, 'device_kind', '') or 'unknown'})"


# --------------------------------------------------------------------------------------
# Running the studies
# --------------------------------------------------------------------------------------


class StudyImportError(ImportError):
    """One of ntkspec's own study modules failed to import: the installation is broken.

    Unlike a missing capability outside the package (a GPU, say), this is never shown
    as "not available": the report stops before running anything.
    """


def _entry_point(study: Study):
    """The study's function; raises :class:`StudyImportError` when it cannot load."""
    try:
        module = importlib.import_module(study.module)
    except ImportError as err:
        raise StudyImportError(
            f"report study {study.key!r}: cannot import {study.module} "
            f"({_one_line(err)}); reinstall ntkspec"
        ) from err
    fn = getattr(module, study.function, None)
    if fn is None:
        raise StudyImportError(
            f"report study {study.key!r}: {study.module} has no {study.function!r}"
        )
    return fn


def _paths_in(value) -> list[Path]:
    """Paths to existing files among a study's returned values (nested one level)."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if not isinstance(item, str | os.PathLike):
            continue
        text = os.fspath(item)
        if len(text) > 1024 or "\n" in text:  # text, not a path
            continue
        try:
            if Path(text).suffix and Path(text).is_file():
                out.append(Path(text))
        except OSError:
            continue
    return out


def _files_written(returned: dict, folder: Path, since: float) -> list[Path]:
    """Files a study returned, plus files it wrote into its folder during the run."""
    found: dict[Path, None] = {}
    for value in returned.values() if isinstance(returned, dict) else []:
        for p in _paths_in(value):
            found[p.resolve()] = None
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if (
                p.is_file()
                and not p.name.startswith(".")
                and p.stat().st_mtime >= since
            ):
                found[p.resolve()] = None
    return list(found)


def _accepted(fn, options) -> dict:
    """The options ``fn`` accepts by keyword (all of them if it takes ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options if k in params}


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _run_studies(
    studies, out: Path, *, quick: bool, seed: int, command: str | None, progress: bool
) -> list[dict]:
    from tqdm.auto import tqdm

    results = []
    entry_points = [_entry_point(study) for study in studies]  # all, before any runs
    bar = tqdm(studies, desc="ntkspec report", unit="study", disable=not progress)
    for study, fn in zip(bar, entry_points, strict=True):
        bar.set_postfix_str(study.key)
        record = {
            "key": study.key,
            "title": study.title,
            "section": study.section,
            "module": f"{study.module}:{study.function}",
            "status": "not available",
            "seconds": None,
            "error": None,
            "options": {},
            "files": [],
        }
        if fn is not None:
            folder = out / study.key
            options = _accepted(
                fn, study.quick_options if quick else study.report_options
            )
            record["options"] = {k: _jsonable(v) for k, v in options.items()}
            start = time.time() - 1.0  # mtime resolution on some filesystems
            t0 = time.perf_counter()
            try:
                # Studies always run at their reduced ("quick") size here: the full
                # sizes are the analysis/ scripts. --quick shrinks further via options.
                returned = fn(folder, quick=True, seed=seed, command=command, **options)
            except Exception as err:  # a failing study is reported, the rest still run
                record["status"] = "failed"
                record["error"] = _one_line(err)
                returned = {}
            else:
                record["status"] = "ok"
            record["seconds"] = round(time.perf_counter() - t0, 2)
            record["files"] = [str(p) for p in _files_written(returned, folder, start)]
        results.append(record)
    bar.close()
    return results


# --------------------------------------------------------------------------------------
# Reading the studies' JSON
# --------------------------------------------------------------------------------------


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _pointer_part(key) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


class Ref(NamedTuple):
    """A table cell that shows the number at a JSON pointer of the study's JSON."""

    pointer: str


class PlusMinus(NamedTuple):
    """A table cell ``mean ± std (n = k)`` from JSON pointers.

    ``count`` points at the list of values averaged (or their number): a single run
    shows ``mean (n = 1)`` with no ``± 0``. The std is shown to the mean's decimals.
    """

    mean: Ref
    std: Ref | None
    count: Ref | None = None


#: Page labels for identifiers that studies use as row keys or JSON keys.
_LABELS = {
    "none_bias": "none, with bias (b_std = 0.1)",
    "heldout": "held-out [1::2, 1::2]",
    "nontrain": "all non-train",
    "positional": "positional encoding",
    "gaussian": "Gaussian",
    "basic": "basic",
    "none": "none (raw coordinates)",
}


def label(name: str) -> str:
    """How the page names an identifier: known names spelled out, else spaced."""
    return _LABELS.get(name, name.replace("_", " "))


def tables_of(data: dict) -> list[tuple[str, dict]]:
    """The tables a study's JSON declares itself, each as (JSON pointer, table dict).

    Accepted forms: ``"tables": [table, ...]`` or ``"tables": {name: table}`` or one
    ``"table": table`` at the top level, where a table is ``{"columns": [...], "rows":
    [...]}`` (rows are lists in column order, or mappings column -> cell; optional
    ``"title"`` and ``"note"``). A cell is a string, a number, None, or
    ``{"mean": m, "std": s}``, optionally with ``"n"`` (the number of runs, shown as
    ``(n = k)``). Anything else is ignored.
    """
    found = []
    tables = data.get("tables")
    if isinstance(tables, list):
        found += [(f"/tables/{i}", t) for i, t in enumerate(tables)]
    elif isinstance(tables, dict):
        found += [(f"/tables/{_pointer_part(k)}", t) for k, t in tables.items()]
    if isinstance(data.get("table"), dict):
        found.append(("/table", data["table"]))
    return [
        (ptr, t)
        for ptr, t in found
        if isinstance(t, dict)
        and isinstance(t.get("columns"), list)
        and isinstance(t.get("rows"), list)
    ]


def _declared_table(pointer: str, tdata: dict) -> dict:
    """A declared JSON table with its numbers turned into :class:`Ref` cells."""
    rows = []
    for r, row in enumerate(tdata["rows"]):
        if isinstance(row, dict):
            items = [(row.get(c), _pointer_part(c)) for c in tdata["columns"]]
        elif isinstance(row, list):
            items = [(cell, str(c)) for c, cell in enumerate(row)]
        else:
            continue
        cells = []
        for cell, part in items:
            ptr = f"{pointer}/rows/{r}/{part}"
            if _is_number(cell):
                cells.append(Ref(ptr))
            elif isinstance(cell, dict) and _is_number(cell.get("mean")):
                std = Ref(ptr + "/std") if _is_number(cell.get("std")) else None
                n = Ref(ptr + "/n") if _is_number(cell.get("n")) else None
                cells.append(PlusMinus(Ref(ptr + "/mean"), std, n))
            else:
                cells.append(cell)
        rows.append(cells)
    return {
        "title": tdata.get("title"),
        "columns": [str(c) for c in tdata["columns"]],
        "rows": rows,
        "note": tdata.get("note"),
    }


def _scalar_table(data: dict) -> list[dict]:
    """Fallback: the top-level numbers of a JSON that declares no table."""
    rows = [
        [str(k), Ref(f"/{_pointer_part(k)}")]
        for k, v in data.items()
        if _is_number(v) and k not in ("seconds",)
    ]
    return [{"title": "Numbers", "columns": ["quantity", "value"], "rows": rows}]


def _table1_networks(data: dict) -> list[dict]:
    reg = (data.get("ntk_regression") or {}).get("psnr", {})
    rows = []
    for image_set, block in data["table1"].items():
        for m in block["mappings"]:
            base = f"/table1/{_pointer_part(image_set)}/mappings/{_pointer_part(m)}"
            paper = f"/paper_table1/{_pointer_part(image_set)}/{_pointer_part(m)}"
            ntk = (
                Ref(f"/ntk_regression/psnr/{image_set}/{m}")
                if m in reg.get(image_set, {})
                else None
            )
            rows.append(
                [
                    image_set,
                    m,
                    PlusMinus(
                        Ref(base + "/heldout/mean"),
                        Ref(base + "/heldout/std"),
                        Ref(base + "/heldout/n"),
                    ),
                    PlusMinus(
                        Ref(base + "/nontrain/mean"),
                        Ref(base + "/nontrain/std"),
                        Ref(base + "/nontrain/n"),
                    ),
                    ntk,
                    PlusMinus(Ref(paper + "/0"), Ref(paper + "/1"))
                    if m in data.get("paper_table1", {}).get(image_set, {})
                    else None,
                ]
            )
    tables = [
        {
            "title": "Table 1 with trained networks: PSNR (dB), mean ± std",
            "columns": [
                "set",
                "mapping",
                "network, held-out [1::2, 1::2]",
                "network, all non-train",
                "NTK regression",
                "paper (Tancik et al.)",
            ],
            "rows": rows,
            "note": data.get("image_source"),
        }
    ]
    sweep = data.get("sigma_sweep", {}).get("runs", [])
    if sweep:
        tables.append(
            {
                "title": "Gaussian σ sweep with networks: PSNR (dB)",
                "columns": ["σ", "train", "held-out"],
                "rows": [
                    [
                        Ref(f"/sigma_sweep/runs/{i}/sigma"),
                        Ref(f"/sigma_sweep/runs/{i}/psnr_train"),
                        Ref(f"/sigma_sweep/runs/{i}/psnr_heldout"),
                    ]
                    for i in range(len(sweep))
                ],
            }
        )
    return tables


def _ntk_convergence(data: dict) -> list[dict]:
    rows = [
        [Ref(f"/widths/{i}"), Ref(f"/mean_error/{i}")]
        for i in range(len(data["widths"]))
    ]
    rows.append(
        ["log-log slope (± stderr)", PlusMinus(Ref("/slope"), Ref("/slope_stderr"))]
    )
    rows.append(["theory slope", Ref("/theory_slope")])
    return [
        {
            "title": "Empirical NTK against the analytic NTK: relative Frobenius error",
            "columns": ["width", "mean relative error"],
            "rows": rows,
        }
    ]


def _dynamics_validation(data: dict) -> list[dict]:
    tables = []
    for task, block in data["tasks"].items():
        t = f"/tasks/{_pointer_part(task)}"
        widths = block["widths"]
        rows = []
        for gap, summary in block["gap_summary"].items():
            g = f"{t}/gap_summary/{_pointer_part(gap)}"
            cells = [Ref(f"{g}/mean_per_width/{i}") for i in range(len(widths))]
            rows.append(
                [
                    gap.replace("_", " "),
                    *cells,
                    Ref(f"{g}/slope"),
                    "yes" if summary.get("shrinks") else "no",
                ]
            )
        tables.append(
            {
                "title": f"Network against gd_dynamics, task {task}: gap by width",
                "columns": ["gap", *(f"width {w}" for w in widths), "slope", "shrinks"],
                "rows": rows,
                "note": block.get("description"),
            }
        )
    return tables


def _table1_ntk(data: dict) -> list[dict]:
    def rows_of(block_key: str, with_paper: bool) -> list:
        rows = []
        for image_set, block in data[block_key].items():
            for m, entry in block["mappings"].items():
                base = f"/{block_key}/{_pointer_part(image_set)}/mappings/"
                base += _pointer_part(m)
                row = [
                    image_set,
                    m,
                    PlusMinus(
                        Ref(base + "/heldout/mean"),
                        Ref(base + "/heldout/std"),
                        Ref(base + "/heldout/per_image"),
                    ),
                    PlusMinus(
                        Ref(base + "/nontrain/mean"),
                        Ref(base + "/nontrain/std"),
                        Ref(base + "/nontrain/per_image"),
                    ),
                ]
                if with_paper:
                    paper = entry.get("paper")
                    row.append(
                        PlusMinus(Ref(base + "/paper/mean"), Ref(base + "/paper/std"))
                        if isinstance(paper, dict)
                        else None
                    )
                row.append(entry.get("size", ""))
                rows.append(row)
        return rows

    columns = ["set", "mapping", "held-out [1::2, 1::2]", "all non-train"]
    tables = [
        {
            "title": "Table 1 by NTK regression: PSNR (dB), mean ± std over images",
            "columns": [*columns, "paper (networks)", "size"],
            "rows": rows_of("table1", True),
            "note": "The paper's numbers are for trained networks on DIV2K and its "
            "text set; ours are the infinite-width NTK on scikit-image stand-ins.",
        }
    ]
    if isinstance(data.get("reduced"), dict):
        tables.append(
            {
                "title": "All mappings at the no-mapping row's reduced size",
                "columns": [*columns, "size"],
                "rows": rows_of("reduced", False),
            }
        )
    return tables


def _sigma_sweep(data: dict) -> list[dict]:
    tables = []
    for ridge, runs in data["curves"].items():
        base = f"/curves/{_pointer_part(ridge)}"
        rows = [
            [
                Ref(f"{base}/{i}/sigma"),
                Ref(f"{base}/{i}/train_psnr"),
                Ref(f"{base}/{i}/test_psnr_heldout"),
                Ref(f"{base}/{i}/test_psnr_nontrain"),
                "yes" if run.get("converged", True) else "no",
            ]
            for i, run in enumerate(runs)
        ]
        tables.append(
            {
                "title": f"NTK regression against σ, relative ridge {ridge}: PSNR (dB)",
                "columns": ["σ", "train", "held-out", "all non-train", "converged"],
                "rows": rows,
                "note": data.get("size"),
            }
        )
    return tables


def _learning_1d(data: dict) -> list[dict]:
    rows = [
        [
            name,
            PlusMinus(
                Ref(f"/mappings/{_pointer_part(name)}/test_mse_mean"),
                Ref(f"/mappings/{_pointer_part(name)}/test_mse_std"),
            ),
            Ref(f"/mappings/{_pointer_part(name)}/condition"),
        ]
        for name in data["mappings"]
    ]
    return [
        {
            "title": "1D power-law mappings: NTK regression test MSE (mean ± std over "
            "signals)",
            "columns": ["mapping", "test MSE", "condition number"],
            "rows": rows,
        }
    ]


def _eigenlearning(data: dict) -> list[dict]:
    rows = []
    for name, curve in data["curves"].items():
        base = f"/curves/{_pointer_part(name)}"
        for i in range(len(curve["n"])):
            measured = Ref(f"{base}/measured_test_mse/{i}")
            sem = Ref(f"{base}/measured_sem/{i}") if "measured_sem" in curve else None
            rows.append(
                [
                    name,
                    Ref(f"{base}/n/{i}"),
                    Ref(f"{base}/predicted_test_mse/{i}"),
                    PlusMinus(measured, sem),
                ]
            )
    return [
        {
            "title": "Eigenlearning: predicted against measured test MSE",
            "columns": ["curve", "n", "predicted", "measured (± s.e.m.)"],
            "rows": rows,
        }
    ]


#: Tables for JSON files (by file stem) whose study declares none in the shared form.
ADAPTERS: dict[str, Callable[[dict], list[dict]]] = {
    "sigma_sweep": _sigma_sweep,
    "learning_1d": _learning_1d,
    "eigenlearning": _eigenlearning,
    "table1_ntk": _table1_ntk,
    "table1_networks": _table1_networks,
    "ntk_convergence": _ntk_convergence,
    "dynamics_validation": _dynamics_validation,
}


def _tables_for(stem: str, data: dict) -> list[dict]:
    """The tables the page shows for one JSON file (declared, adapted, or scalars)."""
    declared = tables_of(data)
    if declared:
        return [_declared_table(ptr, t) for ptr, t in declared]
    if stem in ADAPTERS:
        try:
            return ADAPTERS[stem](data)
        except (KeyError, IndexError, TypeError, AttributeError):
            pass  # the study changed its format: fall back to its scalars
    return _scalar_table(data)


def resolve_pointer(data, pointer: str):
    """Follow a JSON pointer (RFC 6901) into loaded JSON."""
    node = data
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def format_number(value, decimals: int | None = None) -> str:
    """How the page shows a number: integers exactly, reals to 4 significant digits.

    ``decimals`` fixes the digits after the point instead (a std shown beside its
    mean).
    """
    if isinstance(value, numbers.Integral):
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if decimals is not None:
        return f"{v:.{decimals}f}"
    return f"{v:.4g}"


def _decimals(shown: str) -> int | None:
    """Digits after the point of a number as shown, None in exponent notation."""
    if "e" in shown or not shown.replace(".", "", 1).lstrip("-").isdigit():
        return None
    return len(shown.split(".")[1]) if "." in shown else 0


def _reduced_of(data: dict) -> list[str]:
    """What a study says it reduced for the report's budget.

    ``"reduced"`` (text, list or mapping), else its ``"size_note"``, else its size
    preset.
    """
    out: list[str] = []
    for key in _REDUCED_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            out = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out = [v for v in value if v.strip()]
        elif isinstance(value, dict) and all(
            isinstance(v, str) for v in value.values()
        ):
            out = [f"{k}: {v}" for k, v in value.items()]
        if out:
            return out
    if isinstance(data.get("size_note"), str):
        return [data["size_note"]]
    if isinstance(data.get("size"), str):
        return [f"size preset {data['size']!r} (see the study's SIZES)"]
    return []


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1d232a;background:#f6f7f9;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:1.4em 2em 1.1em}
header h1{margin:0 0 .3em;font-size:1.6em}
header p{margin:.2em 0;opacity:.92}
main{max-width:1150px;margin:0 auto;padding:1em 2em 3em}
h2{border-bottom:2px solid #1f3a5f;padding-bottom:.2em;margin-top:1.8em}
section.study{background:#fff;border:1px solid #dde1e6;border-radius:8px;
 padding:.6em 1.3em 1em;margin:1.2em 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}
section.study h3{margin:.4em 0 .3em}
.badge{display:inline-block;font-size:.75em;padding:.1em .6em;border-radius:1em;
 margin-left:.5em;vertical-align:middle;font-weight:600}
.ok{background:#d6f0dd;color:#17603a}.failed{background:#fbd9d9;color:#8a1f1f}
.na{background:#e6e8eb;color:#555}
figure{margin:.8em 0;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #eceef1}
figcaption{font-size:.8em;color:#5b6570}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d5d9de;padding:.25em .7em;text-align:right}
th{background:#eef1f5}
td:first-child,th:first-child,td.t{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
.note,.prov{font-size:.8em;color:#5b6570}
.prov code{font-size:.95em}
.reduced{background:#fff8e1;border-left:4px solid #f2b705;padding:.4em .8em;
 font-size:.88em;margin:.6em 0}
.reduced ul{margin:.2em 0 .2em 1.2em;padding:0}
table.summary td{text-align:left}
"""


class _Numbers:
    """Collects every number shown, with where it came from."""

    def __init__(self):
        self.records: list[dict] = []

    def span(
        self, value, *, source: str, pointer: str, table: str, decimals=None
    ) -> str:
        shown = format_number(value, decimals)
        nid = f"n{len(self.records)}"
        self.records.append(
            {
                "id": nid,
                "table": table,
                "source": source,
                "pointer": pointer,
                "value": value,
                "shown": shown,
                "decimals": decimals,
            }
        )
        return f'<span class="num" data-number-id="{nid}">{html.escape(shown)}</span>'


def _std_decimals(mean, std) -> int | None:
    """Decimals for a std beside its mean: the mean's, or more to keep one digit."""
    dec = _decimals(format_number(mean))
    if dec is None or not _is_number(std) or not math.isfinite(float(std)):
        return dec
    if float(std) == 0.0:
        return dec
    return max(dec, -math.floor(math.log10(abs(float(std)))))


def _resolve_or_none(data, ref: Ref | None):
    if ref is None:
        return None
    try:
        return resolve_pointer(data, ref.pointer)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _cell_html(
    cell, data, numbers_: _Numbers, *, source: str, table: str, decimals=None
) -> str:
    if cell is None:
        return "–"
    if isinstance(cell, Ref):
        value = _resolve_or_none(data, cell)
        if value is None:
            return "–"
        if not _is_number(value):
            return html.escape(label(str(value)))
        return numbers_.span(
            value, source=source, pointer=cell.pointer, table=table, decimals=decimals
        )
    if isinstance(cell, PlusMinus):
        mean = _resolve_or_none(data, cell.mean)
        if not _is_number(mean) or not math.isfinite(float(mean)):
            return "–"
        text = _cell_html(cell.mean, data, numbers_, source=source, table=table)
        count = _resolve_or_none(data, cell.count)
        n = len(count) if isinstance(count, list) else count
        if cell.std is not None and n != 1:
            std = _cell_html(
                cell.std,
                data,
                numbers_,
                source=source,
                table=table,
                decimals=_std_decimals(mean, _resolve_or_none(data, cell.std)),
            )
            text += f" ± {std}"
        if isinstance(n, int):
            text += f" (n = {n})"
        return text
    return html.escape(label(cell) if isinstance(cell, str) else str(cell))


def _table_html(table: dict, data, numbers_: _Numbers, *, source: str, table_id: str):
    out = [f'<table id="{html.escape(table_id)}">']
    if table.get("title"):
        out.append(f"<caption>{html.escape(str(table['title']))}</caption>")
    out.append(
        "<tr>"
        + "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
        + "</tr>"
    )
    for row in table["rows"]:
        tds = "".join(
            ("<td>" if isinstance(cell, Ref | PlusMinus) else '<td class="t">')
            + _cell_html(cell, data, numbers_, source=source, table=table_id)
            + "</td>"
            for cell in row
        )
        out.append(f"<tr>{tds}</tr>")
    out.append("</table>")
    if table.get("note"):
        out.append(f'<p class="note">{html.escape(str(table["note"]))}</p>')
    return "\n".join(out)


def _provenance_html(prov: dict | None, source: str) -> str:
    if not isinstance(prov, dict):
        return f'<p class="prov">Source <code>{html.escape(source)}</code>.</p>'
    parts = []
    for key in _PROVENANCE_FIELDS:
        if prov.get(key) is not None:
            parts.append(f"{key} <code>{html.escape(str(prov[key]))}</code>")
    return (
        f'<p class="prov">Source <code>{html.escape(source)}</code>: '
        + " · ".join(parts)
        + "</p>"
    )


def _rel(path: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix()


def _json_html(path: Path, out: Path, numbers_: _Numbers, key: str, several: bool):
    """(html, reductions) for one JSON file of a study."""
    import json

    source = _rel(path, out)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"<p>Could not read {html.escape(source)}: {err}</p>", []
    if not isinstance(data, dict):
        return "", []
    parts = [f"<h4>{html.escape(path.stem)}</h4>"] if several else []
    if isinstance(data.get("description"), str):
        parts.append(f"<p>{html.escape(data['description'])}</p>")
    tables = [t for t in _tables_for(path.stem, data) if t["rows"]]
    for index, table in enumerate(tables):
        table_id = f"{key}-{path.stem}-{index}"
        parts.append(
            _table_html(table, data, numbers_, source=source, table_id=table_id)
        )
    parts.append(_provenance_html(data.get("provenance"), source))
    return "\n".join(parts), _reduced_of(data)


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_MIME[".svg"] = "image/svg+xml"


def _data_uri(path: Path) -> str:
    """The figure's bytes as a ``data:`` URI, so the page stands alone."""
    import base64

    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{_MIME[path.suffix.lower()]};base64,{payload}"


def _study_html(record: dict, out: Path, page_dir: Path, numbers_: _Numbers) -> str:
    status = record["status"]
    badge = {"ok": "ok", "failed": "failed"}.get(status, "na")
    seconds = f" · {record['seconds']} s" if record["seconds"] is not None else ""
    head = [
        f'<section class="study" id="{html.escape(record["key"])}">',
        f"<h3>{html.escape(record['title'])}"
        f'<span class="badge {badge}">{html.escape(status)}</span></h3>',
        f'<p class="note"><code>{html.escape(record["module"])}</code>{seconds}</p>',
    ]
    if status == "not available":
        head.append(
            "<p>Not available in this installation: the module is not there yet.</p>"
        )
    if record["error"]:
        head.append(f"<p><strong>Error:</strong> {html.escape(record['error'])}</p>")
    files = [Path(f) for f in record["files"]]
    jsons = [p for p in files if p.suffix == ".json"]
    body, reduced = [], []
    if record.get("options"):
        settings = ", ".join(f"{k}={v!r}" for k, v in record["options"].items())
        reduced.append(f"run by the report with {settings}")
    for path in jsons:
        text, red = _json_html(path, out, numbers_, record["key"], len(jsons) > 1)
        body.append(text)
        reduced += red
    if reduced:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in dict.fromkeys(reduced))
        head.append(
            '<div class="reduced"><strong>Reduced for the report:</strong>'
            f"<ul>{items}</ul></div>"
        )
    others = [p for p in files if p.suffix.lower() not in (".json", *_FIGURE_SUFFIXES)]
    if others:
        links = ", ".join(
            f'<a href="{html.escape(_rel(p, page_dir))}">{html.escape(p.name)}</a>'
            for p in others
        )
        body.append(f'<p class="note">Also written: {links}.</p>')
    for path in files:
        if path.suffix.lower() in _FIGURE_SUFFIXES:
            rel = _rel(path, page_dir)
            body.append(
                f'<figure><img src="{_data_uri(path)}" alt="{html.escape(path.stem)}"'
                f' data-source="{html.escape(rel)}">'
                f"<figcaption>{html.escape(_rel(path, out))}</figcaption></figure>"
            )
    return "\n".join([*head, *body, "</section>"])


def _page_html(
    records: list[dict],
    out: Path,
    page_dir: Path,
    *,
    quick: bool,
    seed: int,
    prov: dict,
    device: str,
    total_seconds: float,
    numbers_: _Numbers,
) -> str:
    size = (
        "--quick: every study at its smallest size (a smoke test; numbers are far from "
        "the paper's sizes)"
        if quick
        else "report size: each study reduced to fit about 5 minutes on a 2-core CPU "
        "(what was reduced is said in each section); the full sizes are the scripts "
        "in analysis/"
    )
    summary_rows = "".join(
        f'<tr><td><a href="#{html.escape(r["key"])}">{html.escape(r["title"])}</a></td>'
        f"<td>{html.escape(r['status'])}</td>"
        f"<td>{'' if r['seconds'] is None else r['seconds']}</td></tr>"
        for r in records
    )
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>ntkspec report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>ntkspec report: spectral bias of coordinate MLPs</h1>",
        "<p>Infinite-width NTK/NNGP of ReLU MLPs on Fourier features (Tancik et al., "
        "NeurIPS 2020, arXiv:2006.10739): spectra, kernel regression and checks "
        "against trained networks.</p>",
        f"<p>{html.escape(size)}.</p>",
        f"<p>Command <code>{html.escape(str(prov.get('command')))}</code> · seed "
        f"{seed} · device {html.escape(device)} · ntkspec "
        f"{html.escape(str(prov.get('ntkspec')))} · jax "
        f"{html.escape(str(prov.get('jax')))} · {html.escape(str(prov.get('date')))}"
        f" · {total_seconds:.1f} s in all</p></header><main>",
        '<h2>Contents</h2><table class="summary" id="summary">'
        "<tr><th>study</th><th>status</th><th>seconds</th></tr>"
        f"{summary_rows}</table>",
    ]
    section = None
    for record in records:
        if record["section"] != section:
            section = record["section"]
            body.append(f"<h2>{html.escape(section)}</h2>")
        body.append(_study_html(record, out, page_dir, numbers_))
    body.append("</main></body></html>")
    return "\n".join(body) + "\n"


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def run_report(
    out: str | Path = "figures/report",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    device: str = "auto",
    studies: tuple[Study, ...] | None = None,
    progress: bool = True,
) -> dict:
    """Run every study into ``out/<key>/`` and write the page ``out/index.html``.

    Args:
        out: output folder (created).
        quick: smallest sizes, for tests and smoke checks.
        seed: random seed handed to every study.
        command: the command line recorded in the provenance.
        device: "cpu", "gpu" or "auto": the JAX platform the studies run on.
        studies: the studies to run (default :data:`STUDIES`).
        progress: show a tqdm bar over the studies.

    Returns:
        The content of ``out/report.json``: ``studies`` (status, seconds, files
        of each), ``files`` (every file written, relative to ``out``), ``numbers``
        (every number the page shows, with its source JSON and pointer), ``page`` and
        ``provenance``.

    The report is built in a hidden temporary folder beside ``out`` and swapped in at
    the end, so an interrupted run (an exception, Ctrl-C, SIGTERM handled by the CLI)
    leaves ``out`` as it was and removes the temporary folder.

    Raises:
        ValueError: an unknown device or one JAX does not see; an ``out`` that cannot
            be written (checked before any work).
    """
    final = check_writable_folder(out, ("index.html", "report.json"), what="out")
    if device not in ("cpu", "gpu", "auto"):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'auto'; got {device!r}")
    with _staging(final) as staging:
        summary = _build_report(
            staging,
            quick=quick,
            seed=seed,
            command=command,
            device=device,
            studies=studies,
            progress=progress,
        )
        _swap_in(staging, final)
    return summary


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextlib.contextmanager
def _staging(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final`` (same filesystem), removed unless swapped."""
    import shutil
    import tempfile

    base = _nearest_existing(final.absolute().parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name or 'report'}.partial-", dir=base))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; a plain mkdir would not
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _is_previous_report(folder: Path) -> bool:
    return (folder / "report.json").is_file() or (folder / "index.html").is_file()


def _swap_in(staging: Path, final: Path) -> None:
    """Move the finished report into place.

    An absent or empty ``final``, or one holding a previous report, is replaced as a
    whole (rename away, rename in, delete the old one), so no file of the old report
    survives beside the new page. A folder holding other files keeps them; each of the
    report's own entries replaces its namesake. SIGINT/SIGTERM are held off meanwhile.
    """
    import shutil
    import signal
    import threading

    final.parent.mkdir(parents=True, exist_ok=True)
    blocked = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "pthread_sigmask"
    )
    if blocked:
        old_mask = signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}
        )
    try:
        whole = not final.exists() or not any(final.iterdir())
        whole = whole or _is_previous_report(final)
        # never rename away the working directory, a folder above it, or a symlink
        whole = whole and not Path.cwd().resolve().is_relative_to(final.resolve())
        whole = whole and not final.is_symlink()
        pairs = (
            [(staging, final)]
            if whole
            else [(entry, final / entry.name) for entry in sorted(staging.iterdir())]
        )
        for src, dst in pairs:
            old = None
            if dst.exists() or dst.is_symlink():
                old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
                os.replace(dst, old)
            try:
                os.replace(src, dst)
            except BaseException:
                if old is not None:
                    os.replace(old, dst)
                raise
            if old is not None:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink()
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _build_report(
    out: Path,
    *,
    quick: bool,
    seed: int,
    command: str | None,
    device: str,
    studies: tuple[Study, ...] | None,
    progress: bool,
) -> dict:
    """Run the studies and write the page into ``out`` (the staging folder)."""
    from .provenance import provenance

    page_dir = out
    studies = STUDIES if studies is None else tuple(studies)
    t0 = time.perf_counter()
    with device_scope(device) as device_name:
        records = _run_studies(
            studies, out, quick=quick, seed=seed, command=command, progress=progress
        )
        prov = provenance(command, seed)
    total = time.perf_counter() - t0
    numbers_ = _Numbers()
    page = _page_html(
        records,
        out,
        page_dir,
        quick=quick,
        seed=seed,
        prov=prov,
        device=device_name,
        total_seconds=total,
        numbers_=numbers_,
    )
    index = page_dir / "index.html"
    report_json = page_dir / "report.json"
    files = [_rel(Path(f), out) for r in records for f in r["files"]]
    files += [_rel(index, out), _rel(report_json, out)]
    for r in records:
        r["files"] = [_rel(Path(f), out) for f in r["files"]]
    summary = {
        "page": _rel(index, out),
        "quick": quick,
        "seed": seed,
        "device": device_name,
        "seconds": round(total, 2),
        "studies": records,
        "files": files,
        "numbers": numbers_.records,
        "provenance": prov,
    }

    def _write_page(tmp: str) -> None:
        Path(tmp).write_text(page, encoding="utf-8")

    atomic_write(index, _write_page)
    write_json(report_json, summary)
    return summary
