"""Chapter 15's power-law fits (lmkit.scaling) against scipy.optimize.curve_fit: the
log-space line with a known irreducible loss, and the three-parameter fit that searches it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmkit.scaling import fit_power_law, fit_power_law_with_offset, power_law

pytestmark = pytest.mark.usefixtures("reference_solutions")
optimize = pytest.importorskip("scipy.optimize")

N = np.geomspace(1e4, 3e6, 8)


def _log_model(log_n, log_a, alpha, c=0.0):
    return np.log(np.exp(log_a) * np.exp(log_n) ** -alpha + c)


@pytest.mark.parametrize(("a", "alpha", "c"), [(5.0, 0.076, 0.0), (40.0, 0.3, 1.1)])
def test_known_law_is_recovered_exactly(a, alpha, c):
    y = [power_law(n, a, alpha, c) for n in N]
    got_a, got_alpha = fit_power_law(N.tolist(), y, c)
    assert got_a == pytest.approx(a, rel=1e-9) and got_alpha == pytest.approx(alpha, rel=1e-9)


def test_log_space_fit_equals_curve_fit_on_noisy_data():
    rng = np.random.default_rng(0)
    y = 40.0 * N**-0.3 + 1.1
    y = y * np.exp(rng.normal(0, 0.02, N.shape))
    a, alpha = fit_power_law(N.tolist(), y.tolist(), 1.1)
    (log_a, want_alpha), _ = optimize.curve_fit(
        lambda u, la, al: _log_model(u, la, al, 1.1),
        np.log(N),
        np.log(y),
        p0=(math.log(30.0), 0.2),
    )
    # curve_fit minimises the error in log y with c inside the log; the line fits
    # log(y - c). Different objectives: equal only to a few per cent here.
    assert alpha == pytest.approx(want_alpha, rel=0.05)
    straight, _ = optimize.curve_fit(
        lambda u, la, al: la - al * u, np.log(N), np.log(y - 1.1), p0=(0.0, 0.1)
    )
    assert (math.log(a), alpha) == pytest.approx(tuple(straight), rel=1e-6)


def test_offset_fit_finds_the_irreducible_loss_like_curve_fit():
    y = [power_law(n, 40.0, 0.3, 1.1) for n in N]
    a, alpha, c = fit_power_law_with_offset(N.tolist(), y, steps=2000)
    assert c == pytest.approx(1.1, abs=2e-3) and alpha == pytest.approx(0.3, rel=0.02)
    (log_a, want_alpha, want_c), _ = optimize.curve_fit(
        _log_model, np.log(N), np.log(y), p0=(math.log(30.0), 0.2, 0.5)
    )
    assert c == pytest.approx(want_c, abs=2e-3) and alpha == pytest.approx(want_alpha, rel=0.02)
    with pytest.raises(ValueError, match="at least 4 points"):
        fit_power_law_with_offset([1.0, 2.0, 3.0], [3.0, 2.0, 1.5])


def test_bad_input():
    with pytest.raises(ValueError, match="1.5"):
        fit_power_law([1e3, 1e4], [2.0, 1.0], 1.5)
    with pytest.raises(ValueError, match="equal"):
        fit_power_law([10.0, 10.0], [3.0, 2.0])


def test_a_scaled_gpt_counts_its_non_embedding_parameters_and_compute():
    import torch

    from lmkit.scaling import train_scaled_gpt

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(65, (20_000,), generator=g)
    row = train_scaled_gpt(1, 16, 5, ids[:15_000], ids[15_000:])
    # embeddings: 65 characters + 64 positions, 16 wide; the head is tied
    assert row["parameters"] - row["non_embedding_parameters"] == (65 + 64) * 16
    assert row["tokens"] == 5 * 12 * 64
    assert row["compute_flops"] == 6 * row["non_embedding_parameters"] * row["tokens"]
    assert [s for s, _, _ in row["curve"]] == [1, 2, 3, 4, 5]
    assert row["val_loss"] == min(v for _, v, _ in row["curve"])
