import math

import numpy as np
import pytest
from scipy import stats

from ntkspec import verdicts

# intervals are Monte Carlo estimates: the hand-written BCa and scipy's draw different
# resamples, so they agree to the bootstrap's own quantile noise (about 0.05 s_d here)
BOOT_ATOL = 0.08


def test_constant_predictor_is_flagged():
    rng = np.random.default_rng(0)
    y_tr, y = rng.uniform(size=(20, 3)), rng.uniform(size=(30, 3))
    const = verdicts.constant_psnrs(y_tr, y)
    pred = np.full_like(y, 0.3)
    psnr = -10 * math.log10(np.mean((pred - y) ** 2))
    collapsed, cause = verdicts.collapse_verdict(
        psnr, constant_psnr=const, theory_psnr=30.0, prediction=pred
    )
    assert collapsed and "constant output" in cause
    # the all-zero output, recorded only by its PSNR
    collapsed, cause = verdicts.collapse_verdict(const["zero"], constant_psnr=const)
    assert collapsed and "all-zero" in cause
    nan = np.full_like(y, np.nan)
    assert verdicts.collapse_verdict(1.0, constant_psnr=const, prediction=nan)[0]


def test_low_psnr_that_the_theory_predicts_is_not_collapsed():
    # issue 24: text "none" GD run, 12.04 dB, constant 12.05, theory 12.29
    const = {"zero": 0.92, "mean": 12.05}
    assert verdicts.collapse_verdict(12.04, constant_psnr=const, theory_psnr=12.29) == (
        False,
        None,
    )
    # the same PSNR where the theory predicts >= 1 dB more is a collapse
    collapsed, cause = verdicts.collapse_verdict(
        12.04, constant_psnr=const, theory_psnr=13.05
    )
    assert collapsed and "train-mean" in cause
    # 0.1 dB away from the constant is not "at" it
    assert not verdicts.collapse_verdict(12.16, constant_psnr=const, theory_psnr=20.0)[
        0
    ]


def test_mark_runs_and_cell_average_seeds_within_images_first():
    const = {"zero": 5.0, "mean": 10.0}
    runs = [
        dict(image="a", seed=0, psnr_heldout=20.0),
        dict(image="a", seed=1, psnr_heldout=22.0),
        dict(image="b", seed=0, psnr_heldout=30.0),
        dict(image="c", seed=0, psnr_heldout=5.0),  # all-zero output
    ]
    marked = verdicts.mark_runs(runs, constant_psnr=const, theory_psnr=25.0)
    assert [r["collapsed"] for r in marked] == [False, False, False, True]
    c = verdicts.cell(marked)
    s = c["summary"]
    assert s["n"] == 2 and s["collapsed"] == 1 and s["runs"] == 4
    assert s["mean"] == pytest.approx((21.0 + 30.0) / 2, rel=0, abs=1e-12)
    assert len(c["runs"]) == 4 and c["runs"][3]["cause"]


def test_t_interval_by_hand():
    d = np.array([0.3, -0.1, 0.5, 0.9, 0.2, 0.4])
    s = verdicts.mean_interval(d)
    half = stats.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    np.testing.assert_allclose(
        s["t_interval"], [d.mean() - half, d.mean() + half], rtol=0, atol=1e-12
    )


