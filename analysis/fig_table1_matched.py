"""Table 1 with every column on the same images: ``ntkspec.studies.table1_matched``.

Usage::

    python -m analysis.fig_table1_matched [--quick] [--out DIR] [--max-tasks N]
    python -m analysis.fig_table1_matched --summarize-only   # table from runs on disk
    python -m analysis.fig_table1_matched --networks gpu --out DIR  # GPU: 512^2 Adam

The CPU run (128 x 128 crops, 6 natural + 6 text images, 4 x 256 networks, 2000 Adam
steps) takes hours on a 2-core CPU: start it in the background, niced; each finished
run is a JSON file under DIR/runs/ and a later call resumes where it stopped::

    nohup nice -n 19 python -m analysis.fig_table1_matched \\
        > figures/validation/table1_cpu128/run.log 2>&1 &

``--quick`` runs a tiny version into ``figures/validation/table1_cpu128/quick/``
(git-ignored; or ``--out``).
"""

from __future__ import annotations

import argparse
import sys

from ntkspec.studies import table1_matched


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--max-tasks", type=int, default=None, help="stop after N tasks")
    p.add_argument(
        "--summarize-only", action="store_true", help="only rebuild the table"
    )
    p.add_argument(
        "--networks",
        choices=sorted(table1_matched.NETWORK_SIZES),
        default=None,
        help="only the Adam networks at this size (the GPU entry), then the table",
    )
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m analysis.fig_table1_matched", *argv])
    out = args.out or (
        "figures/validation/table1_cpu128/quick"  # git-ignored
        if args.quick
        else "figures/validation/table1_cpu128"
    )
    if args.networks:
        table1_matched.run_networks(
            out, size=args.networks, log=lambda line: print(line, flush=True)
        )
        data = table1_matched.summarize(out, command=command)
    elif args.summarize_only:
        data = table1_matched.summarize(out, command=command)
    else:
        data = table1_matched.run(
            out,
            size="quick" if args.quick else "cpu",
            command=command,
            max_tasks=args.max_tasks,
            log=lambda line: print(line, flush=True),
        )
    print(f"{out}: {data['runs_done']} runs; table1_matched.json / .md written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
