"""Shared test configuration: hypothesis profiles and JAX strictness.

JAX's config is changed here, in the tests only (the library never does): strict dtype
promotion and rank promotion errors catch silent float32/float64 mixing and broadcasting
mistakes. float64 is *not* enabled globally: the library must enable it itself, scoped.
"""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci",
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
