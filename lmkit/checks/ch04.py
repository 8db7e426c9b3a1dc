"""Checks of chapter 4: causal_mask, scaled_dot_product_attention, MultiHeadAttention.forward.

The judges are PyTorch's own: ``torch.nn.functional.scaled_dot_product_attention`` (its
weights read off by attending to the identity matrix as values) and
``torch.nn.MultiheadAttention`` loaded with the same weights. A wrong answer is compared
with the mistakes learners really make, to name the likely one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmkit.attention import MultiHeadAttention
from lmkit.checks import call, close, compare, expect_raises, expect_tensor
from lmkit.grading import checks

# ------------------------------------------------------------------------ 4.1 causal_mask


def _torch_causal(T: int) -> torch.Tensor:
    """Where torch's is_causal=True lets a query look: attend to the identity matrix
    with equal scores, and see which weights are not zero."""
    q = torch.zeros(1, T, 1)
    eye = torch.eye(T).unsqueeze(0)
    return F.scaled_dot_product_attention(q, q, eye, is_causal=True)[0] > 0


@checks("4.1")
def check_causal_mask(impl: Callable) -> None:
    for T in [4, 1, 7]:
        case = f"causal_mask({T})"
        got = call(case, impl, T)
        want = _torch_causal(T)
        expect_tensor(got, (T, T), case)
        if got.dtype != torch.bool:
            hint = "True = may attend, False = may not"
            if got.is_floating_point() and torch.isinf(got).any():
                hint = (
                    "that is an additive float mask (0 / -inf); this course's masks are "
                    "boolean, True = may attend"
                )
            raise AssertionError(
                f"{case} should be a torch.bool tensor, got {got.dtype} "
                f"(use dtype=torch.bool or .bool()).\nHint: {hint}"
            )
        if torch.equal(got, want):
            continue
        i, j = (int(n) for n in (got != want).nonzero()[0])
        hint = "mask[i, j] is True exactly where j <= i: torch.ones(T, T).tril()"
        if torch.equal(got, want & ~torch.eye(T, dtype=torch.bool)):
            hint = (
                "a token cannot see itself: the diagonal must be True (j <= i, not j < i), "
                "or the first token would attend to nothing"
            )
        elif torch.equal(got, ~want):
            hint = (
                "the mask is inverted: True must mean 'may attend' (on and below the "
                "diagonal), False the future"
            )
        elif torch.equal(got, want.T) or got[0, 1:].any():
            hint = (
                "a token looks at the future: True must be on and below the diagonal "
                "(row i = query, column j = key, allowed when j <= i)"
            )
        raise AssertionError(
            f"{case}: mask[{i}, {j}] (query {i}, key {j}) is {bool(got[i, j])}, expected "
            f"{bool(want[i, j])}.\nHint: {hint}"
        )


# ------------------------------------------------------- 4.2 scaled_dot_product_attention


def _torch_weights(q, k, mask) -> torch.Tensor:
    """softmax(q kᵀ/√d) as torch computes it: attend to the identity as the values."""
    T_k = k.shape[-2]
    eye = torch.eye(T_k, dtype=q.dtype).expand(*k.shape[:-2], T_k, T_k)
    return F.scaled_dot_product_attention(q, k, eye, attn_mask=mask)


def _sdpa_variant(
    q,
    k,
    v,
    mask=None,
    *,
    scale: str = "sqrt_d",
    dim: int = -1,
    mask_mode: str = "before",
    fill: float = float("-inf"),
    naive_exp: bool = False,
    raw: bool = False,
):
    """softmax(q kᵀ / √d) v — and the usual ways to get it wrong."""
    d, d_v = q.shape[-1], v.shape[-1]
    divisor = {
        "sqrt_d": math.sqrt(d),
        "none": 1.0,
        "d": d,
        "sqrt_dv": math.sqrt(d_v),
        "times": 1 / math.sqrt(d),
    }[scale]
    scores = (q.double() @ k.double().transpose(-2, -1)) / divisor
    if mask is not None and mask_mode in ("before", "inverted"):
        keep = mask if mask_mode == "before" else ~mask
        scores = scores.masked_fill(~keep, fill)
    if raw:
        weights = scores
    elif naive_exp:
        e = scores.float().exp().double()
        weights = e / e.sum(dim, keepdim=True)
    else:
        weights = scores.softmax(dim)
    if mask is not None and mask_mode == "after":
        weights = weights * mask
    return weights @ v.double(), weights


def _attention_suspects(q, k, v, mask, which: int):
    """(suspect, hint) pairs for the output (which=0) or the weights (which=1)."""

    def s(**kw):
        return lambda: _sdpa_variant(q, k, v, mask, **kw)[which]

    d, d_v = q.shape[-1], v.shape[-1]
    suspects = [
        (
            s(scale="none"),
            f"scale the scores by 1/√d (d = q.shape[-1] = {d} here): "
            "softmax(q kᵀ / √d), the scale is missing",
        ),
        (s(scale="d"), "divide the scores by √d, not by d"),
        (s(scale="times"), "divide the scores by √d; you multiplied by it"),
        (
            s(dim=-2),
            "take the softmax over the keys, the last dimension (dim=-1): "
            "each row of weights must sum to 1",
        ),
        (
            s(mask_mode="after"),
            "apply the mask before the softmax (disallowed scores → -inf); masking the "
            "weights after it leaves rows that no longer sum to 1",
        ),
        (
            s(mask_mode="inverted"),
            "the mask is inverted: True means 'may attend', so fill the scores where the "
            "mask is False (~mask) with -inf",
        ),
        (
            s(fill=0.0),
            "set disallowed scores to -inf, not 0: a score of 0 still gets weight e⁰ > 0",
        ),
        (s(raw=True), "return the weights after the softmax, not the raw scores"),
    ]
    if d != d_v:
        suspects.insert(
            1,
            (
                s(scale="sqrt_dv"),
                f"√d uses the queries' and keys' dimension d = {d}, not the values' d_v = {d_v}",
            ),
        )
    return suspects


def _check_sdpa_case(impl: Callable, case: str, q, k, v, mask=None) -> None:
    result = call(case, impl, q, k, v) if mask is None else call(case, impl, q, k, v, mask)
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(
            f"{case} should return a tuple (out, weights), got {type(result).__name__}"
        )
    out, weights = result
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    T_q, T_k, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    out_shape, w_shape = (*batch, T_q, d_v), (*batch, T_q, T_k)
    for name, t in (("out", out), ("weights", weights)):
        if not isinstance(t, torch.Tensor):
            raise AssertionError(f"{case}: {name} should be a torch.Tensor, got {type(t)}")
    if tuple(out.shape) == w_shape and tuple(weights.shape) == out_shape and w_shape != out_shape:
        raise AssertionError(f"{case}: return (out, weights) in that order")
    expect_tensor(out, out_shape, f"{case}: out, (..., T_q, d_v),")
    expect_tensor(weights, w_shape, f"{case}: weights, (..., T_q, T_k),")
    if not torch.isfinite(out).all() or not torch.isfinite(weights).all():
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        inverted = mask is not None and close(
            weights, _sdpa_variant(q, k, v, mask, mask_mode="inverted")[1], equal_nan=True
        )
        if inverted:
            hint = (
                "the mask is inverted: True means 'may attend', so fill the scores where "
                "the mask is False (~mask) with -inf (inverted, some rows allow no key)"
            )
        elif mask is not None and (~mask.any(-1)).any():
            hint = (
                "a query row whose mask allows no key came out NaN (softmax of all -inf): "
                "define it as weights 0 and output 0, e.g. "
                "weights.masked_fill(~mask.any(-1, keepdim=True), 0)"
            )
        elif scores.abs().max() > 80:
            hint = (
                f"the scores are large here (up to {scores.abs().max():.0f}) and exp "
                "overflows: subtract each row's maximum before exp (torch.softmax does)"
            )
        else:
            hint = (
                "a NaN comes from 0/0, 0 · inf or inf − inf: check your divisions, any "
                "product with the -inf of masked scores, and exp of large numbers"
            )
        raise AssertionError(f"{case}: the result contains NaN or inf.\nHint: {hint}")
    want_w = _torch_weights(q, k, mask)
    want_out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None and (~mask.any(-1)).any():
        dead = (~mask.any(-1, keepdim=True)).expand(w_shape)
        if not close(weights[dead], torch.zeros_like(weights[dead])):
            raise AssertionError(
                f"{case}: a query row whose mask allows no key should get weights 0 "
                "(and output 0), not a uniform average.\nHint: with a large negative fill "
                "(-1e9) instead of -inf such a row becomes uniform; use -inf and set fully "
                "masked rows to 0"
            )
    compare(
        f"{case}: weights",
        weights,
        want_w,
        _attention_suspects(q, k, v, mask, 1),
        "weights = softmax(q @ kᵀ / √d) over the last dimension, disallowed scores at -inf",
    )
    compare(
        f"{case}: out",
        out,
        want_out,
        _attention_suspects(q, k, v, mask, 0),
        "out = weights @ v",
    )


@checks("4.2")
def check_scaled_dot_product_attention(impl: Callable) -> None:
    g = torch.Generator().manual_seed(42)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    T = 5
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    random_mask = torch.rand(2, 1, 4, 6, generator=g) > 0.4
    random_mask[..., 0] = True  # every row can see something
    dead = causal.clone()
    dead[2] = False  # query 2 may see no key at all
    cases = [
        ("q, k, v of shape (2, 4, 8), no mask", r(2, 4, 8), r(2, 4, 8), r(2, 4, 8), None),
        (
            "q (2, 3, 4, 8), k (2, 3, 6, 8), v (2, 3, 6, 5), no mask",
            r(2, 3, 4, 8),
            r(2, 3, 6, 8),
            r(2, 3, 6, 5),
            None,
        ),
        (
            "q, k, v of shape (2, 3, 5, 8) with a causal (5, 5) mask",
            r(2, 3, 5, 8),
            r(2, 3, 5, 8),
            r(2, 3, 5, 8),
            causal,
        ),
        (
            "q (2, 3, 4, 8), k, v (2, 3, 6, 8) with a random (2, 1, 4, 6) mask",
            r(2, 3, 4, 8),
            r(2, 3, 6, 8),
            r(2, 3, 6, 8),
            random_mask,
        ),
        (
            "large scores: q, k of shape (1, 5, 8) × 30, causal mask",
            30 * r(1, 5, 8),
            30 * r(1, 5, 8),
            r(1, 5, 8),
            causal,
        ),
        (
            "a (5, 5) mask whose row 2 allows no key",
            r(1, 5, 8),
            r(1, 5, 8),
            r(1, 5, 8),
            dead,
        ),
    ]
    for case, q, k, v, mask in cases:
        _check_sdpa_case(impl, case, q, k, v, mask)

    q, k, v = r(2, 4, 8), r(2, 4, 8), r(2, 4, 8)
    expect_raises(
        "a float 0/1 mask",
        lambda: impl(q, k, v, causal[:4, :4].float()),
        (TypeError, ValueError),
        "the mask must be torch.bool (True = may attend): raise a TypeError for a float "
        "mask, which could be 0/1 or additive 0/-inf, so refuse to guess",
    )
    expect_raises(
        "q (2, 4, 8) with k (2, 4, 6): different head dims",
        lambda: impl(q, r(2, 4, 6), r(2, 4, 6)),
        ValueError,
        "raise a ValueError naming both shapes (q and k must have the same last dimension d)",
    )
    expect_raises(
        "a (5, 5) mask for scores of shape (2, 4, 4)",
        lambda: impl(q, k, v, causal),
        ValueError,
        "raise a ValueError naming the expected shape (..., T_q, T_k) = (2, 4, 4)",
    )


# -------------------------------------------------------- 4.3 MultiHeadAttention.forward


def _mha(d: int, h: int, *, causal: bool, bias: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    m = MultiHeadAttention(d, h, causal=causal, bias=bias)
    if bias:  # torch initialises biases to 0, which would hide mistakes involving them
        with torch.no_grad():
            m.qkv.bias.normal_()
            m.proj.bias.normal_()
    return m.eval()


def _torch_mha(m: MultiHeadAttention, x, mask_allowed=None, key_padding=None):
    """torch.nn.MultiheadAttention with m's weights (its masks: True = NOT allowed)."""
    d = m.qkv.in_features
    bias = m.qkv.bias is not None
    ref = torch.nn.MultiheadAttention(d, m.n_heads, bias=bias, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(m.qkv.weight)
        ref.out_proj.weight.copy_(m.proj.weight)
        if bias:
            ref.in_proj_bias.copy_(m.qkv.bias)
            ref.out_proj.bias.copy_(m.proj.bias)
    attn_mask = None if mask_allowed is None else ~mask_allowed
    kpm = None if key_padding is None else ~key_padding
    return ref.eval()(x, x, x, attn_mask=attn_mask, key_padding_mask=kpm, need_weights=False)[0]


def _mha_variant(
    m: MultiHeadAttention,
    x,
    mask=None,
    *,
    split: str = "ok",
    merge: str = "ok",
    proj: bool = True,
    causal: bool | None = None,
    order: tuple[int, int, int] = (0, 1, 2),
    scale_dim: str = "head",
    use_mask: bool = True,
    heads: bool = True,
):
    """MultiHeadAttention.forward — and the usual ways to get it wrong."""
    B, T, C = x.shape
    h, hd = (m.n_heads, m.head_dim) if heads else (1, C)
    qkv = m.qkv(x)
    if split == "per_head":  # (B, T, h, 3·hd): Q, K, V interleaved per head
        q, k, v = qkv.view(B, T, h, 3 * hd).transpose(1, 2).split(hd, dim=-1)
    else:
        parts = qkv.split(C, dim=-1)
        q, k, v = (parts[i] for i in order)
        if split == "reshape":
            q, k, v = (t.reshape(B, h, T, hd) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T, h, hd).transpose(1, 2) for t in (q, k, v))
    allowed = mask if use_mask else None
    if m.causal if causal is None else causal:
        c = torch.ones(T, T, dtype=torch.bool).tril()
        allowed = c if allowed is None else allowed & c
    scores = q @ k.transpose(-2, -1) / math.sqrt(hd if scale_dim == "head" else C)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    y = scores.softmax(-1) @ v
    y = y.transpose(1, 2).reshape(B, T, C) if merge == "ok" else y.reshape(B, T, C)
    return m.proj(y) if proj else y


