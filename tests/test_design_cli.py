"""`ntkspec suggest`: the printed choice and JSON against the library, bad input."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

import ntkspec
from ntkspec import cli, design


@pytest.fixture
def image_png(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.uniform(size=(12, 13, 3)) * 255).astype(np.uint8)  # odd width
    path = tmp_path / "img.png"
    iio.imwrite(path, img)
    return path, img.astype(np.float64)[:, :12] / 255.0


def test_suggest_prints_and_writes_the_library_choice(tmp_path, capsys, image_png):
    path, img = image_png
    out = tmp_path / "sub" / "s.json"
    argv = ["suggest", str(path), "--json", str(out), "--num-freqs", "8"]
    argv += ["--depth", "3", "--time", "100"]
    assert cli.main(argv) == 0
    data = json.loads(out.read_text())
    want = design.suggest_scale(ntkspec.ReluMLP(3), img, num_freqs=8, times=100.0)
    assert data["scale"] == want.scale and data["cropped_to_even"] is True
    np.testing.assert_allclose(data["scales"], want.scales, rtol=0, atol=0)
    np.testing.assert_allclose(data["predicted_psnr"], want.predicted_psnr, rtol=1e-12)
    assert len(data["scales"]) >= 8 and data["time"] == 100.0
    text = capsys.readouterr().out
    assert f"sigma = {want.scale:g}" in text and "<- best" in text


def test_suggest_positional_without_json(tmp_path, capsys, image_png):
    path, _ = image_png
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["suggest", str(path), "--family", "positional", "--num-freqs", "8"]
    assert cli.main(argv + ["--depth", "2", "--time", "10"]) == 0
    assert "positional S =" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("case", ["missing", "text", "tiny", "range", "family", "time"])
def test_suggest_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, case):
    out = tmp_path / "s.json"
    target = tmp_path / "x.png"
    extra = []
    if case == "text":
        target.write_text("not an image")
    elif case == "tiny":
        iio.imwrite(target, np.zeros((1, 1, 3), dtype=np.uint8))
    elif case == "range":
        target = tmp_path / "x.npy"
        np.save(target, np.full((8, 8), 3.0))
    elif case in ("family", "time"):
        iio.imwrite(target, np.zeros((8, 8, 3), dtype=np.uint8))
        extra = ["--family", "sinc"] if case == "family" else ["--time", "-1"]
    try:
        code = cli.main(["suggest", str(target), "--json", str(out), *extra])
    except SystemExit as exc:  # argparse choices
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert not out.exists()


def test_suggest_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["suggest", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples" in text and "ntkspec suggest" in text
