import numpy as np
import pytest
import scipy.linalg

from ntkspec.linalg.dense import cholesky_lower, eigh_mrrr


@pytest.mark.parametrize("n, block", [(50, 64), (300, 64), (257, 100), (128, 128)])
def test_blocked_cholesky_equals_lapack(n, block):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, n // 2))
    a = x @ x.T + 1e-3 * n * np.eye(n)
    reference = scipy.linalg.cholesky(a, lower=True)
    low = cholesky_lower(a, block=block)
    np.testing.assert_allclose(low, reference, rtol=1e-12, atol=1e-12 * np.abs(a).max())
    np.testing.assert_array_equal(np.triu(low, 1), 0.0)
    np.testing.assert_allclose(low @ low.T, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())


def test_blocked_cholesky_reads_only_the_lower_triangle():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 200))
    a = x @ x.T + 200 * np.eye(200)
    garbage = np.tril(a) + np.triu(rng.standard_normal(a.shape), 1)
    np.testing.assert_allclose(
        cholesky_lower(garbage, block=64),
        scipy.linalg.cholesky(a, lower=True),
        rtol=1e-12,
        atol=1e-12 * np.abs(a).max(),
    )


@pytest.mark.parametrize("n, block", [(40, 64), (200, 64)])
def test_blocked_cholesky_refuses_indefinite(n, block):
    a = np.eye(n)
    a[-1, -1] = -1.0
    with pytest.raises(np.linalg.LinAlgError):
        cholesky_lower(a, block=block)


def _planted(n, seed):
    """A symmetric matrix Q diag(lam) Q^T with clusters and a repeated eigenvalue."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.sort(
        np.concatenate(
            [
                np.logspace(-8, 0, n - 24),
                1e-3 * (1 + 1e-13 * np.arange(12)),  # a tight cluster
                np.full(12, 0.5),  # a repeated eigenvalue
            ]
        )
    )
    return (q * lam) @ q.T, lam


def test_eigh_mrrr_recovers_a_planted_spectrum_with_clusters():
    a, lam = _planted(120, 3)
    a = np.tril(a) + np.triu(np.full_like(a, np.nan), 1)  # the upper triangle unread
    w, v = eigh_mrrr(a)
    low = np.tril(a) + np.tril(a, -1).T
    # backward stability: eigenvalues to n eps |A|, an orthonormal basis, A V = V W
    np.testing.assert_allclose(w, lam, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v.T @ v, np.eye(120), rtol=0, atol=1e-12)
    np.testing.assert_allclose(low @ v, v * w, rtol=0, atol=1e-12)
