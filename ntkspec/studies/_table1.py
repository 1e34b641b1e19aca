r"""Table 1 entries: collapsed runs kept apart, cells, paired gaps, Markdown.

The rules are :mod:`ntkspec.verdicts`'s: a run is *collapsed* when its output is
constant or not finite, or when its held-out PSNR is within 0.1 dB of the best
constant predictor's (all-zero or train mean) while the theory at the same budget
predicts at least 1 dB more. A low PSNR that the theory also predicts is not a
collapse. Two GPU runs of the official setup on ``hubble_deep_field`` output exactly
0 (their PSNR equals the all-zero predictor's to 1e-9 dB); averaged in, they hid a
broken run inside a mean.

Every Table 1 JSON carries ``verdicts`` (:func:`verdict_table`): per set, mapping and
column a cell ``{"runs": [...], "summary": {...}}`` whose summary holds the mean, n
(images) and the 95 % t- and BCa intervals over images, from the runs that did not
collapse, seeds averaged within an image first; the paired gaps (positional − basic,
Gaussian − positional, Gaussian − none) per set and column; and the excluded runs with
their cause.
"""

from __future__ import annotations

import numpy as np

from .. import verdicts

__all__ = [
    "GAP_PAIRS",
    "collapse_cause",
    "constant_psnrs",
    "summarize",
    "verdict_table",
    "verdict_markdown",
    "verdict_tables",
    "inverse_verdicts",
]

#: The gaps every Table 1 file reports (a − b).
GAP_PAIRS = (("positional", "basic"), ("gaussian", "positional"), ("gaussian", "none"))

constant_psnrs = verdicts.constant_psnrs


def collapse_cause(
    prediction, y_eval, y_train, *, reference_psnr: float | None = None
) -> str | None:
    """Why a run's prediction is collapsed, or None (:func:`verdicts.collapse_verdict`).

    Args:
        prediction: the run's output on the evaluation pixels, shape (m, c).
        y_eval: the targets there, shape (m, c).
        y_train: the training targets, shape (n, c) (for the train-mean predictor).
        reference_psnr: the theory's held-out PSNR at the same budget, or None (then
            only a constant or non-finite output is a collapse).
    """
    p = np.asarray(prediction, np.float64)
    y = np.asarray(y_eval, np.float64)
    if p.shape != y.shape:
        raise ValueError(
            f"prediction must have the shape of y_eval {y.shape}; got {p.shape}"
        )
    finite = bool(np.all(np.isfinite(p)))
    value = float(-10 * np.log10(np.mean((p - y) ** 2))) if finite else float("nan")
    return verdicts.collapse_verdict(
        value,
        constant_psnr=constant_psnrs(y_train, y),
        theory_psnr=reference_psnr,
        prediction=p,
    )[1]


def summarize(runs: list[dict], key: str = "psnr_heldout") -> dict:
    """Mean ± sample std over images of ``run[key]``, seeds averaged within an image.

    Runs with a truthy ``collapsed`` are left out and listed with their cause.

    Returns:
        ``{"mean", "std", "n", "values", "t_interval", "bca_interval", "collapsed":
        [{"image", "seed", "value", "cause"}, ...]}``; n counts images; ``std`` is
        None for n = 1, mean and std are None for n = 0.
    """
    kept = [r for r in runs if not r.get("collapsed") and r.get(key) is not None]
    means = verdicts.image_means(kept, key)
    left_out = [
        {
            "image": r.get("image"),
            "seed": r.get("seed"),
            "value": float(r[key]) if r.get(key) is not None else None,
            "cause": r.get("cause") or r["collapsed"],
        }
        for r in runs
        if r.get("collapsed")
    ]
    arr = np.asarray(list(means.values()), np.float64)
    stat = verdicts.mean_interval(arr)
    return {
        "mean": stat["mean"],
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "n": stat["n"],
        "values": arr.tolist(),
        "t_interval": stat["t_interval"],
        "bca_interval": stat["bca_interval"],
        "collapsed": left_out,
    }


