"""The documentation: guide pages that run, and the site's strict build.

Every ```python block of the pages under docs/ runs, page by page, in a fresh Python
process (in the page's order, one namespace per page, cwd a temporary folder), so that a
page that calls ``jax.config.update`` or starts from ``import jax`` behaves as it would
for a reader. A ```text block right after a python block is that block's expected
output, compared line by line. A block whose first line is ``# not run by the tests:
<reason>`` is skipped, and the reason must say where it is tested instead.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP = "# not run by the tests:"
# Pages whose examples take more than a few seconds (image-size tasks).
SLOW = {"guide/quickstart.md", "guide/inverse.md", "guide/devices.md"}

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)

DRIVER = r"""
import json, sys
blocks = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for i, code in enumerate(blocks):
    exec(compile(code, f"<{sys.argv[2]} block {i}>", "exec"), ns)
    sys.stdout.write(f"\n@@block {i} done@@\n")
    sys.stdout.flush()
"""


def page_blocks(path: Path) -> list[tuple[str, str | None]]:
    """(python code, expected output or None) for each python block of a page."""
    fences = [(m.group(1), m.group(2)) for m in _FENCE.finditer(path.read_text())]
    out = []
    for i, (lang, body) in enumerate(fences):
        if lang != "python":
            continue
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        expected = nxt[1] if nxt is not None and nxt[0] == "text" else None
        out.append((body, expected))
    return out


def _pages() -> list:
    params = []
    for path in sorted(DOCS.rglob("*.md")):
        rel = path.relative_to(DOCS).as_posix()
        if rel.startswith("_build/") or not page_blocks(path):
            continue
        marks = [pytest.mark.slow] if rel in SLOW else []
        params.append(pytest.param(rel, id=rel, marks=marks))
    return params


def run_page(rel: str, tmp_path: Path) -> tuple[list, str]:
    """Run the page's blocks; return (blocks, stdout)."""
    blocks = page_blocks((DOCS / rel).resolve())
    code = [b for b, _ in blocks if not b.startswith(SKIP)]
    (tmp_path / "blocks.json").write_text(json.dumps(code))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path / "blocks.json"), rel],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (
        f"{rel} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return blocks, proc.stdout


@pytest.mark.parametrize("rel", _pages())
def test_page_runs(rel, tmp_path):
    blocks, stdout = run_page(rel, tmp_path)
    outputs = re.split(r"\n?@@block \d+ done@@\n", stdout)
    ran = [(b, e) for b, e in blocks if not b.startswith(SKIP)]
    for i, (_, expected) in enumerate(ran):
        if expected is not None:
            assert outputs[i].strip().splitlines() == expected.strip().splitlines(), (
                f"{rel}, block {i}: the printed output differs from the page's"
            )
    if rel == "guide/quickstart.md":  # the API tour's results (was tests/test_readme)
        psnr = float(stdout.split("PSNR", 1)[1].split()[0])
        assert 15.0 < psnr < 60.0
    for code, _ in blocks:
        if code.startswith(SKIP):
            reason = code.splitlines()[0][len(SKIP) :].strip()
            assert "tests/" in reason, f"{rel}: a skipped block must name its test"


def test_skipped_blocks_are_few():
    skipped = [
        (p.relative_to(DOCS).as_posix(), code.splitlines()[0])
        for p in sorted(DOCS.rglob("*.md"))
        if not p.relative_to(DOCS).as_posix().startswith("_build/")
        for code, _ in page_blocks(p)
        if code.startswith(SKIP)
    ]
    assert len(skipped) <= 3, skipped
