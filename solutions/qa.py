"""Reference solutions of chapter 13's question answering (lmkit.qa)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmkit.qa import check_span_logits


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    context_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    check_span_logits(start_logits, end_logits, context_mask)
    B, T = start_logits.shape
    for name, t in (("start", start), ("end", end)):
        if t.shape != (B,):
            raise ValueError(f"{name} should be ({B},), one index per row, got {tuple(t.shape)}")
    if bool(((start < 0) | (end >= T)).any()):
        raise ValueError(f"answer positions must be in 0 … {T - 1}: got start {start}, end {end}")
    if bool((end < start).any()):
        raise ValueError(f"an answer cannot end before it starts: start {start}, end {end}")
    if context_mask is not None:
        rows = torch.arange(B)
        if not bool((context_mask[rows, start] & context_mask[rows, end]).all()):
            raise ValueError(
                "an answer lies outside the context (context_mask is False at its start or "
                "end): was it truncated away? Leave such rows out"
            )
        # No probability for the question, [CLS], [SEP] or padding: −inf before the softmax.
        start_logits = start_logits.masked_fill(~context_mask, float("-inf"))
        end_logits = end_logits.masked_fill(~context_mask, float("-inf"))
    # A softmax over the T positions of each row (dim 1), one mean over the batch per end.
    return (F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end)) / 2


def best_span(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    context_mask: torch.Tensor | None = None,
    max_length: int = 30,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_span_logits(start_logits, end_logits, context_mask)
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    B, T = start_logits.shape
    if context_mask is not None and not bool(context_mask.any(1).all()):
        raise ValueError("a row has no context token (its context_mask is all False)")
    # scores[b, i, j]: the span from token i to token j, both inclusive.
    scores = start_logits[:, :, None] + end_logits[:, None, :]
    ones = torch.ones(T, T, dtype=torch.bool, device=scores.device)
    allowed = torch.triu(ones) & torch.tril(ones, diagonal=max_length - 1)  # i ≤ j < i + L
    allowed = allowed.expand(B, T, T)
    if context_mask is not None:
        allowed = allowed & context_mask[:, :, None] & context_mask[:, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    flat = scores.reshape(B, T * T).argmax(1)  # the first maximum: earliest start, then end
    return flat // T, flat % T
