"""networks.eigenspaces / eigenspace_norms on a hand-built matrix.

K = V diag(lam) V^T with a known orthonormal V and repeated eigenvalues: numpy's eigh
returns some basis of each repeated eigenspace, not V's columns, yet the projections
onto whole eigenspaces must equal the hand-computed norms of the coefficients.
"""

import numpy as np
import pytest

from ntkspec import networks

# Two exact pairs (one split by 1e-12 relative, as round-off splits a Fourier pair),
# two simple eigenvalues.
LAM = np.array([5.0, 5.0 * (1 + 1e-12), 2.0, 1.0, 1.0, 1e-3])


def _hand_built(seed=0):
    rng = np.random.default_rng(seed)
    V, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    K = (V * LAM) @ V.T
    return V, 0.5 * (K + K.T)


def test_groups_and_projections_match_the_hand_built_example():
    V, K = _hand_built()
    lam, U = np.linalg.eigh(K)
    spaces = networks.eigenspaces(lam, U)
    assert spaces.multiplicity.tolist() == [2, 1, 2, 1]
    np.testing.assert_allclose(spaces.eigenvalues, [5.0, 2.0, 1.0, 1e-3], rtol=1e-11)
    # r = V c with known coefficients, two channels and three times.
    c = (
        np.array(
            [[[3.0, 0.0], [4.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [0.5, -0.5]]]
        )
        * np.array([1.0, 0.5, 0.0])[:, None, None]
    )
    r = np.einsum("ij,tjc->tic", V, c)
    want = np.stack(
        [
            np.sqrt(np.sum(c[:, 0:2] ** 2, axis=(1, 2))),
            np.sqrt(np.sum(c[:, 2:3] ** 2, axis=(1, 2))),
            np.sqrt(np.sum(c[:, 3:5] ** 2, axis=(1, 2))),
            np.sqrt(np.sum(c[:, 5:6] ** 2, axis=(1, 2))),
        ],
        axis=-1,
    )
    got = networks.eigenspace_norms(spaces, r)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # One residual (n,) or (n, c): (S,).
    np.testing.assert_allclose(
        networks.eigenspace_norms(spaces, r[0]), want[0], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        networks.eigenspace_norms(spaces, r[0, :, 1]),
        [1.0, 0.0, np.sqrt(8.0), 0.5],
        rtol=1e-12,
        atol=1e-12,
    )


def test_single_eigenvectors_are_not_comparable_but_eigenspaces_are():
    # Two Grams equal up to round-off: eigh's bases of the pair differ, the spaces not.
    V, K = _hand_built()
    K2 = K + 1e-13 * np.diag(np.arange(6.0))
    r = V @ np.arange(1.0, 7.0)
    n1 = networks.eigenspace_norms(networks.eigenspaces(*np.linalg.eigh(K)), r)
    n2 = networks.eigenspace_norms(networks.eigenspaces(*np.linalg.eigh(K2)), r)
    np.testing.assert_allclose(n1, n2, rtol=1e-10, atol=1e-10)


def test_tolerances_split_and_merge():
    V, K = _hand_built()
    lam, U = np.linalg.eigh(K)
    # rtol 0 and atol 0: every distinct computed eigenvalue alone (the split pair too).
    assert networks.eigenspaces(lam, U, rtol=0.0, atol=0.0).multiplicity.size >= 5
    # A huge rtol merges everything into one space.
    assert networks.eigenspaces(lam, U, rtol=10.0).multiplicity.tolist() == [6]


def test_bad_input():
    with pytest.raises(ValueError, match="eigenvectors must have shape"):
        networks.eigenspaces(np.ones(3), np.eye(4))
    with pytest.raises(ValueError, match="finite"):
        networks.eigenspaces(np.array([1.0, np.nan]), np.eye(2))
    with pytest.raises(ValueError, match="rtol"):
        networks.eigenspaces(np.ones(2), np.eye(2), rtol=-1.0)
    spaces = networks.eigenspaces(np.ones(2), np.eye(2))
    with pytest.raises(ValueError, match="residual must have shape"):
        networks.eigenspace_norms(spaces, np.ones(3))
