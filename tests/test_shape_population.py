"""analysis/fig_shape_population.py and analysis/shape_networks_fresh.py, --quick."""

import json

import numpy as np
import pytest

from analysis import fig_shape_population, shape_networks_fresh


def test_networks_then_population_quick(tmp_path, capsys):
    nets = tmp_path / "nets"
    assert shape_networks_fresh.main(["--quick", "--out", str(nets)]) == 0
    runs = sorted(p.name for p in (nets / "runs").glob("*.json"))
    assert runs == ["adam_gaussian_bumpy_sphere.json", "sgd_gaussian_bumpy_sphere.json"]
    sgd = json.loads((nets / "runs" / runs[1]).read_text())
    # the SGD control's clock: t = steps x lr (3 quick steps)
    assert sgd["flow_time"] == pytest.approx(3 * sgd["learning_rate"], rel=1e-15)
    # a second call resumes: the finished runs are read back, not retrained
    stamp = (nets / "runs" / runs[0]).stat().st_mtime_ns
    assert shape_networks_fresh.main(["--quick", "--out", str(nets)]) == 0
    assert (nets / "runs" / runs[0]).stat().st_mtime_ns == stamp
    summary = json.loads((nets / "shape_networks_fresh.json").read_text())
    assert summary["label"] == "reduced; CPU" and len(summary["runs"]) == 2

    out = tmp_path / "pop"
    argv = ["--quick", "--mappings", "none,gaussian", "--networks", str(nets)]
    assert fig_shape_population.main([*argv, "--out", str(out)]) == 0
    data = json.loads((out / "shape_population.json").read_text())
    assert (out / "shape_population.png").stat().st_size > 0
    assert (out / "shape_population_slices.png").stat().st_size > 0
    assert data["label"] == "reduced; CPU" and data["reduced"]
    assert "fig_shape_population --quick" in data["provenance"]["command"]
    assert set(data["load"]) == {"start", "end"}
    none, gauss = data["results"]["none"], data["results"]["gaussian"]
    assert none["paths"][0]["method"] == "dense"
    assert {p["method"] for p in gauss["paths"]} == {"krylov"}
    assert budget_in(gauss)
    # the SGD run sits at its recorded flow time; the Adam run has a match status
    placed = {m["kind"]: m for m in gauss["networks"]}
    assert placed["sgd"]["time"] == sgd["flow_time"]
    assert placed["adam"]["status"] in (
        "matched",
        "above the first computed time",
        "beyond the last computed time",
    )
    assert [r[0] for r in data["table"]["rows"]] == ["none", "gaussian"]
    for m in gauss["networks"]:
        inside = m["time"] is not None and (
            gauss["times"][0] <= m["time"] <= gauss["times"][-1]
        )
        assert (m["flow_iou_uniform"] is not None) == inside
    # each mapping is checkpointed; a second call reads the parts back
    stamp = (out / "parts" / "gaussian.json").stat().st_mtime_ns
    capsys.readouterr()
    assert fig_shape_population.main([*argv, "--out", str(out)]) == 0
    assert "gaussian: read back" in capsys.readouterr().out
    assert (out / "parts" / "gaussian.json").stat().st_mtime_ns == stamp
    again = json.loads((out / "shape_population.json").read_text())
    assert again["results"]["gaussian"] == gauss
    # --summarize-only rebuilds the Markdown tables from the JSON alone
    md = out / "shape_population.md"
    first = md.read_text()
    md.unlink()
    argv = ["--summarize-only", "--out", str(out), "--networks", str(nets)]
    assert fig_shape_population.main(argv) == 0
    assert md.read_text() == first
    assert "| gaussian | adam | 1 |" in first and "| gaussian | sgd | 1 |" in first
    # a resumed folder refuses another budget (one line, exit 2)
    tiny = "--steps 3 --batch 256 --width 17 --shapes 1 --mappings gaussian"
    tiny = [*tiny.split(), "--eval-points", "2048", "--mc", "24"]
    assert shape_networks_fresh.main(["--out", str(nets), *tiny]) == 2
    assert "trained at" in capsys.readouterr().err
    # --seeds 2 adds seed 1 beside the seed-0 runs, from other keys
    argv = ["--quick", "--out", str(nets), "--kinds", "adam"]
    stamp = (nets / "runs" / runs[0]).stat().st_mtime_ns
    assert shape_networks_fresh.main([*argv, "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert shape_networks_fresh.main([*argv, "--seeds", "2"]) == 0
    assert (nets / "runs" / runs[0]).stat().st_mtime_ns == stamp
    seed0 = json.loads((nets / "runs" / runs[0]).read_text())
    seed1 = json.loads(
        (nets / "runs" / "adam_gaussian_bumpy_sphere_seed1.json").read_text()
    )
    assert (seed0["seed"], seed1["seed"]) == (0, 1)
    assert seed1["residual_mse"] != seed0["residual_mse"]
    # the summary lists every run in the folder, the SGD run of the first call too
    summary = json.loads((nets / "shape_networks_fresh.json").read_text())
    assert sorted((r["kind"], r.get("seed", 0)) for r in summary["runs"]) == [
        ("adam", 0), ("adam", 1), ("sgd", 0)
    ]  # fmt: skip


def budget_in(result):
    return (
        result["budget_time"] in result["times"]
        and 0
        <= min(result["at_budget"].values())
        <= max(result["at_budget"].values())
        <= 1
    )


def test_population_bad_mapping_exits_2(tmp_path, capsys):
    out = tmp_path / "x"
    assert (
        fig_shape_population.main(["--quick", "--mappings", "nope", "--out", str(out)])
        == 2
    )
    assert "--mappings" in capsys.readouterr().err
    assert not out.exists()


def test_summarize_only_without_json_exits_2(tmp_path, capsys):
    argv = ["--summarize-only", "--out", str(tmp_path)]
    assert fig_shape_population.main(argv) == 2
    assert "--summarize-only" in capsys.readouterr().err


def test_place_networks_hand_case():
    result = {
        "times": [1.0, 10.0, 100.0],
        "per_shape": [
            {
                "shape": "s",
                "residual_mse_centred": [1.0, 0.1, 0.01],
                "iou_uniform_centred": [0.0, 0.5, 0.9],
                "iou_near_surface_centred": [0.0, 0.2, 0.4],
            }
        ],
    }
    runs = [
        {"kind": "adam", "mapping": "basic", "shape": "s", "residual_mse": 10**-1.5,
         "iou_uniform": 0.8, "iou_near_surface": 0.3},
        {"kind": "sgd", "mapping": "basic", "shape": "s", "flow_time": 1e3,
         "iou_uniform": 0.1, "iou_near_surface": 0.1},
        {"kind": "adam", "mapping": "gaussian", "shape": "s", "residual_mse": 0.5,
         "iou_uniform": 0.8, "iou_near_surface": 0.3},
    ]  # fmt: skip
    adam, sgd = fig_shape_population.place_networks(result, "basic", runs)
    # residual 10^-1.5 is met at t = 10^1.5, halfway in log t: IoU (0.5 + 0.9) / 2
    assert adam["time"] == pytest.approx(10**1.5, rel=1e-12)
    assert adam["flow_iou_uniform"] == pytest.approx(0.7, rel=1e-12)
    assert adam["flow_iou_near_surface"] == pytest.approx(0.3, rel=1e-12)
    # the SGD run at its own steps x lr, beyond the computed times: no flow IoU
    assert sgd["time"] == 1e3 and sgd["flow_iou_uniform"] is None


def test_largest_dense_side_hand_case():
    # 16^3 = 4096 points: the Gram takes 8 * 4096^2 bytes
    assert fig_shape_population.largest_dense_side(8 * 4096**2) == 16
    assert fig_shape_population.largest_dense_side(8 * 4096**2 - 1) == 15


def test_match_time_log_log_hand_case():
    times, curve = [1.0, 10.0, 100.0], [1.0, 0.1, 0.01]
    m = fig_shape_population._match_time(times, curve, 10**-1.5)
    assert m["status"] == "matched"
    assert m["time"] == pytest.approx(10**1.5, rel=1e-12)
    assert fig_shape_population._match_time(times, curve, 2.0)["time"] is None
    assert fig_shape_population._match_time(times, curve, 1e-3)["time"] is None


def test_results_page_carries_the_committed_table(tmp_path):
    # the page's table is --summarize-only's, rebuilt here from the committed JSON
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    src = root / "figures/shapes/population_cpu64"
    (tmp_path / "shape_population.json").write_bytes(
        (src / "shape_population.json").read_bytes()
    )
    text = fig_shape_population.summarize(
        tmp_path, root / "figures/shapes/shape_table.json"
    )
    page = (root / "docs/results/shapes_population.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")][:5]
    assert len(rows) == 5 and rows[1].startswith("| none |")
    for row in rows:
        assert row in page, row


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_train_fresh_chunks_equal_one_step_per_call(kind):
    # the scanned chunks (5 steps as 2 + 2 + 1, and as one chunk of 5) against the
    # former loop: one jitted step per call, key split outside. Same keys, points and
    # updates, so the parameters agree to float32 rounding (1e-6: Adam moves each
    # parameter by about its learning rate, 5e-4, a step; a wrong key or step
    # count moves them by that much)
    import functools

    import jax
    import jax.numpy as jnp
    import optax

    import ntkspec
    from ntkspec import networks, shapes

    mapping = shape_networks_fresh.fresh_mappings(0)["gaussian"]
    arch = ntkspec.ReluMLP(3, width=8, **shape_networks_fresh.ARCH_KW)
    net = networks.mlp(arch, mapping, 8, initialization="stax")
    solid = shapes.shape_set(0)[0]
    if kind == "adam":
        opt = optax.adam(optax.exponential_decay(5e-4, 5000, 0.1))
    else:
        opt = optax.sgd(0.1)

    def loss(p, x):
        z = net.apply(p, x)[:, 0]
        return jnp.mean(
            optax.sigmoid_binary_cross_entropy(z, shapes.occupancy(solid, x))
        )

    batch, steps = 64, 5
    params0 = net.init(jax.random.PRNGKey(10))
    key0 = jax.random.PRNGKey(100)

    @functools.partial(jax.jit)
    def step(p, s, key):
        x = jax.random.uniform(key, (batch, 3), jnp.float32)
        upd, s = opt.update(jax.grad(loss)(p, x), s, p)
        return optax.apply_updates(p, upd), s

    ref, state, key = params0, opt.init(params0), key0
    for _ in range(steps):
        key, sub = jax.random.split(key)
        ref, state = step(ref, state, sub)
    moved = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params0), strict=True)
    )
    assert moved > 1e-4  # the steps did move the parameters
    for chunk in (2, 5):
        got, timing = shape_networks_fresh.train_fresh(
            loss, opt, params0, key0, batch=batch, steps=steps, chunk=chunk
        )
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
        # timing: per step from the compiled full chunks only (none for one chunk)
        assert (timing["seconds_per_step"] is None) == (chunk == steps)
    # the caller's parameters and key are not donated away
    assert np.isfinite(np.asarray(jax.tree.leaves(params0)[0])).all()
    assert np.asarray(key0).shape == (2,)


