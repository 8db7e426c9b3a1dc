"""Checks of chapter 15: fit_power_law (15.1).

Judge: ``numpy.polyfit`` of degree 1 on ``(log x, log(y − irreducible))`` in float64, whose
slope is ``−alpha`` and whose intercept is ``log a``; on noise-free data the answer must also
be the law the data were made from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lmkit.checks import call, diagnose, expect_type, expect_value_error, fmt, near
from lmkit.grading import checks

HINT_SIGN = (
    "alpha is minus the slope: the fitted line is log(y - c) = log a - alpha * log x, so a "
    "loss that falls with x has a negative slope and a positive alpha"
)
HINT_LOG_A = "return a itself, exp(intercept), not the intercept log a"
HINT_BASE = (
    "use one logarithm both ways: with math.log (natural) the intercept is ln a and "
    "a = exp(intercept); with log10, a = 10 ** intercept"
)
HINT_IRREDUCIBLE = (
    "subtract the irreducible loss before the logarithm: fit log(y - irreducible), not log y"
)
HINT_SWAPPED = (
    "regress log y on log x (y is what is predicted): the slope is cov(u, v) / var(u) with "
    "u = log x, not cov / var(v)"
)
HINT_SEMILOG = (
    "take the log of x too: a power law is a straight line on log-log axes; log y against "
    "x itself is the fit of an exponential"
)
HINT_BAD_INPUT = (
    "validate first: a ValueError naming the offending value when y <= irreducible (its log "
    "does not exist), x <= 0, fewer than 2 points, or lengths that differ"
)


def _judge(x, y, c):
    slope, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float) - c), 1)
    return math.exp(intercept), -slope


def _suspects(x, y, c):
    u, v = np.log(np.asarray(x, float)), np.log(np.asarray(y, float) - c)
    slope, intercept = np.polyfit(u, v, 1)
    raw_slope, raw_intercept = np.polyfit(u, np.log(np.asarray(y, float)), 1)
    swapped = np.cov(u, v, bias=True)[0, 1] / np.var(v)
    ten_slope, ten_intercept = np.polyfit(
        np.log10(np.asarray(x, float)), np.log10(np.asarray(y, float) - c), 1
    )
    semi_slope, semi_intercept = np.polyfit(np.asarray(x, float), v, 1)
    return [
        ((math.exp(intercept), slope), HINT_SIGN),
        ((intercept, -slope), HINT_LOG_A),
        ((math.exp(ten_intercept), -ten_slope), HINT_BASE),
        ((math.exp(raw_intercept), -raw_slope), HINT_IRREDUCIBLE),
        ((math.exp(v.mean() - swapped * u.mean()), -swapped), HINT_SWAPPED),
        ((math.exp(semi_intercept), -semi_slope), HINT_SEMILOG),
    ]


def _cases():
    g = np.random.default_rng(15)
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    noisy = 40.0 * n**-0.2 + 1.1
    noisy = noisy * np.exp(g.normal(0, 0.01, n.shape))
    return [
        (
            "fit_power_law(x = 1e3 … 1e6, y = 5 · x^-0.3 exactly)",
            [1e3, 1e4, 1e5, 1e6],
            [5.0 * v**-0.3 for v in (1e3, 1e4, 1e5, 1e6)],
            0.0,
            (5.0, 0.3),
        ),
        (
            "fit_power_law(6 noisy losses of models with 1e4 … 3e6 parameters, irreducible=1.1)",
            n.tolist(),
            noisy.tolist(),
            1.1,
            None,
        ),
        (
            "fit_power_law(the same 6 noisy losses, irreducible=0)",
            n.tolist(),
            noisy.tolist(),
            0.0,
            None,
        ),
        (
            "fit_power_law(x = [2, 8], y = [3.5, 2.0], irreducible=1.5): two points",
            [2.0, 8.0],
            [3.5, 2.0],
            1.5,
            (4.0, 1.0),
        ),
    ]


@checks("15.1")
def check_fit_power_law(impl: Callable) -> None:
    for desc, x, y, c, exact in _cases():
        got = call(desc, impl, list(x), list(y), c)
        expect_type(got, tuple, desc)
        if len(got) != 2:
            raise AssertionError(f"{desc} should return 2 numbers (a, alpha), got {len(got)}")
        a, alpha = got
        expect_type(a, float, f"{desc}: a")
        expect_type(alpha, float, f"{desc}: alpha")
        want = exact or _judge(x, y, c)
        if near(a, want[0]) and near(alpha, want[1]):
            continue
        tests = [
            (lambda g, w, s=s: near(g[0], s[0]) and near(g[1], s[1]), h)
            for s, h in _suspects(x, y, c)
        ]
        hint = diagnose((a, alpha), want, tests)
        raise AssertionError(
            f"{desc}: got (a, alpha) = ({fmt(a)}, {fmt(alpha)}); expected "
            f"({fmt(want[0])}, {fmt(want[1])})." + (f"\nHint: {hint}" if hint else "")
        )
    for desc, x, y, c, mentions in [
        (
            "fit_power_law([1e3, 1e4], [2.0, 1.0], irreducible=1.5): a loss below the irreducible",
            [1e3, 1e4],
            [2.0, 1.0],
            1.5,
            [1.5],
        ),
        ("fit_power_law([0, 10], [3, 2])", [0.0, 10.0], [3.0, 2.0], 0.0, [0]),
        ("fit_power_law([10], [3])", [10.0], [3.0], 0.0, [1]),
        ("fit_power_law([1, 10, 100], [3, 2])", [1.0, 10.0, 100.0], [3.0, 2.0], 0.0, [3, 2]),
    ]:
        expect_value_error(desc, lambda x=x, y=y, c=c: impl(x, y, c), HINT_BAD_INPUT, mentions)
