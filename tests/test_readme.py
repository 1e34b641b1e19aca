"""The README: short, its example runs as written, its links lead somewhere.

The API tour, the results and the longer notes moved to the documentation pages
(docs/), whose blocks run in tests/test_docs.py.
"""

import re
from pathlib import Path

from tests.test_docs import page_blocks, run_page

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def test_readme_taste_runs(tmp_path):
    blocks = page_blocks(README)
    assert len(blocks) == 1 and blocks[0][1] is not None
    _, stdout = run_page("../README.md", tmp_path)
    out = stdout.split("@@block 0 done@@")[0]
    assert out.strip().splitlines() == blocks[0][1].strip().splitlines()


def test_readme_links_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)\)", text)
    assert len(targets) > 15
    for target in targets:
        if "://" not in target:
            assert (ROOT / target).exists(), target
