"""The out-of-sample validation of the scale suggestion (studies.suggest_validation)."""

import json

import numpy as np
import pytest

from ntkspec import data, design, mappings
from ntkspec.studies import _common
from ntkspec.studies import suggest_validation as sv

# --------------------------------------------------------------------------------------
# Leave-one-image-out choices never see the held image.
# --------------------------------------------------------------------------------------


def _budget_curves():
    """4 images whose NTK picks the best sigma at time index 1, and a giveaway one.

    Sigmas 0..2, times index 0..3. Network PSNR: best at sigma 0 (10 dB), 9 and 9 dB
    elsewhere, so a wrong pick loses 1 dB. The giveaway image "held" is picked
    right only at index 3 and loses 100 dB elsewhere: with it, index 3 wins.
    """
    times = np.array([1.0, 10.0, 100.0, np.inf])
    curves = {}
    for k in range(4):
        ntk = np.zeros((3, 4))
        ntk[1, :] = 1.0
        ntk[0, 1] = 2.0  # right at index 1 only
        curves[f"img{k}"] = (ntk, np.array([10.0, 9.0, 9.0]))
    ntk = np.zeros((3, 4))
    ntk[1, :] = 1.0
    ntk[0, 3] = 2.0
    curves["held"] = (ntk, np.array([110.0, 10.0, 10.0]))
    return curves, times


def test_loo_budget_never_sees_the_held_image():
    curves, times = _budget_curves()
    # in sample, the giveaway decides: t = inf (index 3)
    assert sv.choose_budget(curves, times)["index"] == 3
    seen = {}

    def spy(cs, ts):
        seen.setdefault(len(seen), set(cs))
        return sv.choose_budget(cs, ts)

    out = sv.loo_budgets(curves, times, select=spy)
    assert out["held"]["index"] == 1 and out["held"]["time"] == 10.0
    # mean losses on the 4 others: 1 at every index but index 1
    np.testing.assert_array_equal(out["held"]["mean_loss"], [1.0, 0.0, 1.0, 1.0])
    order = list(curves)
    for k, names in seen.items():
        assert order[k] not in names and len(names) == len(curves) - 1


def test_loo_fixed_sigma_never_sees_the_held_image():
    curves = {f"img{k}": {5.0: 20.0, 10.0: 22.0, 20.0: 21.0} for k in range(3)}
    curves["held"] = {5.0: 90.0, 10.0: 20.0, 20.0: 20.0}  # giveaway: sigma 5
    assert sv.choose_fixed_sigma(curves) == 5.0  # in sample it would win
    seen = []

    def spy(cs):
        seen.append(set(cs))
        return sv.choose_fixed_sigma(cs)

    out = sv.loo_fixed_sigma(curves, select=spy)
    assert out["held"] == 10.0
    for held, names in zip(curves, seen, strict=True):
        assert held not in names
    with pytest.raises(ValueError, match="same sigmas"):
        sv.choose_fixed_sigma({"a": {1.0: 1.0}, "b": {2.0: 1.0}})


# --------------------------------------------------------------------------------------
# The sigma convention: the suggestion on a crop sees the networks' kernel.
# --------------------------------------------------------------------------------------


def test_suggestion_in_crop_coordinates_is_the_table1_ntk_at_pitch_1_over_512():
    """sigma * crop/512 on coordinates k/crop is the kernel of sigma at pitch 1/512."""
    crop, sigma, t = 16, 10.0, 1e3
    img = _common.table1_images("natural", crop, 1)["astronaut"]
    x, y = _common.crop_grid(crop), img.reshape(-1, 3)
    tr, held = data.train_indices((crop, crop)), data.heldout_indices((crop, crop))
    cfg = dict(times_per_decade=1, budget=t)
    ref = _common.table1_ntk_run(
        mappings.gaussian(0, 2, 256, sigma), x, y, tr, held, cfg
    )
    sug = design.suggest_scale(
        _common.ARCH, img, scales=[sigma * crop / 512, 1.0], times=t, rtol=1e-10
    )
    got = sug.predicted_psnr[list(sug.scales).index(sigma * crop / 512)]
    # dense eigh (reference) vs the Krylov path at rtol 1e-10: PSNR to 1e-6 dB
    np.testing.assert_allclose(got, ref["psnr_budget"], rtol=0, atol=1e-6)


