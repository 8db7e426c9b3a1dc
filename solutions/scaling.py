"""Reference solution of chapter 15's scaling-law exercise (lmkit.scaling)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def fit_power_law(
    x: Sequence[float], y: Sequence[float], irreducible: float = 0.0
) -> tuple[float, float]:
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x values for {len(y)} y values")
    if len(x) < 2:
        raise ValueError(f"a line needs at least 2 points, got {len(x)}")
    if min(x) <= 0:
        raise ValueError(f"x must be positive to take its log, got {min(x)}")
    if min(y) <= irreducible:
        raise ValueError(
            f"every y must exceed the irreducible loss {irreducible}: log(y - {irreducible}) "
            f"does not exist for y = {min(y)}"
        )
    u = [math.log(v) for v in x]
    w = [math.log(v - irreducible) for v in y]
    mu, mw = sum(u) / len(u), sum(w) / len(w)
    var = sum((a - mu) ** 2 for a in u)
    if var == 0:
        raise ValueError("all x are equal: the slope is undefined")
    slope = sum((a - mu) * (b - mw) for a, b in zip(u, w, strict=True)) / var
    return math.exp(mw - slope * mu), -slope
