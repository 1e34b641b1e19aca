"""studies.mode_gap: per-eigenspace residuals, the gap's causes, the width fit, files.

References used here, independent of the code under test:
- a depth-1 network (a linear model on the features) is exactly its own linearisation
  and its empirical NTK is the analytic NTK at any width, so theory, linearised and
  float64 network must agree to round-off in every mode (tolerance 1e-11: a few
  hundred float64 operations on O(1) numbers); its float32 copy differs by float32
  round-off (above 1e-9, below 1e-4 relative);
- the theory's relative residual in eigenspace S is |1 - eta lambda_S / N|^k, computed
  here from numpy's eigenvalues of the analytic Gram;
- the width fit against scipy.stats.linregress on the same (log width, log mean).
"""

import json
import math

import numpy as np
import pytest
import scipy.stats

import ntkspec
from analysis import fig_mode_gap
from ntkspec.report import tables_of
from ntkspec.studies import mode_gap
from ntkspec.validation import run_validation


def _linear_task():
    x = np.arange(8)[:, None] / 8.0
    y = np.sin(2 * np.pi * x[:, 0]) + 0.3 * np.cos(6 * np.pi * x[:, 0])
    return dict(mapping=ntkspec.mappings.power_law(4, 1.0, normalize=True), x=x, y=y)


def test_depth_one_network_follows_the_theory_in_every_mode():
    arch = ntkspec.ReluMLP(1, W_std=math.sqrt(2.0), b_std=0.1)
    task = _linear_task()
    theory = mode_gap.task_theory(arch, task)
    cfg = dict(steps=10, eval_every=5)
    run = mode_gap.run_one(arch, task, theory, 16, 0, cfg)
    assert run["steps"] == [0, 5, 10]
    # Bands partition the eigenspaces, largest eigenvalues first.
    bands = theory["bands"]
    assert sum(bands.values(), []) == list(range(theory["spaces"].eigenvalues.size))
    # Theory: |1 - eta lam / N|^k per eigenspace (numpy's eigenvalues of the Gram).
    K = np.asarray(ntkspec.ntk(arch, task["mapping"](task["x"])))
    lam = np.linalg.eigvalsh(K)[::-1]
    assert theory["lr"] == pytest.approx(8 / lam[0], rel=1e-12)
    factor = np.abs(1 - theory["lr"] * theory["spaces"].eigenvalues / 8)
    want = factor[None, :] ** np.array(run["steps"], float)[:, None]
    np.testing.assert_allclose(run["relative"]["theory"], want, rtol=1e-5, atol=1e-12)
    # A linear model: every gap is round-off, the float32 one float32 round-off.
    for cause in ("kernel", "drift", "total"):
        g = np.array(run["gaps"][cause], dtype=float)
        assert np.nanmax(g) < 1e-11, cause
    g32 = np.array(run["gaps"]["roundoff"], dtype=float)
    assert 1e-9 < np.nanmax(g32) < 1e-4
    # Relative to the theory's residual: the same, except for the top mode, learned in
    # one step (theory residual 0 there after step 0: undefined).
    for cause in ("kernel", "drift", "total"):
        g = np.array(run["gaps_vs_theory"][cause], dtype=float)
        assert np.isnan(g[1:, 0]).all() and np.nanmax(g) < 1e-11, cause
    assert not np.isnan(np.array(run["gaps_vs_theory"]["kernel"], float)[:, 1:]).any()
    np.testing.assert_allclose(run["eigen_errors"]["eigenvalue"], 0.0, atol=1e-12)
    assert run["collapsed"] == []
    assert run["top_eigenvalue_ratio"] == pytest.approx(1.0, rel=1e-12)
    # Above GD's stability limit the run is marked collapsed, with the cause, and the
    # summary leaves it out of every statistic.
    unstable = dict(theory, lr=3.0 * theory["lr"])
    bad = mode_gap.run_one(arch, task, unstable, 16, 1, cfg, trained=False)
    assert bad["collapsed"] and "diverges" in bad["collapsed"][0]
    meta = dict(
        trained_widths=[16], linearized_widths=[], keys=2, bands=theory["bands"],
        representative=theory["representative"], learning_rate=theory["lr"],
        n_train=8, eigenvalues=theory["spaces"].eigenvalues.tolist(),
    )  # fmt: skip
    summary = mode_gap.summarize(meta, [run, bad])
    # A linear model decays at the theory's rate in every representative mode (to
    # 1e-4: the stored curves keep 6 significant digits, and the rate is a slope of
    # their logs over 5 steps).
    for band in summary["decay_rates"].values():
        for c in ("linearized", "network_f64"):
            assert band["ratio"][c]["16"]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert summary["collapsed"] == [dict(width=16, key=1, cause=bad["collapsed"])]
    assert summary["runs_found"] == 2 and summary["missing"] == []
    low = summary["band_gaps"]["kernel"][str(summary["report_steps"][-1])]["low"]
    assert len(low["per_key"][0]) == 1


