"""Chapter 6 — the language-modelling loss: how surprised the model is by the next token."""

from __future__ import annotations

import torch

from lmkit.grading import exercise

__all__ = ["lm_loss"]


@exercise("6.1")
def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token predictions.

    Args:
        logits: ``(B, T, V)`` unnormalised scores; ``logits[b, t]`` predicts the token at
            position ``t + 1`` of sequence ``b``.
        targets: ``(B, T)`` int64 token ids, *already shifted*: ``targets[b, t]`` is the
            token that follows position ``t`` (``get_batch`` returns them that way), so do
            not shift again.

    Returns:
        A 0-dim tensor: ``−mean over all b, t of log softmax(logits[b, t])[targets[b, t]]``,
        in nats. It must stay finite for large logits (work with log-probabilities, not
        with ``softmax(...).log()``) and be differentiable. A ``ValueError`` names the
        expected shapes when ``logits`` is not ``(B, T, V)`` or ``targets`` not ``(B, T)``.
    """
    raise NotImplementedError(
        "Exercise 6.1: flatten (B, T, V) → (B·T, V) and (B, T) → (B·T,), then the mean "
        "negative log-softmax probability of each target"
    )