def verdict_table(table: dict, *, rule_note: str = "") -> dict:
    """The ``verdicts`` block of a Table 1 JSON.

    Args:
        table: set -> mapping -> column -> list of runs already marked
            (:func:`ntkspec.verdicts.mark_runs`: ``image``, ``seed``,
            ``psnr_heldout``, ``collapsed``, ``cause``).
        rule_note: how the rule was applied (what evidence each column had).

    Returns:
        ``{"rule", "table": set -> mapping -> column -> cell, "gaps": set -> column
        -> "a − b" -> paired gap, "excluded": [run, ...]}``.
    """
    cells, gaps, excluded = {}, {}, []
    for image_set, rows in table.items():
        cells[image_set] = {}
        for m, cols in rows.items():
            cells[image_set][m] = {}
            for column, runs in cols.items():
                c = verdicts.cell(runs)
                cells[image_set][m][column] = c
                for r in c["runs"]:
                    if r["collapsed"]:
                        excluded.append(
                            dict(
                                set=image_set,
                                mapping=m,
                                column=column,
                                image=r["image"],
                                seed=r["seed"],
                                psnr_heldout=r["psnr_heldout"],
                                cause=r["cause"],
                            )
                        )
        gaps[image_set] = {}
        columns = {c for cols in rows.values() for c in cols}
        for column in sorted(columns):
            for a, b in GAP_PAIRS:
                if column in rows.get(a, {}) and column in rows.get(b, {}):
                    g = verdicts.paired_gap(rows[a][column], rows[b][column])
                    gaps[image_set].setdefault(column, {})[f"{a} − {b}"] = g
    return dict(
        rule=(
            "collapsed: constant or non-finite output, or held-out PSNR within "
            f"{verdicts.PSNR_ATOL} dB of the best constant predictor's (all-zero or "
            f"train mean) while the theory at the same budget predicts >= "
            f"{verdicts.THEORY_MARGIN} dB more; without a recorded output, a PSNR "
            "equal to a constant predictor's to 1e-6 dB is that constant output. "
            "Summaries: runs not collapsed, seeds averaged within an image first, "
            "n = images, 95 % t-interval and BCa bootstrap interval over images. "
            "Gaps: mean of per-image differences, same intervals; resolved = every "
            "interval excludes 0." + (f" {rule_note}" if rule_note else "")
        ),
        table=cells,
        gaps=gaps,
        excluded=excluded,
    )