def test_networks_bad_chunk_exits_2(tmp_path, capsys):
    out = tmp_path / "nets"
    assert (
        shape_networks_fresh.main(["--quick", "--chunk", "0", "--out", str(out)]) == 2
    )
    assert "--chunk" in capsys.readouterr().err
    assert not out.exists()


def test_shape_gaps_hand_case():
    # two mappings on 3 shapes: the flow curves are linear in log t, so the budget's
    # IoU is the hand-interpolated value; the Adam gaps are the per-shape differences
    def rec(shape, lo, hi):
        return {"shape": shape, "iou_uniform_centred": [lo, hi],
                "iou_near_surface_centred": [lo / 2, hi / 2]}  # fmt: skip

    shapes = ("s1", "s2", "s3")
    results = {
        "basic": {"times": [1.0, 100.0], "budget_time": 10.0,
                  "per_shape": [rec(s, 0.2, 0.4) for s in shapes]},
        "positional": {"times": [1.0, 100.0], "budget_time": 10.0,
                       "per_shape": [rec(s, 0.0, 0.2 + 0.1 * i)
                                     for i, s in enumerate(shapes)]},
    }  # fmt: skip
    runs = [
        {"kind": "adam", "mapping": m, "shape": s, "iou_uniform": u,
         "iou_near_surface": u / 2}
        for m, us in (("basic", (0.5, 0.6, 0.7)), ("positional", (0.9, 0.9, 0.95)))
        for s, u in zip(shapes, us, strict=True)
    ] + [{"kind": "sgd", "mapping": "basic", "shape": "s1", "iou_uniform": 0.0,
          "iou_near_surface": 0.0}]  # fmt: skip
    gaps = fig_shape_population.shape_gaps(results, runs)
    by = {(g["source"], g["pair"], g["key"]): g for g in gaps}
    adam = by[("Adam networks", "positional - basic", "iou_uniform")]
    assert adam["differences"] == pytest.approx({"s1": 0.4, "s2": 0.3, "s3": 0.25})
    assert adam["mean"] == pytest.approx(0.95 / 3, rel=1e-12)
    assert adam["agrees"] and adam["resolved"]  # t: 0.317 +- 4.30 * 0.044 > 0
    # budget t = 10: halfway in log t, positional (0.1, 0.15, 0.2) - basic 0.3
    bud = by[("flow at budget", "positional - basic", "iou_uniform")]
    assert bud["mean"] == pytest.approx(-0.15, rel=1e-12)
    assert not bud["agrees"]
    last = by[("flow at t = 1e2", "positional - basic", "iou_near_surface")]
    assert last["differences"] == pytest.approx({"s1": -0.1, "s2": -0.05, "s3": 0.0})
    # the SGD run never enters; mappings without data give no pair
    assert {g["pair"] for g in gaps} == {"positional - basic"}


