"""Run the analysis scripts.

Usage::

    python -m analysis <script> [args]   # e.g. python -m analysis bench_kernels --quick
    python -m analysis all [--quick]     # every fig_*.py, then every bench_*.py
    python -m analysis list              # the scripts found

Scripts are found by name (``analysis/fig_*.py`` and ``analysis/bench_*.py``), each with
a ``main(argv)`` that returns an exit code; new scripts need no registration here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_PREFIXES = ("fig_", "bench_")


def scripts() -> list[str]:
    """Module names of the runnable scripts: figures first, then benchmarks."""
    found = []
    for prefix in _PREFIXES:
        found += sorted(p.stem for p in _HERE.glob(f"{prefix}*.py"))
    return found


def _run(name: str, argv: list[str]) -> int:
    module = importlib.import_module(f"{__package__ or 'analysis'}.{name}")
    code = module.main(argv)
    return int(code or 0)


def _run_all(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis all")
    parser.add_argument("--quick", action="store_true", help="pass --quick to each")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every script even after a failure (the exit code still reports it)",
    )
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    failed, summary = [], []
    for name in scripts():
        print(f"== {name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        try:
            code = _run(name, list(extra))
        except Exception:  # report and carry on to the summary
            traceback.print_exc()
            code = 1
        seconds = time.perf_counter() - t0
        summary.append(
            f"{name:<28} {'ok' if code == 0 else f'FAILED ({code})':<12} "
            f"{seconds:8.1f} s"
        )
        if code != 0:
            failed.append(name)
            if not args.keep_going:
                break
    print("\n".join(["", "== summary", *summary]))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = scripts()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("scripts:", " ".join(names))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "list":
        print("\n".join(names))
        return 0
    if command == "all":
        return _run_all(rest)
    name = command.removesuffix(".py").replace("analysis.", "").replace("/", ".")
    if name not in names:
        print(
            f"unknown script {command!r}; available: {' '.join(names)}", file=sys.stderr
        )
        return 2
    return _run(name, rest)


if __name__ == "__main__":
    sys.exit(main())
