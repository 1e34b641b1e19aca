"""Studies: the computations behind each figure and table.

Each module has ``run(out_dir, *, quick=False, seed=0, command=None) -> dict`` that
computes
its numbers, writes them as JSON, then plots from them, and returns a summary of what it
wrote. ``ntkspec report`` calls them at report sizes; the scripts in ``analysis/`` call
them
at full size. They use only the public API of ntkspec.
"""
