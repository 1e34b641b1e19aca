"""The FreSh baseline of the scale_suggestion study (the distance: test_design.py)."""

import numpy as np

from ntkspec import design
from ntkspec.studies import scale_suggestion as ss


def test_fresh_choice_is_the_argmin_of_the_library_distance(monkeypatch):
    calls = []

    def spy(target, output, **kw):
        calls.append(kw)
        return design.fresh_distance(target, output, **kw)

    monkeypatch.setattr(ss, "fresh_distance", spy)
    img = np.random.default_rng(0).uniform(size=(8, 8, 3))
    choice, dist = ss.fresh_choice(img, sigmas=(1.0, 4.0), inits=1)
    assert len(calls) == 2 and all(kw == {} for kw in calls)  # all bins
    assert len(dist) == 2 and choice == (1.0, 4.0)[int(np.argmin(dist))]
