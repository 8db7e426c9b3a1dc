"""Reference solutions of chapter 4 (lmkit.attention)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import lmkit.attention
from lmkit.attention import check_attention_inputs


def causal_mask(T: int) -> torch.Tensor:
    # Row i (the query) may see columns j <= i: the lower triangle, diagonal included.
    return torch.ones(T, T, dtype=torch.bool).tril()


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_attention_inputs(q, k, v, mask)
    d = q.shape[-1]
    # 1/√d keeps the scores' variance ≈ 1 whatever d is, so the softmax does not saturate.
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # before the softmax: weight 0
    # torch.softmax subtracts the row maximum first, so large scores cannot overflow.
    weights = torch.softmax(scores, dim=-1)  # over the keys: each row sums to 1
    if mask is not None:
        # A row with no allowed key is all -inf → NaN after softmax; define it as 0.
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v, weights


class MultiHeadAttention(lmkit.attention.MultiHeadAttention):
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x should have shape (B, T, d_model) = (B, T, {self.d_model}), "
                f"got {tuple(x.shape)}"
            )
        B, T, C = x.shape
        h, hd = self.n_heads, self.head_dim
        q, k, v = self.qkv(x).split(C, dim=-1)  # three (B, T, C), in Q, K, V order

        def heads(t: torch.Tensor) -> torch.Tensor:
            # (B, T, C) → (B, T, h, hd) → (B, h, T, hd): each head's T × hd slice together
            return t.view(B, T, h, hd).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        if self.causal:
            causal = causal_mask(T).to(x.device)
            mask = causal if mask is None else mask & causal
        p = self.dropout.p if self.training else 0.0
        if self.fast:
            check_attention_inputs(q, k, v, mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            self.last_weights = None
        else:
            y, weights = scaled_dot_product_attention(q, k, v, mask)
            if p:
                weights = self.dropout(weights)
                y = weights @ v
            self.last_weights = weights.detach()
        # (B, h, T, hd) → (B, T, h, hd) → (B, T, C): the heads side by side again
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y)