def _mha_suspects(m, x, mask):
    def s(**kw):
        return lambda: _mha_variant(m, x, mask, **kw)

    return [
        (
            s(split="reshape"),
            "split the heads with .view(B, T, n_heads, head_dim).transpose(1, 2): a bare "
            "reshape to (B, n_heads, T, head_dim) mixes tokens and heads",
        ),
        (
            s(merge="reshape"),
            "merge the heads with y.transpose(1, 2).reshape(B, T, C): a bare reshape of "
            "(B, n_heads, T, head_dim) to (B, T, C) mixes tokens and heads",
        ),
        (
            s(split="reshape", merge="reshape"),
            "split with .view(B, T, n_heads, head_dim).transpose(1, 2) and merge with "
            ".transpose(1, 2).reshape(B, T, C): bare reshapes mix tokens and heads",
        ),
        (s(proj=False), "apply the output projection self.proj after merging the heads"),
        (
            s(causal=not m.causal),
            "self.causal is True: combine causal_mask(T) with the mask (a decoder)"
            if m.causal
            else "self.causal is False (an encoder): every token may see every other one",
        ),
        (
            s(use_mask=False),
            "use the mask argument (True = may attend), combined with "
            "the causal mask by logical and",
        ),
        (s(order=(1, 0, 2)), "qkv(x) holds Q, K, V in that order along the last dimension"),
        (s(order=(0, 2, 1)), "qkv(x) holds Q, K, V in that order along the last dimension"),
        (
            s(split="per_head"),
            "split qkv(x) into three d_model-wide chunks first (Q | K | V), then each into heads",
        ),
        (
            s(scale_dim="model"),
            "scale each head's scores by 1/√head_dim (a head's dot products have head_dim "
            "terms), not 1/√d_model",
        ),
        (
            s(heads=False),
            "split into n_heads heads of head_dim = d_model // n_heads and attend in each "
            "head separately",
        ),
    ]


