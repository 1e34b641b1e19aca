"""ntkspec.report: the one-command report, its page and report.json.

The real `ntkspec report --quick` run is the session fixture `report_quick`
(conftest.py), shared with test_browser.py. The page's mechanics (tables, numbers,
reductions, failures) are also checked on made-up studies written into tmp_path.
"""

import base64
import json
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import jax
import pytest

from ntkspec import report
from ntkspec.report import Study, format_number, resolve_pointer, run_report


class _PageParser(HTMLParser):
    """Collects <img src>, table row counts and the text of every numbered span."""

    def __init__(self):
        super().__init__()
        self.images, self.embedded, self.tables, self.numbers = [], [], [], {}
        self._number_id = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/"), "figures must be embedded"
            self.images.append(attrs["data-source"])
            self.embedded.append(attrs["src"])
        elif tag == "table":
            self.tables.append(0)
        elif tag == "tr":
            self.tables[-1] += 1
        elif tag == "span" and "data-number-id" in attrs:
            self._number_id = attrs["data-number-id"]
            self.numbers[self._number_id] = ""

    def handle_data(self, data):
        if self._number_id is not None:
            self.numbers[self._number_id] += data

    def handle_endtag(self, tag):
        if tag == "span":
            self._number_id = None


def _parse(index: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def _check_numbers_against_sources(out: Path, summary: dict, page: _PageParser):
    assert set(page.numbers) == {rec["id"] for rec in summary["numbers"]}
    for rec in summary["numbers"]:
        source = json.loads((out / rec["source"]).read_text())
        value = resolve_pointer(source, rec["pointer"])
        assert value == rec["value"], rec
        shown = format_number(value, rec["decimals"])
        assert shown == rec["shown"] == page.numbers[rec["id"]], rec


# --------------------------------------------------------------------------------------
# The shared real run
# --------------------------------------------------------------------------------------


def test_quick_report_runs_every_available_study(report_quick):
    out, summary, proc = report_quick
    statuses = {rec["key"]: rec["status"] for rec in summary["studies"]}
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(statuses) == {s.key for s in report.STUDIES}
    assert statuses["profiles"] == "ok"
    assert set(statuses.values()) == {"ok"}, statuses
    assert summary["quick"] is True and summary["seed"] == 0


def test_quick_report_wrote_every_file_it_lists(report_quick):
    out, summary, _ = report_quick
    files = summary["files"]
    assert "index.html" in files and "report.json" in files
    assert len(files) == len(set(files))
    for rel in files:
        path = out / rel
        assert path.is_file() and path.stat().st_size > 0, rel
        assert not path.name.endswith(".tmp"), rel
    for rec in summary["studies"]:
        if rec["status"] == "ok":
            assert rec["files"] and set(rec["files"]) <= set(files), rec["key"]
            assert any(f.endswith(".json") for f in rec["files"]), rec["key"]
    # no stray temp files from the atomic writes
    assert not list(out.rglob("*.tmp"))


def test_quick_report_page_shows_the_json_numbers(report_quick):
    out, summary, _ = report_quick
    page = _parse(out / summary["page"])
    _check_numbers_against_sources(out, summary, page)


def test_quick_report_page_images_are_the_studies_figures(report_quick):
    out, summary, _ = report_quick
    index = out / summary["page"]
    page = _parse(index)
    pngs = {rel for rel in summary["files"] if rel.endswith(".png")}
    shown = {(index.parent / src).resolve() for src in page.images}
    assert shown == {(out / rel).resolve() for rel in pngs}
    for src, data_uri in zip(page.images, page.embedded, strict=True):
        payload = base64.b64decode(data_uri.split(",", 1)[1])
        assert payload == (index.parent / src).read_bytes()
    assert all(rows >= 2 for rows in page.tables)  # header + at least one row
    text = index.read_text(encoding="utf-8")
    assert "--quick" in text and "seed" in text and "command" in text.lower()


# --------------------------------------------------------------------------------------
# Page mechanics on made-up studies
# --------------------------------------------------------------------------------------

_FAKE_STUDY = """
import json
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def run(out_dir, *, quick=False, seed=0, command=None):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "description": "A made-up study.",
        "reduced": ["3 images instead of 16", "no-mapping row at 64 x 64"],
        "tables": [
            {"title": "Table 1", "columns": ["mapping", "ours", "paper"],
             "rows": [["basic", 21.123456, {"mean": 21.72, "std": 2.72}],
                      ["gaussian", 25.5, None]],
             "note": "paper: Tancik et al. 2020"},
        ],
        "table": {"columns": ["n", "value"], "rows": [{"n": 3, "value": 1.5e-12}]},
        "provenance": {"command": command, "seed": seed, "device": "CPU", "jax": "x"},
    }
    (out_dir / "fake.json").write_text(json.dumps(data))
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(out_dir / "fake.png")
    plt.close(fig)
    return {"json": str(out_dir / "fake.json"), "png": str(out_dir / "fake.png"),
            "seconds": 0.0, "markdown": "# long text\\n" + "x" * 5000}


def broken(out_dir, *, quick=False, seed=0, command=None):
    raise RuntimeError("deliberately\\nbroken")
"""


@pytest.fixture
def fake_studies(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "ntkspec_fake_study.py").write_text(textwrap.dedent(_FAKE_STUDY))
    monkeypatch.syspath_prepend(str(pkg))
    return (
        Study("fake", "A fake study", "ntkspec_fake_study", section="Fakes"),
        Study("broken", "Raises", "ntkspec_fake_study", function="broken"),
    )


def test_page_from_fake_studies(tmp_path, fake_studies):
    out = tmp_path / "out"
    summary = run_report(out, studies=fake_studies, progress=False, command="test")
    status = {rec["key"]: rec for rec in summary["studies"]}
    assert status["fake"]["status"] == "ok"
    assert status["broken"]["status"] == "failed"
    assert status["broken"]["error"] == "RuntimeError: deliberately broken"
    assert sorted(status["fake"]["files"]) == ["fake/fake.json", "fake/fake.png"]

    index = out / "index.html"
    page = _parse(index)
    # 5 numbers in Table 1 (21.12, 21.72 ± 2.72, 25.5) and 2 in the second table
    assert len(summary["numbers"]) == 6
    _check_numbers_against_sources(out, summary, page)
    shown = sorted(rec["shown"] for rec in summary["numbers"])
    assert shown == ["1.5e-12", "2.72", "21.12", "21.72", "25.5", "3"]
    pointers = {rec["pointer"] for rec in summary["numbers"]}
    assert "/tables/0/rows/0/2/mean" in pointers and "/table/rows/0/value" in pointers
    assert page.images == ["fake/fake.png"]
    assert (index.parent / page.images[0]).is_file()
    text = index.read_text(encoding="utf-8")
    for phrase in (
        "3 images instead of 16",
        "no-mapping row at 64 x 64",
        "A made-up study.",
        "paper: Tancik et al. 2020",
        "RuntimeError: deliberately broken",
    ):
        assert phrase in text, phrase
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))


