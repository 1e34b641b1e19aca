"""The `ntkspec` console script: each subcommand on tiny inputs, and every usage error.

Subcommands run in-process through `ntkspec.cli.main(argv)`; one test runs the real
`python -m ntkspec` process. Library functions that have not landed yet
(`ntkspec.spectrum`, `ntkspec.kernel_regression`, `ntkspec.validation`) are replaced in
the wiring tests by dense references written here; the tests of the real functions skip
with the reason until they are there.
"""

import json
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

import ntkspec
from ntkspec import cli, mappings
from ntkspec.kernels import ReluMLP

# Dense float64 references against the CLI's float64 outputs.
RTOL, ATOL = 1e-8, 1e-12

HAS_SPECTRUM = hasattr(ntkspec, "spectrum") and hasattr(ntkspec, "Grid")
HAS_REGRESSION = hasattr(ntkspec, "kernel_regression") and hasattr(ntkspec, "Grid")


def _points(x):
    return x.points() if hasattr(x, "points") else np.asarray(x)


def _gram(arch, mapping, x1, x2=None, kernel="ntk"):
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    f1 = mapping(_points(x1))
    f2 = None if x2 is None else mapping(_points(x2))
    return np.asarray(fn(arch, f1, f2), dtype=np.float64)


def dense_spectrum(arch, mapping, x, k=None, kernel="ntk", vectors=False):
    """Reference for ntkspec.spectrum's contract: dense eigh of K, descending."""
    lam, vec = np.linalg.eigh(_gram(arch, mapping, x, kernel=kernel))
    lam, vec = lam[::-1], vec[:, ::-1]
    if k is not None:
        lam, vec = lam[:k], vec[:, :k]
    return (lam, vec) if vectors else lam


def dense_kernel_regression(
    arch, mapping, x_train, y_train, x_test, kernel="ntk", ridge=0.0
):
    """Reference for ntkspec.kernel_regression: K(test, X) (K(X, X) + ridge I)^-1 y."""
    k_tt = _gram(arch, mapping, x_train, kernel=kernel)
    k_st = _gram(arch, mapping, x_test, x_train, kernel=kernel)
    y = np.asarray(y_train, dtype=np.float64)
    return k_st @ np.linalg.solve(k_tt + ridge * np.eye(len(k_tt)), y)


class _StubGrid:
    def __init__(self, shape):
        self.shape = tuple(shape)

    def points(self):
        axes = [np.arange(n) / n for n in self.shape]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1)


@pytest.fixture
def stub_library(monkeypatch):
    """Dense references in place of ntkspec.spectrum / kernel_regression / Grid."""
    monkeypatch.setattr(ntkspec, "spectrum", dense_spectrum, raising=False)
    monkeypatch.setattr(
        ntkspec, "kernel_regression", dense_kernel_regression, raising=False
    )
    if not hasattr(ntkspec, "Grid"):
        monkeypatch.setattr(ntkspec, "Grid", _StubGrid, raising=False)


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def smooth_image():
    i, j = np.meshgrid(np.arange(8) / 8, np.arange(8) / 8, indexing="ij")
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(2 * np.pi * i),
            0.5 + 0.3 * np.cos(2 * np.pi * j),
            0.2 + 0.6 * i * j,
        ],
        axis=-1,
    )
    return img


# --------------------------------------------------------------------------------------
# spectrum
# --------------------------------------------------------------------------------------


