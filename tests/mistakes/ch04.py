"""Plausible wrong answers to chapter 4's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch

from solutions import attention as ref

# ----------------------------------------------------------------------- 4.1 causal_mask

MASKS = [
    (
        "inverted (triu above the diagonal)",
        lambda T: torch.ones(T, T).triu(1).bool(),
        "the mask is inverted: True must mean",
    ),
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
    (
        "a sliding window of 3 keys",
        lambda T: torch.ones(T, T).tril().bool() & ~torch.ones(T, T).tril(-3).bool(),
        "mask[i, j] is True exactly where j <= i",
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


def _sdpa_mask_twice(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:  # -inf where masked, then times the mask: 0 · (-inf) = NaN
        scores = scores.masked_fill(~mask, float("-inf")) * mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def _sdpa_keys_times_queries(q, k, v, mask=None):
    ref.check_attention_inputs(q, k, v, mask)
    scores = k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (T_k, T_q): the wrong way round
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def _sdpa_transposed_product(q, k, v, mask=None):
    out, weights = ref.scaled_dot_product_attention(q, k, v, mask)
    return weights.transpose(-2, -1) @ v, weights


def _sdpa_only_dtype_checked(q, k, v, mask=None):
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("the mask must be torch.bool")
    return _sdpa(q, k, v, mask, validate=False)  # q/k widths and the mask's shape unchecked


def _sdpa_mask_shape_unchecked(q, k, v, mask=None):
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("the mask must be torch.bool")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)}: different d")
    return _sdpa(q, k, v, mask, validate=False)


def _sdpa_raw_scores(q, k, v, mask=None):
    ref.check_attention_inputs(q, k, v, mask)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v, scores  # the scores, not the weights


def _sdpa_out_only(q, k, v, mask=None):
    return ref.scaled_dot_product_attention(q, k, v, mask)[0]  # the weights are dropped


def _sdpa_swapped(q, k, v, mask=None):
    out, weights = ref.scaled_dot_product_attention(q, k, v, mask)
    return weights, out


# -------------------------------------------------------- 4.3 MultiHeadAttention.forward
# Each is a whole forward as a learner writes it (chunk, einsum, softmax by hand), each with
# one mistake, independent of the check's own suspects (lmkit/checks/ch04.py).


def _attend(q, k, v, allowed, scale, dim=-1):
    """softmax(q kᵀ · scale, masked) v, with einsum: (B, h, T, hd) in, (B, h, T, hd) out."""
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhqk,bhkd->bhqd", scores.softmax(dim=dim).nan_to_num(), v)


def _mask_for(self, T, mask):
    if not self.causal:
        return mask
    c = torch.tril(torch.ones(T, T, dtype=torch.bool))
    return c if mask is None else mask & c


def _mha_reshape_split(self, x, mask=None):
    B, T, C = x.shape
    q, k, v = self.qkv(x).chunk(3, dim=-1)
    q, k, v = (t.reshape(B, self.n_heads, T, self.head_dim) for t in (q, k, v))  # not a view
    y = _attend(q, k, v, _mask_for(self, T, mask), self.head_dim**-0.5)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _mha_reshape_merge(self, x, mask=None):
    B, T, C = x.shape
    q, k, v = self.qkv(x).chunk(3, dim=-1)
    q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
    y = _attend(q, k, v, _mask_for(self, T, mask), self.head_dim**-0.5)
    return self.proj(y.reshape(B, T, C))  # (B, h, T, hd) read as (B, T, C)


def _mha_reshape_both(self, x, mask=None):
    B, T, C = x.shape
    q, k, v = (t.reshape(B, self.n_heads, T, -1) for t in self.qkv(x).chunk(3, dim=-1))
    y = _attend(q, k, v, _mask_for(self, T, mask), self.head_dim**-0.5)
    return self.proj(y.reshape(B, T, C))


def _heads(self, t):
    B, T, _ = t.shape
    return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)


def _merge(y):
    B, h, T, hd = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, h * hd)


def _mha_no_proj(self, x, mask=None):
    q, k, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))
    return _merge(_attend(q, k, v, _mask_for(self, x.shape[1], mask), self.head_dim**-0.5))


def _mha_never_causal(self, x, mask=None):
    q, k, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))
    return self.proj(_merge(_attend(q, k, v, mask, self.head_dim**-0.5)))


def _mha_kqv(self, x, mask=None):
    k, q, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))  # Q and K swapped
    return self.proj(
        _merge(_attend(q, k, v, _mask_for(self, x.shape[1], mask), self.head_dim**-0.5))
    )


def _mha_qvk(self, x, mask=None):
    q, v, k = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))  # K and V swapped
    return self.proj(
        _merge(_attend(q, k, v, _mask_for(self, x.shape[1], mask), self.head_dim**-0.5))
    )


def _mha_per_head_split(self, x, mask=None):
    B, T, C = x.shape
    qkv = self.qkv(x).view(B, T, self.n_heads, 3 * self.head_dim).transpose(1, 2)
    q, k, v = qkv.chunk(3, dim=-1)  # each head's slice of the whole qkv, not Q | K | V
    return self.proj(_merge(_attend(q, k, v, _mask_for(self, T, mask), self.head_dim**-0.5)))


def _mha_model_scale(self, x, mask=None):
    q, k, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))
    scale = 1 / math.sqrt(self.d_model)  # the width of the model, not of a head
    return self.proj(_merge(_attend(q, k, v, _mask_for(self, x.shape[1], mask), scale)))


def _mha_ignores_mask(self, x, mask=None):
    q, k, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))
    allowed = _mask_for(self, x.shape[1], None)  # the padding mask is dropped
    return self.proj(_merge(_attend(q, k, v, allowed, self.head_dim**-0.5)))


def _mha_softmax_over_queries(self, x, mask=None):
    q, k, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))
    allowed = _mask_for(self, x.shape[1], mask)
    return self.proj(_merge(_attend(q, k, v, allowed, self.head_dim**-0.5, dim=-2)))


def _mha_always_causal(self, x, mask=None):
    T = x.shape[1]
    q, k, v = (_heads(self, t) for t in self.qkv(x).chunk(3, dim=-1))
    c = torch.tril(torch.ones(T, T, dtype=torch.bool))  # whatever self.causal says
    allowed = c if mask is None else mask & c
    return self.proj(_merge(_attend(q, k, v, allowed, self.head_dim**-0.5)))


def _mha_one_head(self, x, mask=None):
    T = x.shape[1]
    q, k, v = (t.unsqueeze(1) for t in self.qkv(x).chunk(3, dim=-1))  # one head, d_model wide
    y = _attend(q, k, v, _mask_for(self, T, mask), self.d_model**-0.5)
    return self.proj(y.squeeze(1))


MISTAKES = {
    "4.1": MASKS,
    "4.2": [
        (
            "no 1/√d scale",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, scale=lambda q, v: 1),
            "scale the scores by 1/√d",
        ),
        (
            "divides by d",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, scale=lambda q, v: q.shape[-1]),
            "divide the scores by √d, not by d",
        ),
        (
            "scales by √d_v",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, scale=lambda q, v: math.sqrt(v.shape[-1])),
            "not the values' d_v",
        ),
        (
            "softmax over the queries",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, dim=-2),
            "take the softmax over the keys, the last dimension (dim=-1)",
        ),
        (
            "mask after softmax",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, mask_mode="after"),
            "before the softmax",
        ),
        (
            "inverted mask",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, mask_mode="inverted"),
            "the mask is inverted: True means 'may attend'",
        ),
        (
            "fills with 0",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, fill=0.0),
            "set disallowed scores to -inf, not 0",
        ),
        (
            "exp overflows",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, naive=True),
            "exp overflows: subtract each row's maximum",
        ),
        (
            "fully masked row is NaN",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, dead_rows="nan"),
            "allows no key came out NaN",
        ),
        (
            "-1e9 makes a fully masked row uniform",
            lambda q, k, v, m=None: _sdpa(q, k, v, m, fill=-1e9, dead_rows="keep"),
            "uniform average",
        ),
        ("returns (weights, out)", _sdpa_swapped, "in that order"),
        ("returns out only", _sdpa_out_only, "should return a tuple (out, weights)"),
        (
            "multiplies by √d",
            lambda q, k, v, m=None: _sdpa(
                q, k, v, m, scale=lambda q, v: 1 / math.sqrt(q.shape[-1])
            ),
            "divide the scores by √d; you multiplied by it",
        ),
        ("returns the raw scores as weights", _sdpa_raw_scores, "not the raw scores"),
        ("masks by -inf and by multiplying", _sdpa_mask_twice, "0 · inf or inf − inf"),
        ("k @ qᵀ", _sdpa_keys_times_queries, "weights = softmax(q @ kᵀ / √d) over the last"),
        ("weightsᵀ @ v", _sdpa_transposed_product, "out = weights @ v"),
        ("q and k widths unchecked", _sdpa_only_dtype_checked, "naming both shapes"),
        ("mask shape unchecked", _sdpa_mask_shape_unchecked, "naming the expected shape"),
        ("accepts a float mask", _sdpa_no_validation, "raise a TypeError for a float mask"),
    ],
    "4.3": [
        ("split heads by bare reshape", _mha_reshape_split, "split the heads with .view"),
        ("merge heads by bare reshape", _mha_reshape_merge, "merge the heads with"),
        ("split and merge by bare reshapes", _mha_reshape_both, "bare reshapes mix tokens"),
        ("no output projection", _mha_no_proj, "output projection self.proj"),
        ("ignores self.causal", _mha_never_causal, "self.causal is True"),
        ("always causal", _mha_always_causal, "self.causal is False (an encoder)"),
        ("K, Q, V order", _mha_kqv, "Q, K, V in that order"),
        ("Q, V, K order", _mha_qvk, "Q, K, V in that order"),
        ("per-head QKV split", _mha_per_head_split, "three d_model-wide chunks"),
        ("scales by √d_model", _mha_model_scale, "not 1/√d_model"),
        ("ignores the mask argument", _mha_ignores_mask, "use the mask argument"),
        ("a single head", _mha_one_head, "split into n_heads heads of head_dim"),
        ("softmax over the queries", _mha_softmax_over_queries, "qkv → split heads"),
    ],
}
