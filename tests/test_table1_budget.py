"""Table 1 at the training budget: collapse detection, statistics, theory, a run."""

import json
import math

import numpy as np
import pytest

from ntkspec import data, kernels, mappings
from ntkspec.studies import _table1, table1_budget

# float64 theory against a float64 dense reference
TOL64 = dict(rtol=1e-9, atol=1e-11)


def _image(crop, seed=0):
    rng = np.random.default_rng(seed)
    smooth = rng.random((crop // 4, crop // 4, 3))
    return np.kron(smooth, np.ones((4, 4, 1)))


# ------------------------------------------------------------------ collapse detection


def test_constant_predictor_is_flagged():
    y = _image(16).reshape(-1, 3)
    y_tr = y[:64]
    for value in (0.0, 0.5, 1.0):
        cause = _table1.collapse_cause(np.full_like(y, value), y, y_tr)
        assert cause is not None and cause.startswith("constant output")


def test_psnr_of_a_constant_predictor_is_flagged_where_the_theory_is_higher():
    """Not exactly constant, but scoring the best constant predictor's PSNR."""
    y = _image(16).reshape(-1, 3)
    y_tr = y[::3]
    tiny = 1e-4 * np.random.default_rng(1).standard_normal(y.shape)
    mean = np.broadcast_to(y_tr.mean(axis=0), y.shape) + tiny
    ref = _table1.constant_psnrs(y_tr, y)["mean"]
    cause = _table1.collapse_cause(mean, y, y_tr, reference_psnr=ref + 1.0)
    assert cause is not None and "train-mean" in cause
    # no theory: only a constant or non-finite output is a collapse
    assert _table1.collapse_cause(mean, y, y_tr) is None


def test_constant_psnr_expected_by_the_theory_is_not_a_collapse():
    """A budget that learns only the mean: the network follows the theory there."""
    y = _image(16).reshape(-1, 3)
    y_tr = y[::3]
    near_mean = np.broadcast_to(y_tr.mean(axis=0), y.shape) + 1e-3 * y
    ref = _table1.constant_psnrs(y_tr, y)["mean"]
    assert (
        _table1.collapse_cause(near_mean, y, y_tr, reference_psnr=ref + 2) is not None
    )
    assert _table1.collapse_cause(near_mean, y, y_tr, reference_psnr=ref) is None
    # a constant output stays a collapse whatever the theory says
    flat = np.full_like(y, 0.3)
    assert _table1.collapse_cause(flat, y, y_tr, reference_psnr=ref) is not None


def test_non_finite_output_is_flagged():
    y = _image(8).reshape(-1, 3)
    pred = y.copy()
    pred[3, 1] = np.nan
    assert "non-finite" in _table1.collapse_cause(pred, y, y)


def test_a_normal_prediction_is_not_flagged():
    y = _image(16).reshape(-1, 3)
    noisy = y + 0.05 * np.random.default_rng(2).standard_normal(y.shape)
    assert _table1.collapse_cause(noisy, y, y[::2]) is None
    # a blurred prediction, poor but carrying the image, is not flagged either
    blur = 0.5 * y + 0.5 * y.mean(axis=0)
    assert _table1.collapse_cause(blur, y, y[::2]) is None


def test_collapse_cause_checks_shapes():
    with pytest.raises(ValueError, match="prediction"):
        _table1.collapse_cause(np.zeros((4, 3)), np.zeros((5, 3)), np.zeros((2, 3)))


def test_summarize_leaves_collapsed_runs_out_with_their_cause():
    runs = [
        dict(image="a", seed=0, psnr_heldout=20.0, collapsed=None),
        dict(image="a", seed=1, psnr_heldout=22.0, collapsed=None),
        dict(image="b", seed=0, psnr_heldout=17.59, collapsed="constant output (0)"),
        dict(image="b", seed=1, psnr_heldout=24.0, collapsed=None),
        dict(image="c", seed=0, psnr_heldout=26.0, collapsed=None),
    ]
    s = _table1.summarize(runs)
    # seeds averaged within an image first: a -> 21, b -> 24, c -> 26
    assert s["n"] == 3
    np.testing.assert_allclose(s["mean"], (21.0 + 24.0 + 26.0) / 3, rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        s["std"], np.std([21.0, 24.0, 26.0], ddof=1), rtol=1e-15, atol=0
    )
    assert s["collapsed"] == [
        dict(image="b", seed=0, value=17.59, cause="constant output (0)")
    ]
    one = _table1.summarize(runs[:1])
    assert one["n"] == 1 and one["std"] is None
    none = _table1.summarize(runs[2:3])
    assert none["n"] == 0 and none["mean"] is None


# ----------------------------------------------------------------------------- theory


def test_scaled_grid_mapping_has_the_crop_kernel():
    """Grid points k/crop with B*crop/512 give the kernel of pixels (off + k)/512."""
    crop = 8
    m = mappings.gaussian(3, 2, 16, 10.0)
    m_t, x_tr, x_te = table1_budget.task_inputs(m, crop)
    off = (512 - crop) // 2
    g = (off + np.arange(crop)) / 512
    pix = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    arch = table1_budget.ARCH
    k_grid = np.asarray(kernels.ntk(arch, m_t(x_te.points())))
    k_pix = np.asarray(kernels.ntk(arch, m(pix)))
    np.testing.assert_allclose(k_grid, k_pix, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        x_tr.points() * crop, x_te.points()[data.train_indices((crop, crop))] * crop
    )


@pytest.mark.parametrize("name", ["gaussian", "none"])
def test_theory_matches_a_dense_eigendecomposition(name):
    """f_T = K_*X K^-1 (I - (I - eta K / N_y)^T) y, written here with numpy.eigh."""
    crop = 8
    mapping = table1_budget.set_mappings("natural", 1)[name]
    m_t, x_tr, x_te = table1_budget.task_inputs(mapping, crop)
    img = _image(crop, 4).reshape(-1, 3)
    tr = data.train_indices((crop, crop))
    p_tr = x_tr.points() if hasattr(x_tr, "points") else x_tr
    p_te = x_te.points() if hasattr(x_te, "points") else x_te
    arch = table1_budget.ARCH
    K = np.asarray(kernels.ntk(arch, m_t(p_tr)), np.float64)
    Kx = np.asarray(kernels.ntk(arch, m_t(p_te), m_t(p_tr)), np.float64)
    lam, Q = np.linalg.eigh(K)
    eta, lam_max = table1_budget.budget_learning_rate(m_t, x_tr, 3)
    np.testing.assert_allclose(lam_max, lam[-1], rtol=1e-8, atol=0)
    np.testing.assert_allclose(eta, img[tr].size / lam[-1], rtol=1e-8, atol=0)
    steps = [0, 1, 7, 40]
    got = table1_budget.theory_curves(m_t, x_tr, img[tr], x_te, steps, eta)
    rate = eta / img[tr].size
    for t, f in zip(steps, got, strict=True):
        phi = (1.0 - (1.0 - rate * lam) ** t) / lam
        want = Kx @ (Q @ (phi[:, None] * (Q.T @ img[tr])))
        np.testing.assert_allclose(f, want, **TOL64)


def test_centred_gd_network_starts_at_zero_and_follows_the_theory():
    crop = 8
    mapping = table1_budget.set_mappings("natural", 0)["gaussian"]
    m_t, x_tr, x_te = table1_budget.task_inputs(mapping, crop)
    img = _image(crop, 5).reshape(-1, 3)
    tr = data.train_indices((crop, crop))
    eta, _ = table1_budget.budget_learning_rate(m_t, x_tr, 3)
    steps, g, _ = table1_budget.train_gd(
        m_t, x_tr, img[tr], x_te, img, width=2048, steps=40, eta=eta, seed=0
    )
    np.testing.assert_array_equal(g[0], 0.0)
    theory = table1_budget.theory_curves(m_t, x_tr, img[tr], x_te, steps, eta)
    # finite width 2048: relative gap of order width^-1/2 (float32 network)
    rel = np.linalg.norm(g[-1] - theory[-1]) / np.linalg.norm(theory[-1])
    assert rel < 0.1


# ------------------------------------------------------------------------- end to end


def test_tiny_run_end_to_end(tmp_path, monkeypatch):
    cfg = dict(
        crop=8,
        images=1,
        seeds=2,
        width=16,
        sweep_widths=(32,),
        steps=4,
        adam_steps=4,
        none_crop=8,
        sets=("natural",),
        mappings=("basic", "gaussian"),
    )
    monkeypatch.setitem(table1_budget.SIZES, "tiny", cfg)
    out = table1_budget.run(tmp_path, size="tiny", command="pytest tiny")
    blob = json.loads((tmp_path / "table1_budget.json").read_text())
    assert blob["provenance"]["command"] == "pytest tiny"
    assert blob["reduced_for_report"] and blob["size"] == "tiny"
    assert (tmp_path / "table1_budget.png").stat().st_size > 0
    assert out["json"].endswith("table1_budget.json")
    main = blob["tables"][0]
    assert [r[1] for r in main["rows"]] == ["basic", "gaussian"]
    for row, m in zip(main["rows"], ("basic", "gaussian"), strict=True):
        entry = blob["table1"]["natural"]["mappings"][m]
        keys = ("theory", "gd", "adam", "theory_infinity")
        for cell, key in zip(row[3:7], keys, strict=True):
            stat = entry[key]
            # every run is counted: in n, or listed as collapsed (4 Adam steps may
            # leave a sigmoid network at its train-mean constant)
            # the theory of a seed-independent mapping counts each image once
            runs = 1 if (key.startswith("theory") and m == "basic") else 2
            v = blob["verdicts"]["table"]["natural"][m][key]
            assert len(v["runs"]) == runs and v["summary"]["runs"] == runs
            # n counts images (seeds averaged within an image first): one image
            kept = [r for r in v["runs"] if not r["collapsed"]]
            assert stat["n"] == v["summary"]["n"] == (1 if kept else 0)
            assert len(stat["collapsed"]) == runs - len(kept)
            if cell is not None:
                assert cell["n"] == stat["n"] and math.isfinite(cell["mean"])
    entry = blob["table1"]["natural"]["mappings"]["gaussian"]
    # the sweep holds both widths on the first image and seed
    assert sorted(r["width"] for r in entry["width_sweep"]) == [16, 32]
    assert blob["tables"][-1]["title"].startswith("Collapsed runs")


def test_theory_over_the_dense_cap_takes_the_structured_path(tmp_path, monkeypatch):
    """Since issue 12 a Grid theory over the dense cap runs by Krylov, not refused.

    The Krylov path itself is checked against a dense eigendecomposition in
    tests/test_dynamics_krylov.py; here the capped run must equal the uncapped one.
    """
    cfg = dict(
        crop=8,
        images=1,
        seeds=1,
        width=16,
        sweep_widths=(),
        steps=4,
        adam_steps=4,
        none_crop=8,
        sets=("natural",),
        mappings=("gaussian",),
    )
    theory = {}
    for cap in (None, 1000):  # 1000 B: the 16 x 16 float64 train Gram is over it
        run_cfg = dict(cfg) if cap is None else dict(cfg, theory_max_bytes=cap)
        monkeypatch.setitem(table1_budget.SIZES, "tiny", run_cfg)
        out = tmp_path / f"cap{cap}"
        table1_budget.run(out, size="tiny", command="pytest cap")
        blob = json.loads((out / "table1_budget.json").read_text())
        entry = blob["table1"]["natural"]["mappings"]["gaussian"]
        assert entry["theory"] is not None, entry["per_seed"]
        theory[cap] = entry["theory"]["mean"]
        assert (out / "table1_budget.png").stat().st_size > 0
    assert abs(theory[1000] - theory[None]) <= 1e-8 * abs(theory[None])