def test_spectrum_wiring_labels_each_eigenvalue_with_its_frequency(
    tmp_path, capsys, stub_library
):
    out = tmp_path / "out"
    code, stdout, _ = _run(
        [
            "spectrum",
            "--mapping",
            "basic",
            "--grid",
            16,
            "-k",
            7,
            "--device",
            "cpu",
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0
    data = json.loads((out / "spectrum_basic.json").read_text())
    assert (out / "spectrum_basic.png").stat().st_size > 0
    # Independent: a periodic stationary kernel on a 1D grid has eigenvalue
    # DFT(K[0, :])[f] for the Fourier mode of frequency f.
    arch, mapping = ReluMLP(4), mappings.basic(1)
    row = _gram(arch, mapping, _StubGrid((16,)).points())[0]
    by_freq = np.real(np.fft.fft(row))
    lam = np.asarray(data["eigenvalues"])
    labels = [f[0] for f in data["frequencies"]]
    np.testing.assert_allclose(
        lam, by_freq[np.array(labels) % 16], rtol=RTOL, atol=ATOL * lam[0]
    )
    np.testing.assert_allclose(
        data["frequency_magnitude"], np.abs(labels), rtol=0, atol=0
    )
    assert labels[0] == 0 and sorted(np.abs(labels[1:3])) == [1, 1]
    assert "rank" in stdout and len(stdout.splitlines()) == 7 + 3
    assert data["provenance"]["command"].startswith("ntkspec spectrum")


@pytest.mark.skipif(not HAS_SPECTRUM, reason="ntkspec.spectrum has not landed yet")
@pytest.mark.parametrize(
    "argv, mapping, shape",
    [
        (
            ["--mapping", "power-law", "--p", 1, "--num-freqs", 8, "--grid", 32],
            mappings.power_law(8, 1.0),
            (32,),
        ),
        (
            ["--mapping", "gaussian", "--sigma", 3, "--num-freqs", 16, "--grid", 6, 7],
            mappings.gaussian(0, 2, 16, 3.0),
            (6, 7),
        ),
    ],
)
def test_spectrum_matches_dense_eigh(tmp_path, capsys, argv, mapping, shape):
    out = tmp_path / "out"
    code, _, err = _run(["spectrum", *argv, "-k", 5, "--out", out], capsys)
    assert code == 0, err
    name = argv[1]
    data = json.loads((out / f"spectrum_{name}.json").read_text())
    ref = dense_spectrum(ReluMLP(4), mapping, _StubGrid(shape).points(), k=5)
    np.testing.assert_allclose(data["eigenvalues"], ref, rtol=0, atol=1e-8 * ref[0])


# --------------------------------------------------------------------------------------
# regress
# --------------------------------------------------------------------------------------


def _psnr(a, b):
    return -10 * np.log10(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def _expected_psnr(img, mapping, ridge=0.0):
    h, w, c = img.shape
    pred = dense_kernel_regression(
        ReluMLP(4),
        mapping,
        _StubGrid((h // 2, w // 2)).points(),
        img[::2, ::2].reshape(-1, c),
        _StubGrid((h, w)).points(),
        ridge=ridge,
    ).reshape(h, w, c)
    return _psnr(pred[1::2, 1::2], img[1::2, 1::2]), pred


def _check_regress(
    tmp_path, capsys, img_path, img, mapping_args, mapping, stem, ridge=0.0
):
    out = tmp_path / "out"
    code, stdout, err = _run(
        ["regress", img_path, *mapping_args, "--ridge", ridge, "--out", out], capsys
    )
    assert code == 0, err
    data = json.loads((out / f"{stem}.json").read_text())
    expected, pred = _expected_psnr(img, mapping, ridge)
    np.testing.assert_allclose(data["psnr"]["heldout_1_1"], expected, rtol=1e-9)
    assert data["psnr"]["train"] > data["psnr"]["heldout_1_1"]
    import matplotlib.image as mimage

    written = mimage.imread(out / data["prediction"])
    written = written[:, :, None] if written.ndim == 2 else written
    # 8-bit PNG of the clipped prediction: rounded to the nearest grey level
    np.testing.assert_allclose(
        written, np.clip(pred, 0, 1), rtol=0, atol=0.5 / 255 + 1e-6
    )
    assert "PSNR" in stdout
    return data


def test_regress_wiring_npy(tmp_path, capsys, stub_library, smooth_image):
    path = tmp_path / "img.npy"
    np.save(path, smooth_image)
    _check_regress(
        tmp_path,
        capsys,
        path,
        smooth_image,
        ["--mapping", "basic"],
        mappings.basic(2),
        "img_basic",
        ridge=1e-6,
    )


def test_regress_wiring_png_and_npz(tmp_path, capsys, stub_library, smooth_image):
    import skimage.io

    img8 = np.round(smooth_image * 255).astype(np.uint8)
    png = tmp_path / "pic.png"
    skimage.io.imsave(png, img8, check_contrast=False)
    basic = ["--mapping", "basic"]
    _check_regress(
        tmp_path, capsys, png, img8 / 255.0, basic, mappings.basic(2), "pic_basic"
    )
    npz = tmp_path / "arr.npz"
    np.savez(npz, other=np.zeros(3), image=smooth_image[:, :, 0])
    _check_regress(
        tmp_path,
        capsys,
        npz,
        smooth_image[:, :, :1],
        ["--key", "image", *basic],
        mappings.basic(2),
        "arr_basic",
        ridge=1e-8,
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--mapping", "none"], mappings.identity(2)),
        (["--mapping", "basic"], mappings.basic(2)),
        (
            ["--mapping", "positional", "--num-freqs", "4", "--scale", "2"],
            mappings.positional(2, 4, scale=2.0),
        ),
        (["--mapping", "positional"], mappings.positional(2, 128, scale=6.0)),
        (
            [
                "--mapping",
                "gaussian",
                "--sigma",
                "3",
                "--num-freqs",
                "5",
                "--seed",
                "2",
            ],
            mappings.gaussian(2, 2, 5, 3.0),
        ),
        (["--mapping", "gaussian"], mappings.gaussian(0, 2, 256, 10.0)),
    ],
)
def test_mapping_options_build_the_library_mapping(argv, expected):
    args = cli._parser().parse_args(["regress", "x.png", *argv])
    got = cli._mapping_from_args(args, 2)
    assert type(got) is type(expected)
    if hasattr(expected, "B"):
        np.testing.assert_array_equal(np.asarray(got.B), np.asarray(expected.B))
        np.testing.assert_array_equal(np.asarray(got.a), np.asarray(expected.a))


def test_power_law_option_builds_the_1d_mapping():
    args = cli._parser().parse_args(
        ["spectrum", "--mapping", "power-law", "--p", "1.5", "--num-freqs", "7"]
    )
    got, expected = cli._mapping_from_args(args, 1), mappings.power_law(7, 1.5)
    np.testing.assert_array_equal(np.asarray(got.a), np.asarray(expected.a))
    np.testing.assert_array_equal(np.asarray(got.B), np.asarray(expected.B))


@pytest.mark.skipif(
    not HAS_REGRESSION, reason="ntkspec.kernel_regression has not landed yet"
)
def test_regress_real_library_matches_dense_solve(tmp_path, capsys, smooth_image):
    path = tmp_path / "img.npy"
    np.save(path, smooth_image)
    gauss = ["--mapping", "gaussian", "--sigma", 2, "--num-freqs", 16]
    _check_regress(
        tmp_path,
        capsys,
        path,
        smooth_image,
        gauss,
        mappings.gaussian(0, 2, 16, 2.0),
        "img_gaussian",
        ridge=1e-6,
    )


# --------------------------------------------------------------------------------------
# validate, help, process
# --------------------------------------------------------------------------------------


def test_validate_calls_run_validation(tmp_path, capsys, monkeypatch):
    calls = []

    def fake(out_dir, *, quick=False, seed=0, command=None, size=None):
        calls.append((Path(out_dir), quick, seed, command))
        assert size is None
        return {"summary": str(Path(out_dir) / "summary.md")}

    try:
        import ntkspec.validation as validation

        monkeypatch.setattr(validation, "run_validation", fake)
    except ImportError:
        module = types.ModuleType("ntkspec.validation")
        module.run_validation = fake
        monkeypatch.setitem(sys.modules, "ntkspec.validation", module)
    code, stdout, _ = _run(
        ["validate", "--quick", "--seed", 3, "--out", tmp_path], capsys
    )
    assert code == 0
    assert calls == [
        (tmp_path, True, 3, f"ntkspec validate --quick --seed 3 --out {tmp_path}")
    ]
    assert "summary" in stdout


@pytest.mark.parametrize("sub", [None, "report", "spectrum", "regress", "validate"])
def test_help_teaches_with_examples(capsys, sub):
    with pytest.raises(SystemExit) as exc:
        cli.main(([sub] if sub else []) + ["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text and "ntkspec" in text


def test_no_subcommand_prints_help(capsys):
    code, stdout, _ = _run([], capsys)
    assert code == 2 and "COMMAND" in stdout


def test_real_process_usage_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ntkspec",
            "spectrum",
            "--mapping",
            "fourier",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "invalid choice: 'fourier'" in proc.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------
# Usage errors: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------


def _write_inputs(tmp_path: Path) -> dict:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "text.png").write_text("this is not an image\n")
    (inputs / "notes.txt").write_text("hello\n")
    (inputs / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    np.save(inputs / "one.npy", np.ones((1, 1)))
    np.save(inputs / "nan.npy", np.full((8, 8), np.nan))
    np.save(inputs / "huge.npy", np.zeros((2100, 2100), dtype=np.uint8))
    np.save(inputs / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(inputs / "cube.npy", np.zeros((4, 4, 4, 4)))
    np.save(inputs / "ok.npy", np.full((8, 8), 0.5))
    np.savez(inputs / "ok.npz", image=np.full((8, 8), 0.5))
    return {p.name: p for p in inputs.iterdir()}


BAD_ARGS = [
    (["spectrum", "--mapping", "fourier"], "invalid choice"),
    (["spectrum", "--mapping", "gaussian", "--sigma", "-1"], "--sigma must be"),
    (["spectrum", "--mapping", "gaussian", "--sigma", "nan"], "--sigma must be"),
    (["spectrum", "--grid", "4096", "4096"], "over the CLI's limit"),
    (["spectrum", "--grid", "0", "8"], "--grid sizes must be >= 1"),
    (["spectrum", "--grid", "2", "2", "2", "2"], "1 to 3 sizes"),
    (["spectrum", "--grid", "8", "-k", "0"], "-k/--top must be"),
    (["spectrum", "--grid", "8", "-k", "9"], "-k/--top must be"),
    (["spectrum", "--mapping", "power-law", "--grid", "8", "8"], "1D mapping"),
    (["spectrum", "--mapping", "power-law", "--grid", "8", "--p", "-2"], "--p must"),
    (["spectrum", "--depth", "0", "--grid", "8"], "--depth must be"),
    (["spectrum", "--num-freqs", "0", "--grid", "8"], "--num-freqs must be"),
    (["spectrum", "--grid", "8", "--device", "gpu"], "device 'gpu'"),
    (["spectrum", "--grid", "eight"], "invalid int value"),
    (["regress", "{missing.png}"], "does not exist"),
    (["regress", "{text.png}"], "is not a PNG or JPEG"),
    (["regress", "{notes.txt}"], "is not a PNG or JPEG"),
    (["regress", "{truncated.png}"], "cannot read"),
    (["regress", "{one.npy}"], "at least 4 x 4"),
    (["regress", "{nan.npy}"], "NaN"),
    (["regress", "{huge.npy}"], "over the CLI's limit"),
    (["regress", "{obj.npy}"], "cannot read"),
    (["regress", "{cube.npy}"], "shape (H, W)"),
    (["regress", "{ok.npz}", "--key", "nope"], "no array 'nope'"),
    (["regress", "{ok.npy}", "--mapping", "gaussian", "--sigma", "-0.5"], "--sigma"),
    (["regress", "{ok.npy}", "--ridge", "-1"], "--ridge must be"),
    (["regress", "{ok.npy}", "--mapping", "power-law"], "1D mapping"),
    (["regress", "{ok.npy}", "--mapping", "positional", "--scale", "-3"], "--scale"),
    (["regress"], "required"),
    (["spectrum", "--mapping", "basic", "--sigma", "3"], "--sigma applies to"),
    (["spectrum", "--mapping", "gaussian", "--scale", "3"], "--scale applies to"),
    (["spectrum", "--mapping", "positional", "--p", "2"], "--p applies to"),
    (["regress", "{ok.npy}", "--mapping", "none", "--num-freqs", "8"], "applies to"),
    (["regress", "{ok.npy}", "--mapping", "basic", "--seed", "1"], "--seed applies"),
    (["report", "--device", "gpu"], "device 'gpu'"),
    (["report", "--device", "tpu"], "invalid choice"),
    (["profiles", "--depth", "0"], "--depth must be"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(
    "argv, message", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS]
)
def test_usage_errors_are_one_line_exit_2_and_write_nothing(
    tmp_path, capsys, argv, message
):
    if "gpu" in argv and any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU")
    inputs = _write_inputs(tmp_path)
    inputs["missing.png"] = tmp_path / "inputs" / "missing.png"
    argv = [inputs[a[1:-1]] if a.startswith("{") else a for a in argv]
    out = tmp_path / "out"
    if argv[0] in ("spectrum", "regress", "report", "profiles"):
        argv = [*argv, "--out", out]
    try:
        code, stdout, err = _run(argv, capsys)
    except SystemExit as exc:  # argparse errors
        code = exc.code
        captured = capsys.readouterr()
        stdout, err = captured.out, captured.err
    assert code == 2, (stdout, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and message in err, err
    assert err.startswith("ntkspec")
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == sorted(
        n for n in inputs if n != "missing.png"
    )
