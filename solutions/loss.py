"""Reference solution of chapter 6's loss (lmkit.loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"lm_loss expects logits (B, T, V) and targets (B, T); got logits "
            f"{tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    # cross_entropy wants classes in dimension 1: flatten batch and time together.
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())
