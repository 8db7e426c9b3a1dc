"""Reference solution of chapter 8 (lmkit.sampling)."""

from __future__ import annotations

import torch


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    # One stable sort serves both filters: ties keep the lower token id first.
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    keep = torch.ones_like(sorted_logits, dtype=torch.bool)
    if top_k is not None:
        keep[..., top_k:] = False
    if top_p is not None:
        probs = torch.softmax(sorted_logits.masked_fill(~keep, float("-inf")), dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely tokens
        keep &= before < top_p  # the token that crosses top_p has before < top_p: kept
    filtered = torch.full_like(logits, float("-inf")).scatter(
        -1, order, sorted_logits.masked_fill(~keep, float("-inf"))
    )
    probs = torch.softmax(filtered, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
