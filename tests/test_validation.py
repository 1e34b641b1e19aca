"""The validation job and its studies at tiny sizes; the theory vs gd_dynamics."""

import json

import numpy as np
import pytest

import ntkspec
from ntkspec.studies import dynamics_validation, ntk_convergence, table1_networks
from ntkspec.validation import run_validation


def test_fit_loglog_slope_recovers_a_power_law():
    x = np.array([64.0, 128, 256, 512])
    slope, intercept, se = ntk_convergence.fit_loglog_slope(x, 3.0 * x**-0.5)
    assert abs(slope + 0.5) < 1e-12 and abs(np.exp(intercept) - 3.0) < 1e-10
    assert se < 1e-10


def test_linear_gd_theory_matches_gd_dynamics_and_closed_form():
    # one eigen-direction by hand: K = lam u u^T on n = 1, y = 1, f0 = 0, k_test = c:
    # f_train(t) = 1 - (1 - lr lam)^t, f_test(t) = c (1 - (1 - lr lam)^t) / lam.
    lam, c, lr = 2.0, 0.7, 0.3
    steps = np.array([0, 1, 5])
    f_tr, f_te = dynamics_validation.linear_gd_theory(
        np.array([[lam]]),
        np.array([[c]]),
        np.array([1.0]),
        np.array([0.0]),
        np.array([0.0]),
        steps,
        lr,
    )
    decay = (1 - lr * lam) ** steps
    np.testing.assert_allclose(f_tr[:, 0], 1 - decay, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(
        f_te[:, 0], c * (1 - decay) / lam, rtol=1e-14, atol=1e-15
    )
    # and against the library's gd_dynamics on a real kernel, with nonzero f0
    arch = ntkspec.ReluMLP(3, b_std=0.1)
    mapping = ntkspec.mappings.power_law(8, 1.0, normalize=True)
    x = np.linspace(0, 1, 16, endpoint=False)[:, None]
    x_tr, x_te = x[::2], x[1::2]
    rng = np.random.default_rng(0)
    y, f0, g0 = rng.standard_normal(8), rng.standard_normal(8), rng.standard_normal(8)
    k_tr = np.asarray(ntkspec.ntk(arch, mapping(x_tr)))
    k_te = np.asarray(ntkspec.ntk(arch, mapping(x_te), mapping(x_tr)))
    lr = y.size / np.linalg.eigvalsh(k_tr).max()
    steps = np.array([0, 1, 10, 100])
    a = dynamics_validation.linear_gd_theory(k_tr, k_te, y, f0, g0, steps, lr)
    from ntkspec.dynamics import gd_dynamics

    b = gd_dynamics(
        arch,
        mapping,
        x_tr,
        y,
        x_te,
        steps,
        lr,
        f_train_0=f0,
        f_test_0=g0,
        discrete=True,
    )
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-8, atol=1e-10)


def test_band_vectors_close_degenerate_eigenvalues():
    lam = np.array([5.0, 3.0, 3.0, 1.0])
    Q = np.eye(4)
    vecs, idx = dynamics_validation._band_vectors(lam, Q, 1, 2)
    assert idx == [1, 2] and vecs.shape == (4, 2)


@pytest.mark.slow
def test_run_validation_tiny_writes_labelled_outputs(tmp_path):
    written = run_validation(tmp_path, size="tiny", command="pytest")
    for name in ("ntk_convergence", "dynamics_validation", "table1"):
        assert name in written
    summary = (tmp_path / "summary.md").read_text()
    index = json.loads((tmp_path / "validation.json").read_text())
    device = index["device"]
    assert device in summary and index["jax"] in summary
    if index["provenance"]["platform"] == "cpu":
        assert "CPU run" in summary
    for f in ("ntk_convergence", "dynamics_validation", "table1_networks"):
        data = json.loads((tmp_path / f"{f}.json").read_text())
        assert data["provenance"]["device"] == device and data["size"] == "tiny"
        assert (tmp_path / f"{f}.png").stat().st_size > 0
    t1 = json.loads((tmp_path / "table1_networks.json").read_text())
    assert "REDUCED" in t1["reduced"] and "REDUCED" in t1["size_note"]
    assert set(t1["table1"]) == {"natural", "text"}
    for block in t1["table1"].values():
        assert set(block["mappings"]) == set(table1_networks.MAPPING_NAMES)
        for row in block["mappings"].values():
            assert np.isfinite(row["heldout"]["mean"])
    dyn = json.loads((tmp_path / "dynamics_validation.json").read_text())
    for task in dyn["tasks"].values():
        assert max(r["theory_cross_check"] for r in task["runs"]) < 1e-8
    with pytest.raises(ValueError, match="size"):
        run_validation(tmp_path, size="huge")
    with pytest.raises(ValueError, match="studies"):
        run_validation(tmp_path, size="tiny", studies=("nope",))


def test_table1_ensemble_sweep_equals_one_network_at_a_time():
    # Table 1's sweep through networks.train_ensemble (the four mappings of each image
    # in one call) against the per-network loop: same networks, keys and steps; float32
    # networks, so the PSNRs agree to float32 rounding (measured < 1e-4 dB).
    kw = dict(crop=8, steps=4, images=1, seeds=1)
    one, _ = table1_networks.table1(**kw)
    many, recon = table1_networks.table1(ensemble=True, **kw)
    for image_set in ("natural", "text"):
        for name, row in one[image_set]["mappings"].items():
            other = many[image_set]["mappings"][name]
            for stat in ("heldout", "nontrain", "train"):
                assert abs(other[stat]["mean"] - row[stat]["mean"]) <= 1e-3
            assert other["runs"][0]["ensemble"] == {"members": 4, "devices": 1}
        assert set(recon[image_set]) == {"target", *one[image_set]["mappings"]}
