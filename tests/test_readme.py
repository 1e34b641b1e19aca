"""The README's API tour runs as written (docs that run)."""

import re
from pathlib import Path

import matplotlib
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## API tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block in its API tour"
    return match.group(1)


@pytest.mark.slow
def test_api_tour_runs(capsys):
    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(_tour(), str(README), "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    psnr = float(out.split("PSNR", 1)[1].split()[0])
    assert 15.0 < psnr < 60.0
    assert namespace["lam"].shape == (4096,)
    assert namespace["top"].shape == (20,)
    assert namespace["K"].shape == (100, 100)