def _bca_by_hand(x, level=0.95, n_boot=40000, seed=1):
    """Efron's BCa for the mean, written out: bias z0 and jackknife acceleration."""
    rng = np.random.default_rng(seed)
    n = x.size
    boot = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    theta = x.mean()
    z0 = stats.norm.ppf(np.mean(boot < theta))
    jack = np.array([np.delete(x, i).mean() for i in range(n)])
    dev = jack.mean() - jack
    a = np.sum(dev**3) / (6 * np.sum(dev**2) ** 1.5)
    out = []
    for alpha in ((1 - level) / 2, (1 + level) / 2):
        z = stats.norm.ppf(alpha)
        out.append(
            np.quantile(boot, stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
        )
    return out


def test_bca_interval_against_a_hand_written_bca():
    x = np.array([0.1, 2.3, -0.4, 1.7, 0.9, 3.8, 0.2, 1.1])
    s = verdicts.mean_interval(x, n_resamples=40000)
    np.testing.assert_allclose(
        s["bca_interval"], _bca_by_hand(x), rtol=0, atol=BOOT_ATOL * x.std(ddof=1)
    )


def test_paired_gap_resolved_only_when_the_interval_excludes_zero():
    a = [
        dict(image=k, seed=0, psnr_heldout=v)
        for k, v in zip("abcdef", range(6), strict=True)
    ]
    b = [
        dict(image=k, seed=0, psnr_heldout=v - 1.0 + 0.1 * (i % 2))
        for i, (k, v) in enumerate(zip("abcdef", range(6), strict=True))
    ]
    g = verdicts.paired_gap(a, b)
    assert g["n"] == 6 and g["resolved"] is True
    assert g["mean"] == pytest.approx(0.95, rel=0, abs=1e-12)
    noisy = [
        dict(image=k, seed=0, psnr_heldout=v + s)
        for k, v, s in zip("abcdef", range(6), (1, -1, 2, -2, 1, -1), strict=True)
    ]
    g = verdicts.paired_gap(noisy, a)
    assert g["resolved"] is False and g["mean"] == pytest.approx(0.0, abs=1e-12)
    # an image missing on one side is left out and listed
    g = verdicts.paired_gap(a, b[:4])
    assert g["n"] == 4 and g["images_left_out"] == ["e", "f"]


def test_bad_input():
    with pytest.raises(ValueError, match="constant_psnr"):
        verdicts.collapse_verdict(10.0, constant_psnr={})
    with pytest.raises(ValueError, match="confidence"):
        verdicts.mean_interval([1.0, 2.0], confidence=1.5)


def test_committed_gpu_table_is_corrected():
    """issue 24: the two all-zero hubble runs are out; none / basic 20.25 / 21.54."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = json.loads(
        (root / "figures/validation/gpu_h100/table1_networks.json").read_text()
    )
    cells = data["verdicts"]["table"]["natural"]
    for m, mean in (("none", 20.25), ("basic", 21.54)):
        s = cells[m]["adam"]["summary"]
        assert s["n"] == 2 and round(s["mean"], 2) == mean
        hubble = [r for r in cells[m]["adam"]["runs"] if r["collapsed"]]
        assert [r["image"] for r in hubble] == ["hubble_deep_field"]
    budget = json.loads(
        (root / "figures/regression/table1_budget_cpu/table1_budget.json").read_text()
    )
    gd = budget["verdicts"]["table"]["text"]["none"]["gd"]
    assert not any(r["collapsed"] for r in gd["runs"])  # 12.04 / 12.02 dB kept
    assert gd["summary"]["n"] == 3
    ct = json.loads((root / "figures/ct/ct_table.json").read_text())
    net = ct["verdicts"]["table"]["phantoms"]["none"]["networks"]
    assert net["summary"]["n"] == 0 and all(r["collapsed"] for r in net["runs"])


def test_output_collapse_hand_cases():
    from ntkspec.verdicts import output_collapse

    assert output_collapse(np.array([0.1, 0.2, np.nan])).startswith("non-finite")
    assert output_collapse(np.full((4, 3), 0.5)).startswith("constant output (0.5, ")
    # a spread of 1e-7 on values of size 1 is within the 1e-6 relative tolerance
    assert output_collapse(np.array([1.0, 1.0 + 1e-7])) is not None
    assert output_collapse(np.array([1.0, 1.0 + 1e-5])) is None
    # one varying channel is enough not to be constant
    assert output_collapse(np.array([[0.0, 1.0], [0.0, 2.0]])) is None
