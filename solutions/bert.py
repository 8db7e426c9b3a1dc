"""Reference solutions of chapter 9 (lmkit.bert)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import lmkit.bert
from lmkit.bert import IGNORE_INDEX
from solutions.block import layer_norm


def mask_tokens(
    ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_mask: torch.Tensor | None = None,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    if special_mask is not None and special_mask.shape != ids.shape:
        raise ValueError(
            f"special_mask {tuple(special_mask.shape)} must have the shape of ids "
            f"{tuple(ids.shape)}"
        )

    def uniform() -> torch.Tensor:  # one U(0, 1) number per position
        return torch.rand(ids.shape, generator=generator, device=ids.device)

    selected = uniform() < mask_prob
    if special_mask is not None:
        selected &= ~special_mask.bool()
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    # One more draw decides what a selected position becomes: [0, 0.8) mask,
    # [0.8, 0.9) a random token, [0.9, 1) unchanged.
    u = uniform()
    random_ids = torch.randint(
        vocab_size, ids.shape, generator=generator, device=ids.device, dtype=ids.dtype
    )
    inputs = ids.clone()
    inputs[selected & (u < 0.8)] = mask_id
    swap = selected & (u >= 0.8) & (u < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"mlm_loss expects logits (B, T, V) and labels (B, T); got logits "
            f"{tuple(logits.shape)} and labels {tuple(labels.shape)}"
        )
    total = F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    # The mean over the selected positions; with none, 0 / 1 = 0 instead of 0 / 0 = NaN.
    # (No `if`: a data-dependent branch would stall a GPU and break torch.compile's graph.)
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


class BertEmbeddings(lmkit.bert.BertEmbeddings):
    def forward(self, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"idx should have shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(
                f"sequence of T={T} tokens is longer than block_size={self.block_size}: "
                f"BERT has learned position embeddings for positions 0..{self.block_size - 1} "
                "only (truncate the input)"
            )
        if segments is None:
            segments = torch.zeros_like(idx)
        elif segments.shape != idx.shape:
            raise ValueError(
                f"segments {tuple(segments.shape)} must have the shape of idx {tuple(idx.shape)}"
            )
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device)) + self.seg(segments)
        return self.drop(layer_norm(x, self.ln.weight, self.ln.bias, self.ln.eps))
