"""The report page in real headless Chromium: every image loads, every table has rows.

Uses the session's `ntkspec report --quick` run (fixture `report_quick`, conftest.py).
Driven by Playwright with Debian's /usr/bin/chromium (never a downloaded browser); where
the Python package `playwright` is missing, by `chromium --headless --dump-dom` on a
copy of the page with the same check injected. Skipped with the reason when Chromium is
absent.
The screenshot is saved into tmp_path.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("NTKSPEC_CHROMIUM", "/usr/bin/chromium")
# Offline, no first-run work, fresh profile; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

# Runs in the page once it has loaded: what the test asserts on.
CHECK_JS = """() => ({
  images: Array.from(document.images).map(img => ({
    src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth})),
  tables: Array.from(document.querySelectorAll('table')).map(t => ({
    id: t.id, rows: t.rows.length,
    cells: t.rows.length > 1 ? t.rows[1].cells.length : 0})),
  title: document.title,
})"""

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)),
    reason=f"Chromium is not installed at {CHROMIUM} (Debian: apt install chromium)",
)


def _check_with_playwright(index: Path, tmp_path: Path, screenshot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.goto(index.as_uri(), wait_until="load")
            result = page.evaluate(CHECK_JS)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    return result


def _check_with_dump_dom(index: Path, tmp_path: Path, screenshot: Path) -> dict:
    probe = index.with_name(".browser_check.html")
    script = (
        "<script>window.addEventListener('load', () => {"
        f"const r = ({CHECK_JS})();"
        "const pre = document.createElement('pre'); pre.id = 'ntkspec-check';"
        "pre.textContent = JSON.stringify(r); document.body.appendChild(pre);});"
        "</script></body>"
    )
    probe.write_text(index.read_text(encoding="utf-8").replace("</body>", script))
    base = [CHROMIUM, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'p'}"]
    try:
        dom = subprocess.run(
            [*base, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        subprocess.run(
            [
                *base,
                "--window-size=1200,4000",
                f"--screenshot={screenshot}",
                index.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    finally:
        probe.unlink()
    match = re.search(r'<pre id="ntkspec-check">(.*?)</pre>', dom, re.S)
    assert match, "the injected check did not run in Chromium"
    import html

    return json.loads(html.unescape(match.group(1)))


def test_report_page_in_headless_chromium(report_quick, tmp_path):
    out, summary, _ = report_quick
    index = out / summary["page"]
    screenshot = tmp_path / "report.png"
    try:
        import playwright.sync_api  # noqa: F401

        result = _check_with_playwright(index, tmp_path, screenshot)
    except ImportError:
        result = _check_with_dump_dom(index, tmp_path, screenshot)

    pngs = [rel for rel in summary["files"] if rel.endswith(".png")]
    assert result["title"] == "ntkspec report"
    assert len(result["images"]) == len(pngs) >= 1
    for img in result["images"]:
        assert img["complete"] and img["width"] > 0, f"image did not load: {img}"
    assert result["tables"], "the page has no table"
    for table in result["tables"]:
        assert table["rows"] >= 2 and table["cells"] >= 2, f"empty table: {table}"
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    keep = os.environ.get("NTKSPEC_KEEP_SCREENSHOT")
    if keep:  # for looking at the page by eye
        shutil.copy(screenshot, keep)