def test_follow_gaps_hand_case():
    # SGD runs at flow time 10 on a flow linear in log t between t = 1 and 100: the
    # flow there is the midpoint, so the gaps are hand-computed differences; a run
    # placed past the computed times is left out, and Adam runs never enter
    shapes = ("s1", "s2", "s3")
    results = {
        m: {"times": [1.0, 100.0], "budget_time": 10.0,
            "per_shape": [{"shape": s, "iou_uniform_centred": [0.2, 0.4],
                           "iou_near_surface_centred": [0.1, 0.3],
                           "residual_mse_centred": [0.2, 0.1]} for s in shapes]}
        for m in ("basic", "positional")
    }  # fmt: skip
    runs = [
        {"kind": "sgd", "mapping": "basic", "shape": s, "iou_uniform": u,
         "iou_near_surface": 0.2, "flow_time": 10.0}
        for s, u in zip(shapes, (0.35, 0.32, 0.31), strict=True)
    ] + [
        {"kind": "sgd", "mapping": "positional", "shape": "s1", "iou_uniform": 0.9,
         "iou_near_surface": 0.9, "flow_time": 1e3},
        {"kind": "adam", "mapping": "basic", "shape": "s1", "iou_uniform": 0.9,
         "iou_near_surface": 0.9, "residual_mse": 0.15},
    ]  # fmt: skip
    follow = fig_shape_population.follow_gaps(results, runs)
    by = {(g["mapping"], g["key"]): g for g in follow}
    assert set(by) == {("basic", "iou_uniform"), ("basic", "iou_near_surface")}
    uni = by[("basic", "iou_uniform")]
    assert uni["differences"] == pytest.approx({"s1": 0.05, "s2": 0.02, "s3": 0.01})
    assert uni["mean"] == pytest.approx(0.08 / 3, rel=1e-12)
    assert uni["n"] == 3
    # near-surface: 0.2 - 0.2 on every shape, no spread
    near = by[("basic", "iou_near_surface")]
    assert near["mean"] == pytest.approx(0.0, abs=1e-15)
    # the SGD networks give pairs of mappings only where both ran
    gaps = fig_shape_population.shape_gaps(results, runs)
    sgd = [g for g in gaps if g["source"] == "SGD networks"]
    assert [g["differences"] for g in sgd if g["key"] == "iou_uniform"] == [
        pytest.approx({"s1": 0.9 - 0.35})
    ]


