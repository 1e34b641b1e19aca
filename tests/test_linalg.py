import numpy as np
import pytest
import scipy.linalg

from ntkspec.linalg.dense import cholesky_lower


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