@checks("4.3")
def check_multi_head_attention_forward(impl: Callable) -> None:
    g = torch.Generator().manual_seed(43)
    pad = torch.ones(2, 6, dtype=torch.bool)
    pad[0, 4:] = False  # sequence 0 has 2 padding tokens at the end
    cases = [
        ("MultiHeadAttention(16, 4), x of shape (2, 5, 16)", 16, 4, False, True, (2, 5), None),
        (
            "MultiHeadAttention(16, 4, causal=True), x of shape (2, 5, 16)",
            16,
            4,
            True,
            True,
            (2, 5),
            None,
        ),
        (
            "MultiHeadAttention(12, 3, causal=True, bias=False), x of shape (3, 7, 12)",
            12,
            3,
            True,
            False,
            (3, 7),
            None,
        ),
        (
            "MultiHeadAttention(16, 2) with a padding mask of shape (2, 1, 1, 6)",
            16,
            2,
            False,
            True,
            (2, 6),
            pad,
        ),
        (
            "MultiHeadAttention(16, 2, causal=True) with a padding mask (2, 1, 1, 6)",
            16,
            2,
            True,
            True,
            (2, 6),
            pad,
        ),
    ]
    for case, d, h, causal, bias, (B, T), padding in cases:
        m = _mha(d, h, causal=causal, bias=bias)
        x = torch.randn(B, T, d, generator=g)
        mask = None if padding is None else padding[:, None, None, :]
        with torch.no_grad():
            got = call(case, impl, m, x) if mask is None else call(case, impl, m, x, mask)
            expect_tensor(got, (B, T, d), case)
            c = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
            want = _torch_mha(m, x, mask_allowed=c, key_padding=padding)
            compare(
                f"{case} against torch.nn.MultiheadAttention with the same weights",
                got,
                want,
                _mha_suspects(m, x, mask),
                "qkv → split heads (B, n_heads, T, head_dim) → attention → merge heads → proj",
            )
    try:
        MultiHeadAttention(10, 3)
    except ValueError as err:
        assert "10" in str(err) and "3" in str(err), str(err)  # the course's own code
    else:  # pragma: no cover - guards lmkit, not the learner
        raise AssertionError("MultiHeadAttention(10, 3) should raise ValueError")