def test_structured_ntk_path_matches_the_dense_table1_run():
    """The 512^2 entry's Grid (Krylov) NTK path against Table 1's dense one, crop 16."""
    crop = 16
    img = _common.table1_images("text", crop, 1)["text_0"]
    x, y = _common.crop_grid(crop), img.reshape(-1, 3)
    tr, held = data.train_indices((crop, crop)), data.heldout_indices((crop, crop))
    cfg = dict(times_per_decade=1, budget=1e4)
    m = mappings.gaussian(0, 2, 256, 14.0)
    ref = _common.table1_ntk_run(m, x, y, tr, held, cfg)
    got = sv._ntk_grid_run(m, img, cfg)
    # finite times: Lanczos to rtol 1e-6 of the output, far below 1e-4 dB here;
    # t = inf: PCG to rtol 1e-6 (measured 5e-6 dB)
    np.testing.assert_allclose(got["psnr_curve"], ref["psnr_curve"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got["psnr_inf"], ref["psnr_inf"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(
        got["psnr_budget"], ref["psnr_budget"], rtol=0, atol=1e-4
    )


# --------------------------------------------------------------------------------------
# End to end at a tiny size: resumable, reuse by key, scores recomputed by hand.
# --------------------------------------------------------------------------------------


def _tiny(monkeypatch):
    cfg = dict(
        sv.SIZES["quick"], crop=8, steps=2, width=8, fresh_sizes=(2, 8),
        fresh_inits=1, sigmas={"natural": (5.0, 10.0), "text": (14.0, 28.0)},
    )  # fmt: skip
    monkeypatch.setitem(sv.SIZES, "quick", cfg)
    return cfg


def test_quick_run_resumes_reuses_by_key_and_scores_as_stated(tmp_path, monkeypatch):
    cfg = _tiny(monkeypatch)
    n_tasks = len(sv.tasks(cfg))
    # a Table 1 folder holding the Table 1 sigma's Adam and NTK runs (made here by
    # the study itself on a grid of that sigma only): read by key, not run again
    t1 = tmp_path / "t1"
    only = {s: (_common.SCALES[s]["sigma"],) for s in ("natural", "text")}
    monkeypatch.setitem(sv.SIZES, "quick", dict(cfg, sigmas=only))
    sv.run(t1, size="quick", reuse_dir=None, kinds=("adam", "ntk"), log=lambda s: None)
    monkeypatch.setitem(sv.SIZES, "quick", cfg)
    (t1 / "config.json").write_text(json.dumps({k: cfg[k] for k in (
        "crop", "steps", "width", "budget", "times_per_decade")}))  # fmt: skip
    # the held image's choices must never see it: spy on both selections
    calls = []
    real_budget, real_fixed = sv.choose_budget, sv.choose_fixed_sigma
    monkeypatch.setattr(
        sv, "choose_budget", lambda c, t: calls.append(set(c)) or real_budget(c, t)
    )
    monkeypatch.setattr(
        sv, "choose_fixed_sigma", lambda c: calls.append(set(c)) or real_fixed(c)
    )
    out = sv.run(tmp_path / "b", size="quick", reuse_dir=t1, log=lambda s: None)
    reused = len(list((t1 / "runs").iterdir()))
    assert reused == 8  # 4 images x (adam + ntk) at the Table 1 sigma
    assert len(list((tmp_path / "b/runs").iterdir())) == n_tasks - reused
    assert len(out["reused"]) == reused
    # resumable: nothing left to run
    calls.clear()
    again = sv.run(tmp_path / "b", size="quick", reuse_dir=t1, log=lambda s: None)
    assert len(list((tmp_path / "b/runs").iterdir())) == n_tasks - reused
    assert again["scores"] == out["scores"]
    names = list(out["choices"])
    assert len(names) == 4 and not out["images_left_out"]
    # every LOO call saw all images but one (the budget: all sets; fixed: its set):
    # 4 budget calls of 3 images, each missing another; 4 fixed calls of 1; and the
    # one in-sample budget (reported as such) on all 4
    sizes = sorted(len(c) for c in calls)
    assert sizes == [1, 1, 1, 1, 3, 3, 3, 3, 4]
    assert {frozenset(set(names) - c) for c in calls if len(c) == 3} == {
        frozenset([n]) for n in names
    }
    # losses recomputed from the run files: best network sigma minus the chosen one
    nets, const = {}, {}
    for n in names:
        s = "natural" if n in ("astronaut", "coffee") else "text"
        nets[n] = {}
        for g in cfg["sigmas"][s]:
            tag = "gaussian" if g == _common.SCALES[s]["sigma"] else f"gaussian_s{g:g}"
            key = f"adam__{s}__{n}__{tag}__s0.json"
            src = tmp_path / "b/runs" / key
            rec = json.loads((src if src.exists() else t1 / "runs" / key).read_text())
            nets[n][g] = rec["psnr_heldout"]
            const[n] = max(rec["constant_psnr"].values())
    for n in names:
        s = "natural" if n in ("astronaut", "coffee") else "text"
        net = nets[n]
        methods = out["choices"][n]
        assert {"fixed_loo", "ntk_inf", "ntk_budget", "ntk_loo_budget", "suggestion",
                "fresh_2", "fresh_8"} <= set(methods)  # fmt: skip
        for m, g in methods.items():
            assert g in cfg["sigmas"][s]
            np.testing.assert_allclose(
                out["scores"]["per_image"][n][m], max(net.values()) - net[g],
                rtol=0, atol=1e-12,
            )  # fmt: skip
        # the fixed sigma is the other image of the set's best
        other = [k for k in names if k != n and (k in ("astronaut", "coffee")) ==
                 (s == "natural")]  # fmt: skip
        assert len(other) == 1
        assert methods["fixed_loo"] == max(nets[other[0]], key=nets[other[0]].get)
    # informative: best network at least 3 dB above the best constant predictor
    assert out["scores"]["subsets"]["informative"] == [
        n for n in names if max(nets[n].values()) - const[n] >= 3.0
    ]
    summ = out["scores"]["summary"]["all"]
    assert summ["fixed_loo"]["n"] == 4 and "minus_fixed_loo" in summ["suggestion"]
    assert all(e["n"] == 4 for e in summ.values())  # every method, the same images
    md = (tmp_path / "b/suggest_validation.md").read_text()
    assert "Budget chosen out of sample" in md
    assert (tmp_path / "b/suggest_validation.png").stat().st_size > 0
    _check_verdict_and_partial(out, tmp_path / "b", t1, n_tasks)


def _check_verdict_and_partial(out, folder, t1, n_tasks):
    """The verdict block's wording follows the gap; a partial folder says so."""
    assert out["runs"] == dict(
        expected=n_tasks, on_disk=n_tasks, missing=0,
        expected_by_kind=out["runs"]["expected_by_kind"], missing_by_kind={},
        complete=True,
    )  # fmt: skip
    text = (folder / "suggest_validation_verdict.md").read_text()
    assert text == out["verdict_markdown"] and "PARTIAL" not in text
    assert "CPU-reduced: 8² crops, 2 natural + 2 text images, 1 seed" in text
    g = out["scores"]["summary"]["all"]["suggestion"]["minus_fixed_loo"]
    assert f"gap {g['mean']:+.2f} dB" in text
    # the headline claims a margin only for a resolved gap, with its sign
    cases = [
        (dict(mean=-1.0, t_interval=[-1.5, -0.5], bca_interval=[-1.4, -0.6],
              resolved=True), "beats the fixed σ by 1.00 dB"),
        (dict(mean=0.7, t_interval=[0.2, 1.2], bca_interval=[0.3, 1.1],
              resolved=True), "loses 0.70 dB to the fixed σ"),
        (dict(mean=-1.0, t_interval=[-2.5, 0.5], bca_interval=[-1.9, -0.1],
              resolved=False), "does not beat the fixed σ by a margin"),
    ]  # fmt: skip
    for gap, words in cases:
        data = json.loads(json.dumps(out))
        data["scores"]["summary"]["all"]["suggestion"]["minus_fixed_loo"] = dict(
            g, **gap
        )
        assert words in sv.verdict_markdown(data)
    # remove one FreSh run and one network run: counted, both images left out, and
    # every method still scored on the same (remaining) images
    runs = folder / "runs"
    next(runs.glob("fresh__text__*.json")).unlink()
    next(runs.glob("adam__natural__*__gaussian_s*__s0.json")).unlink()
    part = sv.summarize(folder, size="quick", reuse_dir=t1)
    assert part["runs"]["missing"] == 2 and not part["runs"]["complete"]
    assert part["runs"]["missing_by_kind"] == {"adam": 1, "fresh": 1}
    assert len(part["images_left_out"]) == 2
    reasons = " ".join(r["reason"] for r in part["images_left_out"])
    assert "fresh" in reasons and "adam" in reasons
    assert all(e["n"] == 2 for e in part["scores"]["summary"]["all"].values())
    text = (folder / "suggest_validation_verdict.md").read_text()
    assert text.splitlines()[2].startswith("> **PARTIAL, not a result:** 2 of ")
    assert "PARTIAL: 2 missing" in (folder / "suggest_validation.md").read_text()


def test_bad_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        sv.run(tmp_path, size="huge")


def test_networks_entry_matches_the_per_run_networks_and_resumes(tmp_path, monkeypatch):
    """The GPU entry (one ensemble call per image and seed) at a tiny size."""
    cfg = _tiny(monkeypatch)
    written = sv.run_networks(tmp_path / "e", size="quick", log=lambda s: None)
    assert len(written) == 8  # 4 images x 2 sigmas x 1 seed
    assert sv.run_networks(tmp_path / "e", size="quick", log=lambda s: None) == []
    sv.run(
        tmp_path / "s", size="quick", reuse_dir=None, kinds=("adam",),
        log=lambda s: None,
    )  # fmt: skip
    for p in written:
        ens = json.loads(p.read_text())
        one = json.loads((tmp_path / "s/runs" / p.name).read_text())
        assert ens["sigma"] == one["sigma"] and ens["steps"] == cfg["steps"]
        # same Adam steps in float32, summed in another order: PSNR to 1e-3 dB
        np.testing.assert_allclose(
            ens["psnr_heldout"], one["psnr_heldout"], rtol=0, atol=1e-3
        )
