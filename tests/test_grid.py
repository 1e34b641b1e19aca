import dataclasses

import jax
import numpy as np
import pytest

from ntkspec.grid import Grid


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_points_are_c_order_meshgrid_ij(shape):
    g = Grid(shape)
    axes = [np.arange(n) / n for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    expected = np.stack([m.ravel() for m in mesh], axis=1)
    pts = g.points()
    assert pts.dtype == np.float64 and pts.shape == (g.size, g.dim)
    np.testing.assert_array_equal(pts, expected)
    # An image img[i, j] lines up with img.reshape(N): point of flat index i*n2 + j.
    if len(shape) == 2:
        img_i, img_j = np.indices(shape)
        np.testing.assert_array_equal(pts[:, 0], (img_i / shape[0]).reshape(-1))
        np.testing.assert_array_equal(pts[:, 1], (img_j / shape[1]).reshape(-1))


def test_attributes_and_int_shape():
    g = Grid((3, 5))
    assert (g.shape, g.size, g.dim) == ((3, 5), 15, 2)
    assert Grid(7).shape == (7,)
    assert Grid([4, 2]) == Grid((4, 2))
    assert hash(Grid((4, 2))) == hash(Grid((4, 2)))
    assert repr(Grid((2,))) == "Grid(shape=(2,))"
    assert Grid(np.int64(6)).shape == (6,)


def test_frequencies_fft_order():
    f0, f1 = Grid((4, 5)).frequencies()
    np.testing.assert_array_equal(f0, [0, 1, -2, -1])
    np.testing.assert_array_equal(f1, [0, 1, 2, -2, -1])


def test_immutable_and_pytree():
    g = Grid((2, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.shape = (3, 3)
    leaves, tree = jax.tree_util.tree_flatten(g)
    assert leaves == []
    assert jax.tree_util.tree_unflatten(tree, leaves) == g
    out = jax.jit(lambda grid, x: x * grid.size)(g, 2.0)
    assert float(out) == 12.0


@pytest.mark.parametrize(
    "shape, err, match",
    [
        ((2.5,), TypeError, r"shape\[0\]"),
        ((4, 3.0), TypeError, r"shape\[1\]"),
        ((0,), ValueError, r"shape\[0\].*positive"),
        ((4, -2), ValueError, r"shape\[1\].*positive"),
        ((True,), TypeError, r"shape\[0\]"),
        ((), ValueError, "1 to 3"),
        ((2, 2, 2, 2), ValueError, "1 to 3"),
        ("ab", TypeError, "shape"),
        (None, TypeError, "shape"),
    ],
)
def test_bad_shapes_name_the_argument(shape, err, match):
    with pytest.raises(err, match=match):
        Grid(shape)