@pytest.mark.parametrize(
    "study, fragment",
    [
        (Study("missing", "Not there", "ntkspec_no_such_module_xyz"), "cannot import"),
        (Study("nofunc", "No function", "ntkspec_fake_study", function="nope"), "nope"),
    ],
)
def test_a_study_that_cannot_load_stops_the_report(
    tmp_path, fake_studies, study, fragment
):
    out = tmp_path / "out"
    with pytest.raises(report.StudyImportError, match=fragment):
        run_report(out, studies=(*fake_studies, study), progress=False)
    assert not (out / "fake").exists()  # nothing ran
    assert not (out / "index.html").exists()


def test_tables_of_ignores_malformed_entries():
    data = {
        "tables": [{"columns": ["a"], "rows": [[1]]}, {"rows": []}, "text"],
        "table": {"columns": ["b"]},
    }
    assert [ptr for ptr, _ in report.tables_of(data)] == ["/tables/0"]
    named = report.tables_of({"tables": {"a/b": {"columns": [], "rows": []}}})
    assert [ptr for ptr, _ in named] == ["/tables/a~1b"]
    assert resolve_pointer({"a/b": [0, {"c": 7}]}, "/a~1b/1/c") == 7


@pytest.mark.parametrize(
    "value, shown",
    [(3, "3"), (25.5712, "25.57"), (1.5e-12, "1.5e-12"), (float("inf"), "∞")],
)
def test_format_number(value, shown):
    assert format_number(value) == shown


