"""The Wilson score interval of a rate, shared by the label session's accuracy estimate and retarget's
check of a positive rate read from unlabelled texts."""

from __future__ import annotations

from math import sqrt

Z95 = 1.96


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval (95% at the default ``z``) of a rate of ``successes`` in ``n`` draws at random."""
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half