def test_width_exponent_matches_linregress_and_recovers_a_power_law():
    widths = [64, 128, 256, 512]
    exact = [[3.0 * w**-0.5] * 4 for w in widths]
    fit = mode_gap.width_exponent(widths, exact)
    assert fit["slope"] == pytest.approx(-0.5, abs=1e-12)
    assert fit["stderr"] == pytest.approx(0.0, abs=1e-12)
    assert fit["contains_minus_half"]
    rng = np.random.default_rng(1)
    noisy = [list(3.0 * w**-0.7 * np.exp(0.2 * rng.normal(size=5))) for w in widths]
    fit = mode_gap.width_exponent(widths, noisy)
    ref = scipy.stats.linregress(np.log(widths), np.log([np.mean(v) for v in noisy]))
    assert fit["slope"] == pytest.approx(ref.slope, rel=1e-10)
    assert fit["stderr"] == pytest.approx(ref.stderr, rel=1e-10)
    half = scipy.stats.t.ppf(0.975, len(widths) - 2) * ref.stderr
    np.testing.assert_allclose(
        fit["t_interval"], [ref.slope - half, ref.slope + half], rtol=1e-10
    )
    lo, hi = fit["bootstrap_interval"]
    assert lo < fit["slope"] < hi
    # Widths with no usable value are left out; fewer than two: no fit.
    assert mode_gap.width_exponent([8, 16], [[None], [1.0]])["slope"] is None


def test_run_tiny_resumes_and_summarizes_from_disk(tmp_path):
    runs_dir = tmp_path / "runs"
    logged = []
    written = mode_gap.run(
        tmp_path, size="tiny", runs_dir=runs_dir, task_names=("1d",),
        log=logged.append, command="pytest",
    )  # fmt: skip
    cfg = mode_gap.SIZES["tiny"]
    n_runs = (len(cfg["widths"]) + len(cfg["linearized_widths"])) * cfg["keys"]
    assert len(logged) == n_runs == len(list(runs_dir.glob("1d_w*_k*.json")))
    data = json.loads((tmp_path / "mode_gap.json").read_text())
    t = data["tasks"]["1d"]
    assert t["missing"] == [] and t["runs_found"] == n_runs and t["collapsed"] == []
    assert written["png"] == [str(tmp_path / "mode_gap_1d.png")]
    assert "CPU" in data["size_note"] and "PRNGKey" in data["keys"]
    # The report reads three declared tables (two normalisations of the gap, the
    # late decay rates).
    assert len(tables_of(data)) == 3
    # Different keys give different initial kernels (eigenvalue errors differ).
    runs = [json.loads(p.read_text())["run"] for p in sorted(runs_dir.glob("*.json"))]
    w0 = [r for r in runs if r["width"] == cfg["widths"][0]]
    assert w0[0]["eigen_errors"]["eigenvalue"] != w0[1]["eigen_errors"]["eigenvalue"]
    # Resume: nothing is recomputed; a deleted run is recomputed alone.
    (runs_dir / f"1d_w{cfg['widths'][0]}_k1.json").unlink()
    logged.clear()
    mode_gap.run(tmp_path, size="tiny", runs_dir=runs_dir, task_names=("1d",),
                 log=logged.append)  # fmt: skip
    assert len(logged) == 1 and f"width {cfg['widths'][0]} key 1" in logged[0]
    # Summarize-only rebuilds the same numbers from the runs on disk.
    again = tmp_path / "again"
    mode_gap.run(again, size="tiny", runs_dir=runs_dir, task_names=("1d",),
                 summarize_only=True)  # fmt: skip
    assert json.loads((again / "mode_gap.json").read_text())["tables"] == data["tables"]
    # Checkpoints of other settings are refused, before any training.
    with pytest.raises(ValueError, match="settings"):
        mode_gap.run(tmp_path / "x", size="tiny", runs_dir=runs_dir, seed=1,
                     task_names=("1d",))  # fmt: skip
    with pytest.raises(ValueError, match="size must be one of"):
        mode_gap.run(tmp_path, size="huge")
    with pytest.raises(ValueError, match="task_names"):
        mode_gap.run(tmp_path, size="tiny", task_names=("3d",))
    with pytest.raises(ValueError, match="does not exist"):
        mode_gap.run(tmp_path, size="tiny", runs_dir=tmp_path / "no",
                     summarize_only=True)  # fmt: skip


def test_script_summarize_only_without_runs_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "out"
    code = fig_mode_gap.main(["--summarize-only", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err
    assert not out.exists()


def test_validation_runs_it_on_request_with_a_summary(tmp_path):
    written = run_validation(tmp_path, size="tiny", studies=("mode_gap",))
    assert written["mode_gap"]["runs_dir"] is None  # reduced sizes keep no runs
    assert not (tmp_path / "mode_gap_runs").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "## Per-mode gap" in summary and "| high | drift |" in summary
    data = json.loads((tmp_path / "mode_gap.json").read_text())
    assert set(data["tasks"]) == {"1d", "2d"} and len(data["tables"]) == 6


def test_decay_rate_of_a_geometric_curve_and_its_refusals():
    # r_k = 3 * 0.9^k: the rate is -log 0.9 exactly, whatever part of the run is fitted
    steps = np.arange(0, 101, 5)
    r = 3.0 * 0.9**steps
    assert mode_gap.decay_rate(steps, r) == pytest.approx(-math.log(0.9), rel=1e-12)
    # a curve that changes rate half way: only the second half (rate -log 0.5) counts
    k = np.arange(0, 21)
    bent = np.where(k <= 10, 0.9**k, 0.9**10 * 0.5 ** (k - 10))
    assert mode_gap.decay_rate(k, bent) == pytest.approx(math.log(2.0), rel=1e-12)
    # zeros and NaN are skipped; fewer than 2 usable points give None
    assert mode_gap.decay_rate([0, 1, 2, 3], [1.0, 0.0, 0.0, np.nan]) is None
    with pytest.raises(ValueError, match="start"):
        mode_gap.decay_rate(steps, r, start=1.0)
    with pytest.raises(ValueError, match="one length"):
        mode_gap.decay_rate(steps, r[:-1])
