"""Plausible wrong answers to chapter 11's exercises, and the hint each check must give."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmkit.llama import past_length
from solutions.attention import causal_mask
from solutions.llama import repeat_kv as ref_repeat_kv
from solutions.positions import apply_rope as ref_apply_rope

# ------------------------------------------------------------------ 11.1 rms_norm


def _need_weight(x, weight):
    if weight.shape != x.shape[-1:]:
        raise ValueError("weight must be (C,)")


def _rms_layer_norm(x, weight, eps=1e-5):
    _need_weight(x, weight)
    x = x - x.mean(-1, keepdim=True)  # copied from layer_norm
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rms_eps_outside(x, weight, eps=1e-5):
    _need_weight(x, weight)
    rms = torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True))
    return x / (rms + eps) * weight


def _rms_norm_l2(x, weight, eps=1e-5):
    _need_weight(x, weight)
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + eps) * weight


def _rms_no_weight(x, weight, eps=1e-5):
    _need_weight(x, weight)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _rms_dim0(x, weight, eps=1e-5):
    _need_weight(x, weight)
    return x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * weight


def _rms_no_eps(x, weight, eps=1e-5):
    _need_weight(x, weight)
    return x / x.pow(2).mean(-1, keepdim=True).sqrt() * weight


def _rms_in_place(x, weight, eps=1e-5):
    _need_weight(x, weight)
    return x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).mul_(weight)


def _rms_no_check(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight[: x.shape[-1]]


def _rms_float64(x, weight, eps=1e-5):
    _need_weight(x, weight)
    x = x.double()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.double()


# ------------------------------------------------------------------ 11.2 SwiGLU


def _swiglu_swapped(self, x):
    return self.down(F.silu(self.up(x)) * self.gate(x))


def _swiglu_sigmoid(self, x):
    return self.down(torch.sigmoid(self.gate(x)) * self.up(x))


def _swiglu_gelu(self, x):
    return self.down(F.gelu(self.gate(x)) * self.up(x))


def _swiglu_silu_after(self, x):
    return self.down(F.silu(self.gate(x) * self.up(x)))


def _swiglu_no_up(self, x):
    return self.down(F.silu(self.gate(x)))


# ------------------------------------------------------------------ 11.3 repeat_kv


def _kv_checks(k, n_rep):
    if k.dim() != 4 or n_rep < 1:
        raise ValueError("bad k or n_rep")


def _repeat_tiled(k, n_rep):
    _kv_checks(k, n_rep)
    return k.repeat(1, n_rep, 1, 1)


def _repeat_expand_wrong_order(k, n_rep):
    _kv_checks(k, n_rep)
    B, n_kv, T, hd = k.shape
    return k[:, None].expand(B, n_rep, n_kv, T, hd).reshape(B, n_kv * n_rep, T, hd)


def _repeat_unsqueeze_(k, n_rep):
    _kv_checks(k, n_rep)
    B, n_kv, T, hd = k.shape
    return k.unsqueeze_(2).expand(B, n_kv, n_rep, T, hd).reshape(B, n_kv * n_rep, T, hd)


def _repeat_time(k, n_rep):
    _kv_checks(k, n_rep)
    return k.repeat_interleave(n_rep, dim=2)


def _repeat_no_checks(k, n_rep):
    return k.repeat_interleave(n_rep, dim=1)


def _repeat_no_dim_check(k, n_rep):
    if n_rep < 1:
        raise ValueError("n_rep must be ≥ 1")
    return torch.repeat_interleave(k, n_rep, dim=-3)


# ------------------------------------------------------------------ 11.4 GQA


def _gqa_parts(self, x, cache, layer, *, rope=True, base=None, restart=False):
    """A learner's forward, with one mistake switched on at a time."""
    if x.dim() != 3 or x.shape[-1] != self.d_model:
        raise ValueError("x must be (B, T, d_model)")
    B, T, C = x.shape
    q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
    k = self.k(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
    v = self.v(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
    start = 0 if restart else past_length(cache, layer)
    pos = torch.arange(start, start + T)
    if rope:
        b = self.rope_base if base is None else base
        q, k = ref_apply_rope(q, pos, b), ref_apply_rope(k, pos, b)
    n_rep = self.n_head // self.n_kv_head
    return q, k, v, n_rep, B, T, C


def _finish(self, q, k, v, cache, layer, n_rep, B, T, C, *, store_repeated=False):
    start = past_length(cache, layer)
    if store_repeated:
        k, v = ref_repeat_kv(k, n_rep), ref_repeat_kv(v, n_rep)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    if not store_repeated:
        k, v = ref_repeat_kv(k, n_rep), ref_repeat_kv(v, n_rep)
    mask = torch.ones(T, start + T, dtype=torch.bool).tril(start)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _gqa_no_rope(self, x, cache=None, layer=0):
    parts = _gqa_parts(self, x, cache, layer, rope=False)
    return _finish(self, *parts[:3], cache, layer, *parts[3:])


def _gqa_default_base(self, x, cache=None, layer=0):
    parts = _gqa_parts(self, x, cache, layer, base=10000.0)
    return _finish(self, *parts[:3], cache, layer, *parts[3:])


def _gqa_restart(self, x, cache=None, layer=0):
    parts = _gqa_parts(self, x, cache, layer, restart=True)
    return _finish(self, *parts[:3], cache, layer, *parts[3:])


def _gqa_cache_length(self, x, cache=None, layer=0):
    # cache.length counts layer 0's keys, which already include the new tokens
    q, k, v, n_rep, B, T, C = _gqa_parts(self, x, None, layer)
    start = 0 if cache is None else cache.length
    pos = torch.arange(start, start + T)
    q, k, v = (self.q(x), self.k(x), self.v(x))
    q = ref_apply_rope(q.view(B, T, self.n_head, -1).transpose(1, 2), pos, self.rope_base)
    k = ref_apply_rope(k.view(B, T, self.n_kv_head, -1).transpose(1, 2), pos, self.rope_base)
    v = v.view(B, T, self.n_kv_head, -1).transpose(1, 2)
    return _finish(self, q, k, v, cache, layer, n_rep, B, T, C)


def _gqa_store_repeated(self, x, cache=None, layer=0):
    parts = _gqa_parts(self, x, cache, layer)
    return _finish(self, *parts[:3], cache, layer, *parts[3:], store_repeated=True)


def _gqa_rotate_half(self, x, cache=None, layer=0):
    # Copied from a Hugging Face tutorial: rotate_half pairs dimension i with i + D/2.
    B, T, C = x.shape
    hd = self.head_dim
    q = self.q(x).view(B, T, self.n_head, hd).transpose(1, 2)
    k = self.k(x).view(B, T, self.n_kv_head, hd).transpose(1, 2)
    v = self.v(x).view(B, T, self.n_kv_head, hd).transpose(1, 2)
    start = past_length(cache, layer)
    inv_freq = 1.0 / (self.rope_base ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.outer(torch.arange(start, start + T).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rotate_half(t):
        return torch.cat((-t[..., hd // 2 :], t[..., : hd // 2]), dim=-1)

    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    n_rep = self.n_head // self.n_kv_head
    return _finish(self, q, k, v, cache, layer, n_rep, B, T, C)


def _gqa_not_causal(self, x, cache=None, layer=0):
    B, T, C = x.shape
    q, k, v, n_rep, B, T, C = _gqa_parts(self, x, cache, layer)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    k, v = k.repeat_interleave(n_rep, 1), v.repeat_interleave(n_rep, 1)
    y = F.scaled_dot_product_attention(q, k, v)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _gqa_tiled(self, x, cache=None, layer=0):
    q, k, v, n_rep, B, T, C = _gqa_parts(self, x, cache, layer)
    start = past_length(cache, layer)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    k, v = k.repeat(1, n_rep, 1, 1), v.repeat(1, n_rep, 1, 1)
    mask = torch.ones(T, start + T, dtype=torch.bool).tril(start)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _gqa_square_mask(self, x, cache=None, layer=0):
    q, k, v, n_rep, B, T, C = _gqa_parts(self, x, cache, layer)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    k, v = ref_repeat_kv(k, n_rep), ref_repeat_kv(v, n_rep)
    from solutions.attention import scaled_dot_product_attention

    y = scaled_dot_product_attention(q, k, v, causal_mask(T))[0]
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _gqa_no_shape_check(self, x, cache=None, layer=0):
    B, T, C = x.shape
    pad = torch.zeros(B, T, self.d_model - C) if C < self.d_model else None
    x = x if pad is None else torch.cat([x, pad], -1)
    q, k, v, n_rep, B, T, C = _gqa_parts(self, x, cache, layer)
    return _finish(self, q, k, v, cache, layer, n_rep, B, T, C)


MISTAKES = {
    "11.1": [
        ("subtracts the mean (LayerNorm)", _rms_layer_norm, "RMSNorm does not subtract the mean"),
        ("eps added to the rms", _rms_eps_outside, "eps goes inside the square root"),
        ("L2 norm instead of RMS", _rms_norm_l2, "the *mean* of x**2"),
        ("forgets the weight", _rms_no_weight, "multiply by weight"),
        ("normalises over dim 0", _rms_dim0, "normalise over the last dimension"),
        ("no eps at all", _rms_no_eps, "eps goes inside the square root"),
        ("modifies x in place", _rms_in_place, "not x.mul_"),
        ("no weight shape check", _rms_no_check, "check that weight has shape (C,)"),
        ("returns float64", _rms_float64, "should have dtype torch.float32"),
    ],
    "11.2": [
        ("silu on up, not gate", _swiglu_swapped, "silu goes on the gate projection"),
        ("sigmoid gate (GLU)", _swiglu_sigmoid, "not sigmoid(z) alone"),
        ("GELU gate", _swiglu_gelu, "SwiGLU uses silu (swish)"),
        ("silu after the product", _swiglu_silu_after, "apply silu to the gate before"),
        ("forgets up", _swiglu_no_up, "multiply by the up projection"),
    ],
    "11.3": [
        ("tiles with .repeat", _repeat_tiled, "not the whole stack tiled"),
        ("expand on the wrong axis", _repeat_expand_wrong_order, "repeat_interleave(n_rep, dim=1)"),
        ("repeats along time", _repeat_time, "should have shape"),
        ("unsqueeze_ changes k", _repeat_unsqueeze_, "do not modify k"),
        ("no checks", _repeat_no_checks, "n_rep must be at least 1"),
        ("no dimension check", _repeat_no_dim_check, "k must be (B, n_kv, T, head_dim)"),
    ],
    "11.4": [
        ("no RoPE", _gqa_no_rope, "rotate q and k with apply_rope"),
        ("HF's rotate_half RoPE", _gqa_rotate_half, "the course's RoPE is interleaved"),
        ("default RoPE base", _gqa_default_base, "pass base=self.rope_base"),
        ("no causal mask", _gqa_not_causal, "mask the future"),
        ("tiles the KV heads", _gqa_tiled, "repeat_kv: query heads"),
        ("positions restart with a cache", _gqa_restart, "read start = past_length"),
        ("start = cache.length (layer 0's)", _gqa_cache_length, "read start = past_length"),
        ("caches the repeated keys", _gqa_store_repeated, "before repeat_kv"),
        ("square causal mask with a cache", _gqa_square_mask, "the mask is (T, start + T)"),
        ("no shape check", _gqa_no_shape_check, "check that x is (B, T, d_model)"),
    ],
}
