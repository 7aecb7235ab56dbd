"""The one Wilson interval, against known values, and its two users (retarget's rate check, the label session's
estimate) reporting it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.active.strategies import cv_estimate
from pipeline.fit.retarget_rate import labels_interval
from pipeline.intervals import wilson_interval


@pytest.mark.parametrize("k, n, low, high", [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775)])
def test_wilson_interval_matches_known_values(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)
    assert labels_interval(k, n) == wilson_interval(k, n)


def test_cv_estimate_reports_the_wilson_interval_of_its_out_of_fold_accuracy():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = rng.normal(size=(40, 3)) + y[:, None] * 0.8
    estimate = cv_estimate(X, y)
    correct = round(estimate.accuracy * estimate.n)
    assert (estimate.low, estimate.high) == pytest.approx(wilson_interval(correct, estimate.n))
    assert 0.0 <= estimate.low < estimate.accuracy < estimate.high <= 1.0
