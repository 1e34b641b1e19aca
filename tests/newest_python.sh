#!/usr/bin/env bash
# Quick pass of the test suite on the newest Python (3.12+) found here, with the newest
# JAX the registry serves for it (jax 0.12 at the time of writing; Python 3.11 gets 0.10).
set -euo pipefail
cd "$(dirname "$0")/.."
py=""
for cand in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    py="$cand"; break
  fi
done
if [ -z "$py" ]; then
  echo "test-py312: SKIPPED: no Python 3.12+ interpreter found (looked on PATH and in ~/.pyenv)"
  exit 0
fi
ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
venv=".venv-py$ver"
if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --upgrade -e '.[test]'
  touch "$venv/.installed"
fi
echo "test-py312: Python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'), jax $("$venv/bin/python" -c 'import jax; print(jax.__version__)')"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow and not parity" \
  tests/test_mappings.py tests/test_kernels.py