class _FakeNet:
    def __init__(self, outputs):
        self.outputs = outputs

    def apply(self, params, x):
        return np.asarray(self.outputs(np.asarray(x)))[:, None]


@pytest.mark.parametrize(
    ("outputs", "cause"),
    [
        (lambda x: np.where(x[:, 0] > 0, np.nan, 1.0), "non-finite output on"),
        (lambda x: np.full(len(x), 0.25), "constant output 0.25"),
    ],
)
def test_collapsed_network_is_recorded_not_scored(outputs, cause):
    from ntkspec import shapes

    solid = shapes.shape_set(0)[0]
    points = shapes.uniform_points(512, seed=0)
    for kind in ("adam", "sgd"):
        rec = shape_networks_fresh._eval(_FakeNet(outputs), None, solid, points, kind)
        assert rec["collapsed"] and rec["iou"] is None
        assert rec["cause"].startswith(cause)
    # a varying finite output is scored
    ok = shape_networks_fresh._eval(
        _FakeNet(lambda x: x[:, 0]), None, solid, points, "sgd"
    )
    assert "collapsed" not in ok and 0.0 <= ok["iou"] <= 1.0


def test_collapsed_run_is_listed_and_left_out():
    # a collapsed SGD run is never placed, never in a gap, and listed with its cause
    shapes_ = ("s1", "s2")
    result = {"times": [1.0, 100.0], "budget_time": 10.0,
              "per_shape": [{"shape": s, "iou_uniform_centred": [0.2, 0.4],
                             "iou_near_surface_centred": [0.1, 0.3]}
                            for s in shapes_]}  # fmt: skip
    runs = [
        {"kind": "sgd", "mapping": "basic", "shape": "s1", "iou_uniform": 0.5,
         "iou_near_surface": 0.2, "flow_time": 10.0, "collapsed": False},
        {"kind": "sgd", "mapping": "basic", "shape": "s2", "iou_uniform": None,
         "iou_near_surface": None, "flow_time": 10.0, "collapsed": True,
         "cause": "non-finite output on 3 of 8 points (diverged)"},
    ]  # fmt: skip
    placed = fig_shape_population.place_networks(result, "basic", runs)
    assert [m["shape"] for m in placed] == ["s1"]
    follow = fig_shape_population.follow_gaps({"basic": result}, runs)
    assert all(g["n"] == 1 for g in follow)
    assert follow[0]["differences"] == pytest.approx({"s1": 0.2})
    assert fig_shape_population.collapsed_lines(runs)[-1] == (
        "- sgd basic s2 seed 0: non-finite output on 3 of 8 points (diverged)"
    )
    assert fig_shape_population.collapsed_lines(runs[:1]) == []


def test_sgd_divergence_quick(tmp_path, capsys):
    from analysis import sgd_divergence

    out = tmp_path / "div"
    argv = ["--quick", "--mapping", "gaussian", "--shape", "bumpy_sphere"]
    assert sgd_divergence.main([*argv, "--out", str(out)]) == 0
    rec = json.loads((out / "gaussian_bumpy_sphere_seed0.json").read_text())
    assert len(rec["batch_loss"]) == len(rec["grad_norm"]) == 4
    assert rec["diverged_at_step"] is None
    assert [e["step"] for e in rec["ntk_top"]] == [0, 2, 4]
    # lr = 0.5 / lambda_max(K/N); the finite network's kernel at init is of that scale
    assert rec["learning_rate"] == pytest.approx(0.5 / rec["lambda_max_T"], rel=1e-12)
    assert 0.0 < rec["ntk_top"][0]["lr_times_lambda"] < 2.0
    # bad input: one line, exit 2, nothing written
    bad = tmp_path / "bad"
    assert sgd_divergence.main(["--quick", "--shape", "cube", "--out", str(bad)]) == 2
    assert "--shape" in capsys.readouterr().err and not bad.exists()
