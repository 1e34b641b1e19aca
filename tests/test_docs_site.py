"""The documentation site: the strict Sphinx build and its pages in headless Chromium.

The site is built with ``sphinx-build -W -n -E`` (warnings are errors, every
cross-reference must resolve) into a temporary folder, unless ``NTKSPEC_DOCS_HTML``
names a site that ``make docs`` has just built (``make check`` does so, to build once).
Skipped with the reason when Sphinx or myst-nb is not installed (``make docs`` installs
them, the ``docs`` extra), and the browser part when Chromium is absent.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]

# What the test reads in each page once it has loaded.
SITE_JS = """() => ({
  title: document.title,
  signatures: Array.from(document.querySelectorAll('dt.sig')).map(
    dt => ({id: dt.id, text: dt.textContent})),
  links: Array.from(document.querySelectorAll('a.reference.internal')).length,
})"""

needs_sphinx = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None
    or importlib.util.find_spec("myst_nb") is None,
    reason="sphinx / myst-nb not installed (pip install -e '.[docs]', or make docs)",
)
needs_chromium = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)),
    reason=f"Chromium is not installed at {CHROMIUM} (Debian: apt install chromium)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("NTKSPEC_DOCS_HTML")
    if given and (Path(given) / "index.html").is_file():
        return Path(given)
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "-E", "-q",
         "-d", str(out / ".doctrees"), str(ROOT / "docs"), str(out / "html")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, f"strict docs build failed:\n{proc.stderr[-6000:]}"
    return out / "html"


@needs_sphinx
def test_site_has_every_page(site):
    for rel in [
        "index.html",
        "guide/encodings.html",
        "guide/from_neural_tangents.html",
        "notebooks/spectra_walkthrough.html",
        "api/generated/ntkspec.regression.html",
        "api/generated/ntkspec.mappings.html",
    ]:
        assert (site / rel).is_file(), rel
    # the notebooks are rendered with their stored outputs (figures), not re-run
    nb = (site / "notebooks/spectra_walkthrough.html").read_text(encoding="utf-8")
    assert "<img" in nb


@needs_sphinx
@needs_chromium
def test_site_in_headless_chromium(site, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = context.new_page()
            page.goto((site / "index.html").as_uri(), wait_until="load")
            index = page.evaluate(SITE_JS)
            api = site / "api/generated/ntkspec.regression.html"
            page.goto(api.as_uri(), wait_until="load")
            reg = page.evaluate(SITE_JS)
        finally:
            context.close()
    assert "ntkspec" in index["title"] and index["links"] >= 10
    sigs = {s["id"]: s["text"] for s in reg["signatures"]}
    text = sigs["ntkspec.regression.kernel_regression"]
    for part in ("kernel_regression", "arch", "mapping", "x_train", "ridge", "solver"):
        assert part in text, (part, text)
