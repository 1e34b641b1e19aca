"""The neural-tangents 0.6.5 reference environment (``.venv-nt/`` at the repo root).

NT 0.6.5 does not import on the JAX that ntkspec uses (it needs ``jax.core.Jaxpr``,
removed in jax 0.6), so it lives in its own virtual environment, built from the pins in
``nt-requirements.txt`` with ``pip install --no-deps`` on a Python 3.11 interpreter.
Kernels are computed there by ``nt_reference.py``, run as a subprocess; the arrays
travel through ``.npz`` files, many configurations per call.

Command line (``make parity-env``)::

    python tests/parity/nt_env.py --build   # build (or confirm) .venv-nt

Library use (tests, ``analysis/bench_kernels.py``)::

    python = ensure_env()                     # builds on first use; or Unavailable
    results = run_reference(inputs, configs)  # {key: array}, see nt_reference.py

The build is idempotent: a stamp file inside the venv records the SHA-256 of the
requirements file (and of the interpreter version), and the venv is rebuilt only when
they change. Builds are serialised with a lock file, so concurrent sessions are safe.
This module uses only the standard library and numpy (it runs under any interpreter).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
REQUIREMENTS = HERE / "nt-requirements.txt"
RUNNER = HERE / "nt_reference.py"
VENV = REPO_ROOT / ".venv-nt"
STAMP = VENV / ".installed"
#: Outside the repo (untracked files there would show up in git status).
_REPO_TAG = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
LOCK = Path(tempfile.gettempdir()) / f"ntkspec-venv-nt-{_REPO_TAG}.lock"
PYTHON_VERSION = (3, 11)
#: Seconds allowed for the venv build (the local registry takes ~10 s).
BUILD_TIMEOUT = 900


class Unavailable(RuntimeError):
    """The reference environment cannot be built or used here (the message says why)."""


def venv_python(venv: Path = VENV) -> Path:
    """Path of the interpreter inside a venv."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _interpreter_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def find_python311() -> str:
    """A Python 3.11 interpreter: this one, ``python3.11`` on PATH, or pyenv's.

    Raises:
        Unavailable: none was found.
    """
    candidates = []
    if sys.version_info[:2] == PYTHON_VERSION:
        candidates.append(sys.executable)
    on_path = shutil.which("python3.11")
    if on_path:
        candidates.append(on_path)
    pyenv = os.path.expanduser("~/.pyenv/versions/3.11*/bin/python3")
    candidates.extend(sorted(glob.glob(pyenv), reverse=True))
    for cand in candidates:
        if _interpreter_version(cand) == PYTHON_VERSION:
            return cand
    raise Unavailable(
        "no Python 3.11 interpreter found for the neural-tangents 0.6.5 environment "
        "(looked at the current interpreter, python3.11 on PATH and "
        "~/.pyenv/versions/3.11*/bin/python3)"
    )


def _stamp_value(python_version: str) -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    return json.dumps({"requirements_sha256": digest, "python": python_version})


def _stamp_ok() -> bool:
    py = venv_python()
    if not (STAMP.is_file() and py.exists()):
        return False
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return False
    return STAMP.read_text() == _stamp_value(stamp.get("python", ""))


