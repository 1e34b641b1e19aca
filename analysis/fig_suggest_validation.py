"""The scale suggestion validated out of sample: ``ntkspec.studies.suggest_validation``.

Usage::

    python -m analysis.fig_suggest_validation [--quick] [--out DIR] [--max-tasks N]
    python -m analysis.fig_suggest_validation --summarize-only  # from runs on disk
    python -m analysis.fig_suggest_validation --size gpu --networks --out DIR \\
        --reuse DIR/../table1_matched                         # GPU: 512^2 networks

The CPU run (128 x 128 crops, 6 natural + 6 text images, 7 sigmas per set, 4 x 256
networks, 2000 Adam steps; the Table 1 runs at the Table 1 sigma are reused from
``figures/validation/table1_cpu128``) takes hours on a 2-core CPU: start it after the
Table 1 runs, in the background, niced; each finished run is a JSON file under
DIR/runs/ and a later call resumes where it stopped::

    nohup nice -n 19 python -m analysis.fig_suggest_validation \\
        > figures/validation/suggest_cpu128/run.log 2>&1 &

``--summarize-only`` works on a partial folder: it counts the runs missing (by kind)
and marks the report PARTIAL. ``suggest_validation_verdict.md`` is the paste-ready
verdict block (numbers, intervals, sizes, CPU/GPU label).

``--quick`` runs a tiny version into ``figures/validation/suggest_cpu128/quick/``
(git-ignored; or ``--out``), reusing nothing.
"""

from __future__ import annotations

import argparse
import sys

from ntkspec.studies import suggest_validation

DEFAULT_OUT = "figures/validation/suggest_cpu128"
DEFAULT_REUSE = "figures/validation/table1_cpu128"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    p.add_argument(
        "--size",
        choices=sorted(suggest_validation.SIZES),
        default=None,
        help="run size (default cpu; quick with --quick)",
    )
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument(
        "--reuse",
        default=None,
        help=f"Table 1 folder whose runs are reused (default {DEFAULT_REUSE}; "
        "none with --quick); 'none' to reuse nothing",
    )
    p.add_argument("--max-tasks", type=int, default=None, help="stop after N tasks")
    p.add_argument(
        "--kinds",
        default="adam,ntk,fresh,suggest",
        help="comma-separated task kinds to run (default: all)",
    )
    p.add_argument(
        "--summarize-only", action="store_true", help="only rebuild the table"
    )
    p.add_argument(
        "--networks",
        action="store_true",
        help="only the Adam networks, all sigmas of an image at once (GPU entry)",
    )
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m analysis.fig_suggest_validation", *argv])
    size = args.size or ("quick" if args.quick else "cpu")
    out = args.out or (f"{DEFAULT_OUT}/quick" if args.quick else DEFAULT_OUT)
    reuse = args.reuse or (None if args.quick else DEFAULT_REUSE)
    if reuse == "none":
        reuse = None
    log = lambda line: print(line, flush=True)  # noqa: E731
    if args.networks:
        suggest_validation.run_networks(out, size=size, reuse_dir=reuse, log=log)
    if args.networks or args.summarize_only:
        data = suggest_validation.summarize(
            out, size=size, reuse_dir=reuse, command=command
        )
    else:
        data = suggest_validation.run(
            out,
            size=size,
            reuse_dir=reuse,
            command=command,
            max_tasks=args.max_tasks,
            kinds=tuple(k for k in args.kinds.split(",") if k),
            log=log,
        )
    print(
        f"{out}: {data['runs_on_disk']} runs; {len(data['choices'])} images scored; "
        "suggest_validation.json / .md / .png written"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
