"""The MRI column of Table 1 (issue 15): masks, the study's quick run, helpers."""

import json

import numpy as np

from ntkspec import measurements, phantoms
from ntkspec.data import psnr
from ntkspec.operators import DenseOperator
from ntkspec.studies import mri_table


def test_mask_keeps_the_notebooks_fraction():
    for res in (16, 24):
        frac = mri_table.mri_mask(res).keep_fraction
        assert mri_table.KEEP_FRACTION <= frac < mri_table.KEEP_FRACTION + 0.005
    assert abs(mri_table.mri_mask(64).keep_fraction - 0.1265) < 0.001


def test_power_lambda_max_matches_eigvalsh():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    lam = np.linspace(0.1, 1.0, 30)
    lam[-1] = 5.0
    mat = (q * lam) @ q.T
    got = mri_table.power_lambda_max(DenseOperator(mat), 30)
    np.testing.assert_allclose(got, 1.01 * 5.0, rtol=1e-10)


def test_quick_run_writes_table_and_figure(tmp_path):
    mri_table.run(tmp_path, quick=True, command="pytest")
    data = json.loads((tmp_path / "mri_table.json").read_text())
    assert (tmp_path / "mri_table.png").stat().st_size > 0
    rows = {r[0]: r for r in data["tables"][0]["rows"]}
    assert set(mri_table.PAPER_MRI) <= set(rows)
    for name in mri_table.QUICK_MAPPINGS:
        diag = data["results"][name]["diagnostics"][0]
        assert diag["preconditioner"] == "kspace" and diag["cg_converged"]
        assert np.isfinite(rows[name][2]) and np.isfinite(rows[name][3])
    # The zero-filled reference row, recomputed with NumPy's FFT and the mask.
    res = mri_table.SIZES[True]["res"]
    img = phantoms.mri_phantoms(res, num_search=0, num_test=1).test[0]
    mask = mri_table.mri_mask(res)
    keep = np.zeros(img.size, bool)
    keep[np.asarray(mask.indices)] = True
    coef = np.fft.fftn(img, norm="ortho").reshape(-1) * keep
    rec = np.fft.ifftn(coef.reshape(img.shape), norm="ortho").real
    ref = psnr(np.clip(rec, 0, 1).reshape(-1), img.reshape(-1))
    # The JSON keeps about 9 significant digits.
    np.testing.assert_allclose(data["zero_filled_psnr"]["mean"], ref, rtol=1e-8)
    assert isinstance(mask, measurements.KSpaceMask)
