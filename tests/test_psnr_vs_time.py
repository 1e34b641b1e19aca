"""PSNR against training time: the curves against a dense reference, and a run."""

import json
import math

import numpy as np
import pytest

from ntkspec import kernels
from ntkspec.studies import psnr_vs_time, table1_budget


def _image(crop, seed=0):
    rng = np.random.default_rng(seed)
    smooth = rng.random((crop // 4, crop // 4, 3))
    return np.kron(smooth, np.ones((4, 4, 1))) + 0.05 * rng.random((crop, crop, 3))


def _dense_heldout_psnr(mapping, image, times):
    """Gradient flow at eta = 1 from f_0 = 0, written here: numpy eigh of the Gram.

    The kernel is evaluated on the pixels' own coordinates (offset + k)/512 with the
    unscaled mapping, train = [::2, ::2], held out = [1::2, 1::2].
    """
    crop = image.shape[0]
    off = (512 - crop) // 2
    g = (off + np.arange(crop)) / 512
    pix = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    x_tr = pix[::2, ::2].reshape(-1, 2)
    x_held = pix[1::2, 1::2].reshape(-1, 2)
    y_tr = image[::2, ::2].reshape(-1, 3)
    y_held = image[1::2, 1::2].reshape(-1, 3)
    arch = table1_budget.ARCH
    K = np.asarray(kernels.ntk(arch, mapping(x_tr)), np.float64)
    Kx = np.asarray(kernels.ntk(arch, mapping(x_held), mapping(x_tr)), np.float64)
    lam, Q = np.linalg.eigh(K)
    n_y = y_tr.size
    out = []
    for t in times:
        if math.isinf(t):
            phi = 1.0 / lam
        else:
            phi = -np.expm1(-lam * t / n_y) / lam
        f = Kx @ (Q @ (phi[:, None] * (Q.T @ y_tr)))
        out.append(-10.0 * math.log10(np.mean((f - y_held) ** 2)))
    return np.asarray(out), float(lam[-1]) / n_y, float(lam[-1] / lam[0])


@pytest.mark.parametrize("name", ["gaussian", "positional", "none"])
def test_curve_matches_a_dense_eigendecomposition(name):
    crop = 16
    mapping = table1_budget.set_mappings("natural", 2)[name]
    image = _image(crop, 3)
    times = np.array([0.0, 1.0, 30.0, 1e3, 1e4, np.inf])
    got = psnr_vs_time.mapping_curve(mapping, image, times)
    want, lam_over_ny, cond = _dense_heldout_psnr(mapping, image, times)
    assert got["method"] == ("dense" if name == "none" else "krylov")
    assert got["converged"] and not got["warnings"]
    assert len(got["psnr_heldout"]) == times.size
    # finite times: relative error 1e-10 in f moves the PSNR by ~1e-9 dB
    np.testing.assert_allclose(got["psnr_heldout"][:-1], want[:-1], rtol=0, atol=1e-8)
    # t = inf: PCG to a 1e-10 relative residual against an eigh solve; these Grams
    # have condition numbers below 1e5 (asserted), and the PSNRs agree to ~1e-10 dB
    # (the dense row is an eigh solve on both sides)
    assert name == "none" or cond < 1e5
    np.testing.assert_allclose(got["psnr_heldout"][-1], want[-1], rtol=0, atol=1e-8)
    if name == "none":
        assert got["lambda_max_over_n_y"] is None
    else:
        np.testing.assert_allclose(
            got["lambda_max_over_n_y"], lam_over_ny, rtol=1e-8, atol=0
        )


def test_run_writes_json_table_and_figure(tmp_path, monkeypatch):
    """A tiny run: one gd_dynamics call per curve with every time, 'best' = argmax."""
    cfg = dict(crop=16, none_crop=8, log10_t_max=2, per_decade=1)
    monkeypatch.setitem(psnr_vs_time.SIZES, "tiny", cfg)
    calls = []
    real = psnr_vs_time.gd_dynamics

    def counting(*args, **kwargs):
        calls.append(np.asarray(args[5]))
        return real(*args, **kwargs)

    monkeypatch.setattr(psnr_vs_time, "gd_dynamics", counting)
    out = psnr_vs_time.run(tmp_path, size="tiny", command="pytest tiny")
    times = [1.0, 10.0, 100.0, np.inf]
    assert len(calls) == 2 * 4  # two images x four mappings
    for t in calls:
        np.testing.assert_array_equal(t, times)
    blob = json.loads((tmp_path / "psnr_vs_time.json").read_text())
    assert out["json"].endswith("psnr_vs_time.json")
    assert (tmp_path / "psnr_vs_time.png").stat().st_size > 0
    assert blob["provenance"]["command"] == "pytest tiny"
    assert blob["size"] == "tiny" and blob["times"] == [1.0, 10.0, 100.0, "inf"]
    assert any("8²" in r for r in blob["reduced"])  # the none row's crop is flagged
    main = blob["tables"][0]
    names = ["none", "basic", "positional", "gaussian"]
    assert main["columns"][2:6] == names
    assert len(main["rows"]) == 2 * len(times)
    for image_set in ("natural", "text"):
        curves = blob["sets"][image_set]["curves"]
        assert curves["none"]["crop"] == 8 and curves["gaussian"]["crop"] == 16
        rows = [r for r in main["rows"] if r[0] == image_set]
        assert [r[1] for r in rows] == ["1e0", "1e1", "1e2", "∞"]
        for i, row in enumerate(rows):
            for m, cell in zip(names, row[2:6], strict=True):
                assert cell == curves[m]["psnr_heldout"][i]
            # 'none' ran on another crop: best among the three Fourier mappings
            fourier = {m: curves[m]["psnr_heldout"][i] for m in names[1:]}
            ranked = sorted(fourier.values())
            assert row[6] == max(fourier, key=fourier.get)
            np.testing.assert_allclose(row[7], ranked[-1] - ranked[-2], atol=1e-12)
    paths = {(r[0], r[1]): r[3] for r in blob["tables"][1]["rows"]}
    assert paths[("text", "none")] == "dense"
    assert paths[("text", "gaussian")] == "krylov"


def test_bad_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        psnr_vs_time.run(tmp_path, size="huge")
    assert not list(tmp_path.iterdir())