def test_absent_device_is_refused_before_any_work(tmp_path):
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="device 'gpu'.*JAX sees no such device"):
        run_report(tmp_path / "out", device="gpu", studies=(), progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="device must be"):
        run_report(tmp_path / "out", device="tpu-ish", studies=(), progress=False)


_ADAPTED_STUDY = """
import json
from pathlib import Path


def run(out_dir, *, quick=False, seed=0, command=None):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ms = lambda m, s: {"mean": m, "std": s, "n": 2}
    table1 = {
        "size_note": "REDUCED: 32x32 images",
        "paper_table1": {"natural": {"none": [19.32, 2.48], "gaussian": [25.57, 4.19]}},
        "ntk_regression": {"psnr": {"natural": {"gaussian": 24.5}}},
        "table1": {"natural": {"images": ["a"], "mappings": {
            "none": {"heldout": ms(17.1, 0.5), "nontrain": ms(17.4, 0.6)},
            "gaussian": {"heldout": ms(22.2, 1.5), "nontrain": ms(22.9, 1.25)},
        }}},
        "sigma_sweep": {"runs": [{"sigma": 1.0, "psnr_train": 20.0,
                                  "psnr_heldout": 19.0}]},
    }
    conv = {"size": "quick", "widths": [64, 256], "mean_error": [0.4, 0.2],
            "slope": -0.5, "slope_stderr": 0.01, "theory_slope": -0.5}
    dyn = {"tasks": {"1d": {"widths": [32, 128], "gap_summary": {
        "test_output": {"mean_per_width": [0.2, 0.1], "slope": -0.5, "shrinks": True},
    }}}}
    broken = {"tasks": "not what the adapter expects", "gap": 0.125}
    paths = {}
    for name, data in [("table1_networks", table1), ("ntk_convergence", conv),
                       ("dynamics_validation", dyn)]:
        (out_dir / f"{name}.json").write_text(json.dumps(data))
        paths[name] = str(out_dir / f"{name}.json")
    (out_dir / "sub").mkdir(exist_ok=True)
    (out_dir / "sub" / "dynamics_validation.json").write_text(json.dumps(broken))
    return paths
"""


def test_adapters_show_the_studies_own_json_formats(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "ntkspec_adapted_study.py").write_text(textwrap.dedent(_ADAPTED_STUDY))
    monkeypatch.syspath_prepend(str(pkg))
    out = tmp_path / "out"
    summary = run_report(
        out,
        studies=(Study("val", "Validation", "ntkspec_adapted_study"),),
        progress=False,
    )
    assert summary["studies"][0]["status"] == "ok"
    # files written into sub-folders during the run are listed too
    assert "val/sub/dynamics_validation.json" in summary["files"]
    page = _parse(out / "index.html")
    _check_numbers_against_sources(out, summary, page)
    by_source = {}
    for rec in summary["numbers"]:
        by_source.setdefault(rec["source"], {})[rec["pointer"]] = rec["shown"]
    t1 = by_source["val/table1_networks.json"]
    assert t1["/paper_table1/natural/gaussian/0"] == "25.57"
    assert t1["/paper_table1/natural/gaussian/1"] == "4.19"
    assert t1["/ntk_regression/psnr/natural/gaussian"] == "24.5"
    assert t1["/table1/natural/mappings/none/heldout/mean"] == "17.1"
    assert t1["/sigma_sweep/runs/0/psnr_heldout"] == "19"
    assert len(t1) == 8 + 4 + 1 + 3  # ours, paper (mean, std) x 2 rows; NTK; sweep
    conv = by_source["val/ntk_convergence.json"]
    assert conv["/mean_error/1"] == "0.2" and conv["/slope_stderr"] == "0.01"
    dyn = by_source["val/dynamics_validation.json"]
    assert dyn["/tasks/1d/gap_summary/test_output/mean_per_width/1"] == "0.1"
    # an unexpected format falls back to the top-level numbers
    assert by_source["val/sub/dynamics_validation.json"] == {"/gap": "0.125"}
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "REDUCED: 32x32 images" in text and "size preset &#x27;quick&#x27;" in text