def verdict_markdown(v: dict, *, title: str, note: str, labels: dict | None = None):
    """Markdown of a ``verdicts`` block: cells, paired gaps, excluded runs.

    Args:
        v: :func:`verdict_table`'s result.
        title: the table's title.
        note: a sentence after the title (size, device, what is reduced).
        labels: column key -> header text (default the keys).
    """
    labels = labels or {}
    columns = []
    for rows in v["table"].values():
        for cols in rows.values():
            for c in cols:
                if c not in columns:
                    columns.append(c)
    head = ["set", "mapping", *[labels.get(c, c) for c in columns]]
    lines = [f"**{title}** ({note})", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for image_set, rows in v["table"].items():
        for m, cols in rows.items():
            cells = [
                verdicts.format_cell(cols[c]) if c in cols else "–" for c in columns
            ]
            lines.append(f"| {image_set} | {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: mean held-out PSNR (dB) over images [95 % t-interval] (n = images; "
        "collapsed runs left out, listed below; seeds averaged within an image).",
        "",
        "**Paired gaps** (mean of per-image differences, dB; 95 % t and BCa "
        "intervals over images; resolved = the intervals exclude 0)",
        "",
        "| set | column | gap | mean, intervals |",
        "|---|---|---|---|",
    ]
    for image_set, by_col in v["gaps"].items():
        for column, pairs in by_col.items():
            for pair, g in pairs.items():
                lines.append(
                    f"| {image_set} | {labels.get(column, column)} | {pair} | "
                    f"{verdicts.format_gap(g)} |"
                )
    lines += [
        "",
        "**Excluded runs** (collapsed)",
        "",
        "| set | mapping | column | image | seed | PSNR | cause |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in v["excluded"]:
        psnr = "–" if r["psnr_heldout"] is None else f"{r['psnr_heldout']:.2f}"
        lines.append(
            f"| {r['set']} | {r['mapping']} | {labels.get(r['column'], r['column'])} "
            f"| {r['image']} | {r['seed']} | {psnr} | {r['cause']} |"
        )
    if not v["excluded"]:
        lines.append("| – | – | – | – | – | – | none collapsed |")
    return "\n".join(lines) + "\n"


def verdict_tables(v: dict, *, labels: dict | None = None) -> list[dict]:
    """A ``verdicts`` block as the report's shared table form (title, columns, rows).

    Three tables: the cells (``mean [t-interval] (n = images, k collapsed)``), the
    paired gaps and the excluded runs with their cause.
    """
    from .. import verdicts as vd

    labels = labels or {}
    columns = []
    for rows in v["table"].values():
        for cols in rows.values():
            columns += [c for c in cols if c not in columns]
    main = [
        [s, m, *[vd.format_cell(cols[c]) if c in cols else "–" for c in columns]]
        for s, rows in v["table"].items()
        for m, cols in rows.items()
    ]
    gaps = [
        [s, labels.get(c, c), pair, vd.format_gap(g)]
        for s, by_col in v["gaps"].items()
        for c, pairs in by_col.items()
        for pair, g in pairs.items()
    ]
    excluded = [
        [
            r["set"],
            r["mapping"],
            labels.get(r["column"], r["column"]),
            r["image"],
            r["seed"],
            r["psnr_heldout"],
            r["cause"],
        ]
        for r in v["excluded"]
    ]
    return [
        dict(
            title="Verdicts: mean PSNR over images [95 % t-interval] (n)",
            columns=["set", "mapping", *[labels.get(c, c) for c in columns]],
            rows=main,
            note="collapsed runs left out (see the excluded runs); seeds averaged "
            "within an image first",
        ),
        dict(
            title="Paired gaps (mean of per-image differences, dB)",
            columns=["set", "column", "gap", "mean, t and BCa intervals, verdict"],
            rows=gaps or [["–", "–", "–", "no pairs"]],
            note="resolved = every 95 % interval excludes 0",
        ),
        dict(
            title="Excluded runs (collapsed)",
            columns=["set", "mapping", "column", "image", "seed", "PSNR", "cause"],
            rows=excluded or [["–", "–", "–", "–", "–", None, "none collapsed"]],
            note=v["rule"],
        ),
    ]


def inverse_verdicts(
    results: dict,
    columns: dict,
    *,
    image_set: str = "phantoms",
    networks: dict | None = None,
    rule_note: str = "",
) -> dict:
    r"""The ``verdicts`` block of an inverse-problem column (CT, MRI) of Table 1.

    Args:
        results: mapping -> study results, with per-image PSNR lists.
        columns: column name -> key path into ``results[mapping]`` ending at a
            ``{"per_image": [...]}`` entry (e.g. ``("psnr_t_inf",)``).
        image_set: the set's name in the block.
        networks: mapping -> ``{"psnr": [...], "misfit": [...]}`` of trained
            networks, or None. A network whose relative measurement misfit
            :math:`\|Af - y\| / \|y\|` is exactly 1 output zero on the
            measurements (``A f = 0``) and is collapsed; the NTK matched to its fit
            (column ``"ntk_at_network_fit"``) is marked too.
        rule_note: appended to the rule.
    """
    table = {image_set: {}}
    for m, res in results.items():
        cols = {}
        for column, path in columns.items():
            entry = res
            for key in path:
                entry = (entry or {}).get(key)
            if not entry:
                continue
            cols[column] = [
                dict(
                    image=f"phantom_{i}",
                    seed=0,
                    psnr_heldout=float(v),
                    collapsed=False,
                    cause=None,
                )
                for i, v in enumerate(entry["per_image"])
            ]
        if networks and m in networks:
            net = networks[m]
            runs = []
            for i, (p, mis) in enumerate(zip(net["psnr"], net["misfit"], strict=True)):
                dead = float(mis) == 1.0
                runs.append(
                    dict(
                        image=f"phantom_{i}",
                        seed=0,
                        psnr_heldout=float(p),
                        collapsed=dead,
                        cause=(
                            "zero output on the measurements: relative misfit "
                            "||Af - y||/||y|| = 1 exactly"
                            if dead
                            else None
                        ),
                    )
                )
                fit = cols.get("ntk_at_network_fit")
                if dead and fit and i < len(fit):
                    fit[i].update(
                        collapsed=True,
                        cause="matched to a collapsed network's fit (misfit 1): "
                        "no budget to compare",
                    )
            cols["networks"] = runs
        table[image_set][m] = cols
    return verdict_table(table, rule_note=rule_note)