@contextlib.contextmanager
def _build_lock():
    """An exclusive lock on ``LOCK`` (POSIX); a no-op elsewhere."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_step(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"{what} timed out after {BUILD_TIMEOUT} s") from exc
    except OSError as exc:
        raise Unavailable(f"{what} could not start: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise Unavailable(f"{what} failed (exit {proc.returncode}): {tail}")


def build(verbose: bool = False) -> Path:
    """Build ``.venv-nt`` from the pinned requirements (always from scratch).

    Returns:
        The venv's python.

    Raises:
        Unavailable: no Python 3.11, the registry is unreachable, or NT does not import.
    """
    base = find_python311()
    version = ".".join(map(str, _interpreter_version(base) or PYTHON_VERSION))
    if verbose:
        print(f"building {VENV} with {base} (Python {version})", flush=True)
    t0 = time.perf_counter()
    if STAMP.exists():
        STAMP.unlink()
    _run_step([base, "-m", "venv", "--clear", str(VENV)], "creating the venv")
    py = str(venv_python())
    _run_step(
        [py, "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
        f"pip install --no-deps -r {REQUIREMENTS.name}",
    )
    _run_step([py, str(RUNNER), "--check"], "importing neural_tangents in the new venv")
    STAMP.write_text(_stamp_value(version))
    if verbose:
        print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    return venv_python()


def ensure_env(verbose: bool = False) -> Path:
    """The reference environment's python, building the venv first if needed.

    Raises:
        Unavailable: the environment cannot be built here (the message says why).
    """
    if _stamp_ok():
        return venv_python()
    with _build_lock():
        if _stamp_ok():  # built by a concurrent session while we waited
            return venv_python()
        return build(verbose=verbose)


def versions(python: Path | None = None) -> dict:
    """Versions in the reference environment (python, jax, neural_tangents, ...)."""
    python = python or ensure_env()
    proc = subprocess.run(
        [str(python), str(RUNNER), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


class ReferenceJob:
    """A running ``nt_reference.py`` subprocess (see :func:`start_reference`)."""

    def __init__(self, python: Path, inputs: dict, configs: list[dict], timeout: float):
        import numpy as np

        self._tmp = tempfile.TemporaryDirectory(prefix="ntkspec-nt-")
        tmp = Path(self._tmp.name)
        np.savez(tmp / "inputs.npz", **{k: np.asarray(v) for k, v in inputs.items()})
        (tmp / "configs.json").write_text(json.dumps(configs))
        self._out = tmp / "out.npz"
        self._err = open(tmp / "stderr.txt", "w+")  # noqa: SIM115 (closed in result)
        cmd = [str(python), str(RUNNER), str(tmp / "inputs.npz")]
        cmd += [str(tmp / "configs.json"), str(self._out)]
        self._timeout = timeout
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._err)

    def cancel(self) -> None:
        """Kill the subprocess (if still running) and remove its files."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._err.close()
        self._tmp.cleanup()

    def result(self) -> dict:
        """Wait for the subprocess and load its output.

        Raises:
            RuntimeError: the subprocess failed or timed out (stderr tail in message).
        """
        import numpy as np

        try:
            try:
                code = self._proc.wait(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                raise RuntimeError(
                    f"nt_reference.py timed out after {self._timeout} s"
                ) from None
            if code != 0:
                self._err.seek(0)
                tail = "\n".join(self._err.read().strip().splitlines()[-15:])
                raise RuntimeError(f"nt_reference.py failed (exit {code}):\n{tail}")
            with np.load(self._out, allow_pickle=False) as data:
                result = {k: data[k] for k in data.files}
        finally:
            self._err.close()
            self._tmp.cleanup()
        result["__meta__"] = json.loads(str(result["__meta__"]))
        return result


def start_reference(
    inputs: dict,
    configs: list[dict],
    *,
    python: Path | None = None,
    timeout: float = 600.0,
) -> ReferenceJob:
    """Start computing NT kernels for many configurations in one subprocess.

    Args:
        inputs: name -> float64 array of shape (n, d), referred to by the configs.
        configs: list of dicts as documented in ``nt_reference.py``.
        python: the reference interpreter (default: :func:`ensure_env`).
        timeout: seconds before the subprocess is killed.

    Returns:
        A job; its ``result()`` is a dict name -> array as written by
        ``nt_reference.py``, and ``"__meta__"`` -> dict (versions, peak RSS).

    Raises:
        Unavailable: the environment cannot be built.
    """
    return ReferenceJob(python or ensure_env(), inputs, configs, timeout)


def run_reference(inputs: dict, configs: list[dict], **kwargs) -> dict:
    """:func:`start_reference` and wait for its result."""
    return start_reference(inputs, configs, **kwargs).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build", action="store_true", help="build .venv-nt if missing or out of date"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="build .venv-nt from scratch"
    )
    args = parser.parse_args(argv)
    try:
        if args.rebuild:
            with _build_lock():
                py = build(verbose=True)
        elif args.build:
            py = ensure_env(verbose=True)
        else:
            py = venv_python() if _stamp_ok() else None
            if py is None:
                print("not built (run with --build)")
                return 1
        print(py)
        print(json.dumps(versions(py)))
    except Unavailable as exc:
        print(f"neural-tangents environment unavailable: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
