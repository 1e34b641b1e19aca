"""Rewrite the committed Table 1 files with the verdict rules of issue 24, in place.

Every run is kept; collapsed runs are marked with their cause (ntkspec.verdicts) and
left out of the means; each file gains a ``verdicts`` block (cells with n and 95 %
intervals over images, paired gaps, excluded runs) and its Markdown shows them.
Nothing is retrained: the rule is applied to the recorded PSNRs, with the constant
predictors' PSNRs recomputed from the (deterministic) images.

    python -m analysis.fix_table1_verdicts            # the committed files
    python -m analysis.fix_table1_verdicts --root DIR # files under DIR/figures
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ntkspec.io import atomic_write, write_json
from ntkspec.studies import ct_table, mri_table, table1_budget, table1_networks

NETWORK_FILES = (
    "figures/validation/gpu_h100/table1_networks.json",
    "figures/validation/table1_networks.json",
    "figures/validation/cpu_quick/table1_networks.json",
)
BUDGET_FILES = ("figures/regression/table1_budget_cpu/table1_budget.json",)
CT_FILES = ("figures/ct/ct_table.json",)
MRI_FILES = ("figures/mri/mri_table.json",)


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _note(data: dict, text: str) -> None:
    notes = data.setdefault("corrections", [])
    if text not in notes:  # the script may run again: one note per correction
        notes.append(text)


def fix_networks(path: Path) -> dict:
    data = json.loads(path.read_text())
    table1_networks.with_verdicts(data, table1_networks.image_constants(data))
    _note(
        data,
        "issue 24: runs judged by ntkspec.verdicts (collapsed runs kept, marked, left "
        "out of the means; seeds averaged within an image); verdicts block added; "
        "the NTK regression column comes from its own images (unpaired)",
    )
    write_json(path, data)
    _write_text(path.with_suffix(".md"), table1_networks.markdown(data))
    label = f"{data['provenance']['device']} · size={data['size']} · corrected"
    table1_networks.plot_table(data, path.with_suffix(".png"), label)
    return data


def fix_budget(path: Path) -> dict:
    data = json.loads(path.read_text())
    table1_budget.with_verdicts(data)
    _note(
        data,
        "issue 24: GD runs re-judged against the theory at the same budget (two text "
        "'none' runs at 12.04 / 12.02 dB follow the theory's 12.29 dB: kept); means "
        "over images with seeds averaged within an image; verdicts block added",
    )
    write_json(path, data)
    _write_text(path.with_name("table1_budget.md"), table1_budget.markdown(data))
    table1_budget.plot(data, path.with_suffix(".png"))
    return data


def fix_inverse(path: Path, module) -> dict:
    data = json.loads(path.read_text())
    module.with_verdicts(data)
    _note(
        data, "issue 24: verdicts block added (n per cell, paired gaps, excluded runs)"
    )
    write_json(path, data)
    _write_text(path.with_suffix(".md"), module.markdown(data))
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="folder holding figures/")
    args = parser.parse_args(argv)
    root = Path(args.root)
    done = []
    for rel in NETWORK_FILES:
        if (root / rel).exists():
            fix_networks(root / rel)
            done.append(rel)
    for rel in BUDGET_FILES:
        if (root / rel).exists():
            fix_budget(root / rel)
            done.append(rel)
    for rel, module in [(r, ct_table) for r in CT_FILES] + [
        (r, mri_table) for r in MRI_FILES
    ]:
        if (root / rel).exists():
            fix_inverse(root / rel, module)
            done.append(rel)
    sys.stdout.write("rewrote:\n" + "".join(f"  {p}\n" for p in done))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
