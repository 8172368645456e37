"""Order statistics for the figures: medians and percentiles of samples."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(xs: Sequence[float]) -> float | None:
    """The median, or None for no samples."""
    return float(statistics.median(xs)) if xs else None


def percentile(xs: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) by linear interpolation, or None for no samples."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b
