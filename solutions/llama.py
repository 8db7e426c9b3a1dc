"""Reference solutions of chapter 11 (lmkit.llama)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import lmkit.llama
from lmkit.llama import past_length
from lmkit.model import KVCache
from solutions.attention import check_attention_inputs, scaled_dot_product_attention
from solutions.positions import apply_rope, fused_apply_rope, rope_factors, rotate_by


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    if weight.shape != x.shape[-1:]:
        raise ValueError(
            f"weight should have shape (C,) = ({x.shape[-1]},) for x of shape "
            f"{tuple(x.shape)}, got {tuple(weight.shape)}"
        )
    # No mean subtracted: only the scale of each vector is normalised. eps inside the root
    # keeps an all-zero vector finite (0 · rsqrt(eps) = 0).
    ms = x.pow(2).mean(dim=-1, keepdim=True)
    return x * torch.rsqrt(ms + eps) * weight


def fused_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    # What reference mode runs inside models: PyTorch's one-kernel RMSNorm, equal to
    # `rms_norm` within float rounding (tests/test_llama.py).
    if weight.shape != x.shape[-1:]:
        return rms_norm(x, weight, eps)  # its clear error
    return F.rms_norm(x, x.shape[-1:], weight, eps)


class SwiGLU(lmkit.llama.SwiGLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The gate decides, entry by entry, how much of up(x) passes: silu(g) ≈ 0 for g ≪ 0.
        return self.down(F.silu(self.gate(x)) * self.up(x))


def repeat_kv(k: torch.Tensor, n_rep: int) -> torch.Tensor:
    if k.dim() != 4:
        raise ValueError(f"k should have shape (B, n_kv, T, head_dim), got {tuple(k.shape)}")
    if not isinstance(n_rep, int) or n_rep < 1:
        raise ValueError(f"n_rep must be an int ≥ 1, got {n_rep!r}")
    if n_rep == 1:
        return k
    B, n_kv, T, hd = k.shape
    # (B, n_kv, 1, T, hd) → (B, n_kv, n_rep, T, hd) → (B, n_kv·n_rep, T, hd): the n_rep
    # copies of head j end up next to each other, at heads j·n_rep … (j+1)·n_rep − 1.
    return k[:, :, None].expand(B, n_kv, n_rep, T, hd).reshape(B, n_kv * n_rep, T, hd)


class GroupedQueryAttention(lmkit.llama.GroupedQueryAttention):
    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x should have shape (B, T, d_model) = (B, T, {self.d_model}), "
                f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        B, T, C = x.shape
        h, kvh, hd = self.n_head, self.n_kv_head, self.head_dim
        q = self.q(x).view(B, T, h, hd).transpose(1, 2)  # (B, h, T, hd)
        k = self.k(x).view(B, T, kvh, hd).transpose(1, 2)  # (B, kvh, T, hd)
        v = self.v(x).view(B, T, kvh, hd).transpose(1, 2)
        start = past_length(cache, layer)
        positions = torch.arange(start, start + T, device=x.device)
        q = apply_rope(q, positions, self.rope_base)
        k = apply_rope(k, positions, self.rope_base)
        if cache is not None:
            # The cache holds kvh heads: GQA's saving. Repeat only for the computation.
            k, v = cache.append(layer, k, v)
        k, v = repeat_kv(k, h // kvh), repeat_kv(v, h // kvh)
        # Query i (absolute position start + i) sees keys 0 … start + i.
        mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
        if self.fast:
            check_attention_inputs(q, k, v, mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            y = scaled_dot_product_attention(q, k, v, mask)[0]
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, h, hd) → (B, T, C)


def fused_gqa_forward(
    self: lmkit.llama.GroupedQueryAttention,
    x: torch.Tensor,
    cache: KVCache | None = None,
    layer: int = 0,
) -> torch.Tensor:
    # What reference mode runs for `fast=True` models: the same computation as the
    # reference above, with three shortcuts PyTorch's fused kernel allows. It reads the
    # n_kv_head keys and values directly (`enable_gqa=True`) instead of copying them
    # n_head / n_kv_head times; a single new token sees every cached key, so it needs no
    # mask; with nothing cached the mask is plain causal (`is_causal=True`, no mask tensor).
    # Equal to the reference within float rounding (tests/test_llama.py).
    if not self.fast or x.dim() != 3 or x.shape[-1] != self.d_model:
        return GroupedQueryAttention.forward(self, x, cache, layer)  # its errors too
    B, T, C = x.shape
    h, kvh, hd = self.n_head, self.n_kv_head, self.head_dim
    q = self.q(x).view(B, T, h, hd).transpose(1, 2)
    k = self.k(x).view(B, T, kvh, hd).transpose(1, 2)
    v = self.v(x).view(B, T, kvh, hd).transpose(1, 2)
    start = past_length(cache, layer)
    if x.dtype in (torch.float32, torch.float64) and hd % 2 == 0:
        # positions start … start+T−1: one slice of the cached e^{iθ} table for q and k
        factors = rope_factors(hd, start, T, self.rope_base, x.device, x.dtype)
        q, k = rotate_by(q, factors), rotate_by(k, factors)
    else:
        positions = torch.arange(start, start + T, device=x.device)
        q = fused_apply_rope(q, positions, self.rope_base)
        k = fused_apply_rope(k, positions, self.rope_base)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    if T == 1:
        y = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    elif start == 0:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    else:
        mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


#: Exercises whose reference has a fused twin for reference mode (lmkit.grading.Exercise.runner).
FUSED = {"rms_norm": fused_rms_norm, "GroupedQueryAttention.forward": fused_gqa_forward}
