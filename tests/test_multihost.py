"""Multi-host: two processes joined by jax.distributed, one mesh over both.

The README's multi-host recipe, run for real on one machine: two processes
(tests/multihost_worker.py), each with 2 forced CPU host devices, call
``jax.distributed.initialize`` with a local coordinator, build
``jax.make_mesh((4,), ...)`` over all 4 devices (2 per process, so half of every
sharded array is on the other "host") and compare each sharded call with the same call
on one device of their own process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRAM_RTOL = 1e-13
CG_ATOL = 1e-8
LANCZOS_RTOL = 1e-10
#: float32 training: the psum across processes reorders the sums (~1e-7 measured).
TRAIN_RTOL = 1e-6

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reports():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    address = f"127.0.0.1:{_free_port()}"
    worker = str(ROOT / "tests" / "multihost_worker.py")
    procs = [
        subprocess.Popen(
            [sys.executable, worker, address, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=900)
            assert p.returncode == 0, err[-4000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


def test_two_processes_one_mesh(reports):
    assert [r["process"] for r in reports] == [0, 1]
    for r in reports:
        assert r["processes"] == 2 and r["devices"] == 4 and r["local_devices"] == 2
        assert r["warnings"] == []


def test_gram_rows_split_over_hosts(reports):
    for r in reports:
        assert r["gram_local_shards"] == 2  # half of the rows on each process
        assert r["gram_local_rows_rel"] <= GRAM_RTOL


def test_solvers_spectra_and_training_across_hosts(reports):
    for r in reports:
        assert r["regression_devices"] == 4
        assert r["regression_abs"] <= CG_ATOL
        assert r["regression_dense_abs"] <= CG_ATOL
        assert r["regression_dense_devices"] == 4
        assert r["lanczos_rel"] <= LANCZOS_RTOL
        assert r["train_losses_rel"] <= TRAIN_RTOL
        assert r["ensemble_losses_rel"] <= TRAIN_RTOL
