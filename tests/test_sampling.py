"""The reference sampler against hand-computed distributions."""

import math

import pytest
import torch

from solutions.sampling import sample_next_token


def _freqs(logits, n=40_000, **kw):
    g = torch.Generator().manual_seed(0)
    out = sample_next_token(logits.repeat(n, 1), generator=g, **kw)
    return torch.bincount(out, minlength=logits.shape[-1]).double() / n


def test_temperature_and_filters_give_the_documented_distribution():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]])
    assert torch.allclose(_freqs(logits), torch.tensor([0.5, 0.3, 0.15, 0.05]).double(), atol=0.01)
    # top_p=0.6 keeps {0, 1} renormalised: 0.625, 0.375.
    assert torch.allclose(
        _freqs(logits, top_p=0.6), torch.tensor([0.625, 0.375, 0, 0]).double(), atol=0.01
    )
    # top_p=0.5 is reached exactly by token 0 alone.
    assert torch.equal(_freqs(logits, top_p=0.5), torch.tensor([1.0, 0, 0, 0]).double())
    # temperature 0.5 squares the probabilities (then renormalises).
    sq = torch.tensor([0.25, 0.09, 0.0225, 0.0025]).double()
    assert torch.allclose(_freqs(logits, temperature=0.5), sq / sq.sum(), atol=0.01)


def test_top_k_ties_and_greedy():
    logits = torch.tensor([[1.0, 2.0, 2.0, 2.0]])
    assert set(_freqs(logits, top_k=2).nonzero().flatten().tolist()) == {1, 2}
    assert sample_next_token(logits, temperature=0).tolist() == [1]
    assert sample_next_token(logits, top_k=1).tolist() == [1]


@pytest.mark.parametrize("kw", [{"temperature": -0.1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 2}])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        sample_next_token(torch.zeros(1, 3), **kw)
