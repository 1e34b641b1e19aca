"""Timing and memory helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource
import statistics
import time


def peak_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats: int):
    """Call ``fn`` once (compile + run), then ``repeats`` times.

    Returns:
        (last output, first-call seconds, median warm seconds, list of warm seconds).
    """
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        warm.append(time.perf_counter() - t0)
    return out, first, (statistics.median(warm) if warm else first), warm


def machine_record() -> dict:
    """The machine a benchmark ran on, for its JSON."""
    import os
    import platform

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
    }


def load_record(load_before) -> dict:
    """The 1/5/15-minute load average before (given) and after (now) a benchmark."""
    import os

    return {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
        "note": "the machine is shared: timings scale with the load of other jobs",
    }
