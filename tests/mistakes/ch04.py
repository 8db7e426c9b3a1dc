"""Plausible wrong answers to chapter 4's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch

from solutions import attention as ref

# ----------------------------------------------------------------------- 4.1 causal_mask

MASKS = [
    ("inverted (triu above the diagonal)", lambda T: torch.ones(T, T).triu(1).bool(), "inverted"),
    (
        "a token cannot see itself",
        lambda T: torch.ones(T, T).tril(-1).bool(),
        "cannot see itself",
    ),
    ("sees the future (triu)", lambda T: torch.ones(T, T).triu().bool(), "looks at the future"),
    ("float 0/1", lambda T: torch.ones(T, T).tril(), "should be a torch.bool"),
    (
        "additive float mask",
        lambda T: torch.full((T, T), float("-inf")).triu(1),
        "additive float mask",
    ),
]

# ------------------------------------------------------- 4.2 scaled_dot_product_attention


def _sdpa(
    q,
    k,
    v,
    mask=None,
    *,
    scale=None,
    dim=-1,
    mask_mode="before",
    fill=float("-inf"),
    naive=False,
    dead_rows="zero",
    validate=True,
):
    """softmax(q kᵀ/√d) v written by hand, with one mistake switched on."""
    if validate:
        ref.check_attention_inputs(q, k, v, mask)
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / (math.sqrt(d) if scale is None else scale(q, v))
    if mask is not None and mask_mode in ("before", "inverted"):
        keep = mask if mask_mode == "before" else ~mask
        scores = scores.masked_fill(~keep, fill)
    if naive:  # exp without subtracting the maximum
        e = scores.exp()
        weights = e / e.sum(dim, keepdim=True)
    else:
        weights = scores.softmax(dim)
    if mask is not None and mask_mode == "after":
        weights = weights * mask
    if mask is not None and dead_rows == "zero":
        weights = weights.masked_fill(~mask.any(-1, keepdim=True), 0.0)
    return weights @ v, weights


def _sdpa_no_validation(q, k, v, mask=None):
    if mask is not None and mask.dtype != torch.bool:
        mask = mask != 0  # silently guesses what a float mask means
    return _sdpa(q, k, v, mask, validate=False)


def _sdpa_swapped(q, k, v, mask=None):
    out, weights = ref.scaled_dot_product_attention(q, k, v, mask)
    return weights, out


# -------------------------------------------------------- 4.3 MultiHeadAttention.forward


def _forward(
    self,
    x,
    mask=None,
    *,
    split="ok",
    merge="ok",
    proj=True,
    causal=True,
    order=(0, 1, 2),
    scale_model=False,
    use_mask=True,
):
    B, T, C = x.shape
    h, hd = self.n_heads, self.head_dim
    qkv = self.qkv(x)
    if split == "per_head":
        q, k, v = qkv.view(B, T, h, 3 * hd).transpose(1, 2).split(hd, dim=-1)
    else:
        parts = qkv.split(C, dim=-1)
        q, k, v = (parts[i] for i in order)
        if split == "reshape":
            q, k, v = (t.reshape(B, h, T, hd) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T, h, hd).transpose(1, 2) for t in (q, k, v))
    m = mask if use_mask else None
    if self.causal and causal:
        c = ref.causal_mask(T)
        m = c if m is None else m & c
    if scale_model:
        s = q @ k.transpose(-2, -1) / math.sqrt(C)
        if m is not None:
            s = s.masked_fill(~m, float("-inf"))
        y = s.softmax(-1) @ v
    else:
        y, _ = ref.scaled_dot_product_attention(q, k, v, m)
    y = y.transpose(1, 2).reshape(B, T, C) if merge == "ok" else y.reshape(B, T, C)
    return self.proj(y) if proj else y


def _mha(**kw):
    def forward(self, x, mask=None):
        return _forward(self, x, mask, **kw)

    return forward


MISTAKES = {
    "4.1": MASKS,
    "4.2": [
        ("no 1/√d scale", lambda q, k, v, m=None: _sdpa(q, k, v, m, scale=lambda q, v: 1), "√d"),
        (
            "divides by d",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, scale=lambda q, v: q.shape[-1]),
            "not by d",
        ),
        (
            "scales by √d_v",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, scale=lambda q, v: math.sqrt(v.shape[-1])),
            "not the values' d_v",
        ),
        ("softmax over the queries", lambda q, k, v, m=None: _sdpa(q, k, v, m, dim=-2), "dim=-1"),
        (
            "mask after softmax",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, mask_mode="after"),
            "before the softmax",
        ),
        (
            "inverted mask",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, mask_mode="inverted"),
            "inverted",
        ),
        ("fills with 0", lambda q, k, v, m=None: _sdpa(q, k, v, m, fill=0.0), "not 0"),
        ("exp overflows", lambda q, k, v, m=None: _sdpa(q, k, v, m, naive=True), "overflows"),
        (
            "fully masked row is NaN",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, dead_rows="nan"),
            "allows no key came out NaN",
        ),
        (
            "-1e9 makes a fully masked row uniform",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, fill=-1e9, dead_rows="keep"),
            "uniform",
        ),
        ("returns (weights, out)", _sdpa_swapped, "in that order"),
        ("accepts a float mask", _sdpa_no_validation, "raise a TypeError for a float mask"),
    ],
    "4.3": [
        ("split heads by bare reshape", _mha(split="reshape"), "split the heads with .view"),
        ("merge heads by bare reshape", _mha(merge="reshape"), "merge the heads with"),
        ("no output projection", _mha(proj=False), "output projection self.proj"),
        ("ignores self.causal", _mha(causal=False), "self.causal is True"),
        ("K, Q, V order", _mha(order=(1, 0, 2)), "Q, K, V in that order"),
        ("per-head QKV split", _mha(split="per_head"), "three d_model-wide chunks"),
        ("scales by √d_model", _mha(scale_model=True), "not 1/√d_model"),
        ("ignores the mask argument", _mha(use_mask=False), "use the mask argument"),
    ],
}
