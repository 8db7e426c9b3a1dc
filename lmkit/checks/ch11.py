"""Checks of chapter 11: rms_norm, SwiGLU.forward, repeat_kv, GroupedQueryAttention.forward.

Judges: ``F.rms_norm`` and Hugging Face's ``LlamaRMSNorm`` (11.1); a SwiGLU written out in
float64 and HF's ``LlamaMLP`` with the same weights (11.2); ``repeat_interleave`` and HF's
``repeat_kv`` (11.3); ``F.scaled_dot_product_attention(..., enable_gqa=True)`` on queries
and keys rotated with complex numbers (Meta's original Llama code, interleaved pairs), and
HF's ``LlamaAttention`` with the weights copied in — its q/k rows un-permuted, since HF
rotates halves (11.4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmkit.checks import (
    call,
    compare,
    expect_finite,
    expect_tensor,
    expect_unchanged,
    expect_value_error,
    fail,
)
from lmkit.grading import checks
from lmkit.llama import GroupedQueryAttention, SwiGLU
from lmkit.model import KVCache

# ------------------------------------------------------------------ 11.1 rms_norm

_EPS_HINT = "eps goes inside the square root: x / sqrt(mean(x**2) + eps), not x / (rms + eps)"


def _rms_suspects(x: torch.Tensor, w: torch.Tensor, eps: float):
    x, w = x.double(), w.double()
    ms = x.pow(2).mean(-1, keepdim=True)
    centred = x - x.mean(-1, keepdim=True)
    return [
        (
            lambda: centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * w,
            "RMSNorm does not subtract the mean (that is LayerNorm): divide x itself by "
            "its root mean square",
        ),
        (lambda: x / (ms.sqrt() + eps) * w, _EPS_HINT),
        (lambda: x / ms.sqrt() * w, _EPS_HINT),
        (
            lambda: x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt() * w,
            "the *mean* of x**2 over the last dimension (divide the sum by C), not the sum "
            "(the L2 norm)",
        ),
        (lambda: x * torch.rsqrt(ms + eps), "multiply by weight, the learned gain"),
        (
            lambda: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w,
            "normalise over the last dimension (dim=-1), each vector on its own",
        ),
    ]


@checks("11.1")
def check_rms_norm(impl: Callable) -> None:
    g = torch.Generator().manual_seed(11)
    cases = [
        ("x (2, 5, 8), eps=1e-5", torch.randn(2, 5, 8, generator=g) * 3 + 1, 1e-5),
        (
            "x (4, 16) of size ~1e-3, eps=1e-5 (eps matters)",
            torch.randn(4, 16, generator=g) * 1e-3,
            1e-5,
        ),
        ("x (3, 6), eps=0.1", torch.randn(3, 6, generator=g), 0.1),
        ("x (1, 576) (SmolLM2's width), eps=1e-5", torch.randn(1, 576, generator=g), 1e-5),
    ]
    for case, x, eps in cases:
        w = torch.rand(x.shape[-1], generator=g) + 0.5
        x0 = x.clone()
        got = call(case, impl, x, w, eps)
        expect_tensor(got, tuple(x.shape), f"{case}: the result", dtype=x.dtype)
        expect_unchanged(x, x0, f"{case}: x", "compute a new tensor (x * …), not x.mul_(…)")
        want = F.rms_norm(x.double(), (x.shape[-1],), w.double(), eps)
        compare(case, got, want, _rms_suspects(x, w, eps))
    # Hugging Face's LlamaRMSNorm, the layer SmolLM2 runs, as a second judge.
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    x, w = torch.randn(2, 3, 10, generator=g).double(), torch.rand(10, generator=g).double()
    hf = LlamaRMSNorm(10, eps=1e-5).double()
    hf.weight.data.copy_(w)
    with torch.no_grad():
        compare("x (2, 3, 10) against HF's LlamaRMSNorm", call("HF case", impl, x, w, 1e-5), hf(x))
    zeros = torch.zeros(2, 4)
    got = call("an all-zero x (2, 4)", impl, zeros, torch.ones(4), 1e-5)
    expect_finite(got, "rms_norm of an all-zero x", _EPS_HINT)
    compare("an all-zero x (2, 4)", got, torch.zeros(2, 4))
    expect_value_error(
        "x (2, 8) with a weight of shape (4,)",
        lambda: impl(torch.randn(2, 8), torch.ones(4), 1e-5),
        "check that weight has shape (C,) = x.shape[-1:] and raise a ValueError otherwise",
    )


# ------------------------------------------------------------------ 11.2 SwiGLU


def _swiglu(d: int, d_ff: int, seed: int) -> SwiGLU:
    torch.manual_seed(seed)
    m = SwiGLU(d, d_ff)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)  # gates of size ~1: silu is far from linear there
    return m


def _swiglu_suspects(m: SwiGLU, x: torch.Tensor):
    x = x.double()
    wg, wu, wd = (t.weight.detach().double() for t in (m.gate, m.up, m.down))
    g, u = x @ wg.T, x @ wu.T
    return [
        (
            lambda: (F.silu(u) * g) @ wd.T,
            "silu goes on the gate projection, silu(self.gate(x)) * self.up(x) (you gated "
            "up instead)",
        ),
        (
            lambda: (torch.sigmoid(g) * u) @ wd.T,
            "silu(z) = z · sigmoid(z) (F.silu), not sigmoid(z) alone (that is the original GLU)",
        ),
        (lambda: (F.gelu(g) * u) @ wd.T, "SwiGLU uses silu (swish), F.silu, not GELU"),
        (
            lambda: F.silu(g * u) @ wd.T,
            "apply silu to the gate before the product: silu(gate(x)) * up(x), not "
            "silu(gate(x) * up(x))",
        ),
        (
            lambda: F.silu(g) @ wd.T,
            "multiply by the up projection: down(silu(gate(x)) * up(x)) uses all three matrices",
        ),
    ]


@checks("11.2")
def check_swiglu(impl: Callable) -> None:
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    g = torch.Generator().manual_seed(12)
    for case, d, d_ff, shape in [
        ("d=8, d_ff=24, x (2, 5, 8)", 8, 24, (2, 5, 8)),
        ("d=16, d_ff=40, x (3, 16)", 16, 40, (3, 16)),
    ]:
        m = _swiglu(d, d_ff, seed=d)
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            got = call(case, impl, m, x)
        expect_tensor(got, shape, f"{case}: the result")
        wg, wu, wd = (t.weight.detach().double() for t in (m.gate, m.up, m.down))
        xd = x.double()
        want = (F.silu(xd @ wg.T) * (xd @ wu.T)) @ wd.T
        compare(case, got, want, _swiglu_suspects(m, x))
    # Hugging Face's LlamaMLP with the same weights.
    hf_config = HFLlamaConfig(
        hidden_size=8,
        intermediate_size=24,
        hidden_act="silu",
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    hf = LlamaMLP(hf_config).double()
    m = _swiglu(8, 24, seed=3)
    for ours, theirs in ((m.gate, hf.gate_proj), (m.up, hf.up_proj), (m.down, hf.down_proj)):
        theirs.weight.data.copy_(ours.weight.detach().double())
    x = torch.randn(4, 8, generator=g)
    with torch.no_grad():
        got = call("d=8, d_ff=24 against HF's LlamaMLP", impl, m, x)
        compare("d=8, d_ff=24 against HF's LlamaMLP", got, hf(x.double()), _swiglu_suspects(m, x))


# ------------------------------------------------------------------ 11.3 repeat_kv

_GROUPING_HINT = (
    "query heads j·n_rep … (j+1)·n_rep − 1 share key/value head j, so each head is "
    "repeated n_rep times in place (k.repeat_interleave(n_rep, dim=1)), not the whole "
    "stack tiled (k.repeat)"
)


@checks("11.3")
def check_repeat_kv(impl: Callable) -> None:
    from transformers.models.llama.modeling_llama import repeat_kv as hf_repeat_kv

    g = torch.Generator().manual_seed(13)
    for case, shape, n_rep in [
        ("k (2, 3, 5, 4), n_rep=3 (SmolLM2's 9 query / 3 KV heads)", (2, 3, 5, 4), 3),
        ("k (1, 2, 4, 6), n_rep=4", (1, 2, 4, 6), 4),
        ("k (2, 4, 3, 2), n_rep=1 (plain multi-head)", (2, 4, 3, 2), 1),
    ]:
        k = torch.randn(*shape, generator=g)
        k0 = k.clone()
        got = call(case, impl, k, n_rep)
        B, n_kv, T, hd = shape
        expect_tensor(got, (B, n_kv * n_rep, T, hd), f"{case}: the result")
        expect_unchanged(k, k0, f"{case}: k", "return a new tensor; do not modify k")
        compare(
            case,
            got,
            hf_repeat_kv(k.double(), n_rep),
            [(lambda k=k, n_rep=n_rep: k.repeat(1, n_rep, 1, 1), _GROUPING_HINT)],
        )
    expect_value_error(
        "n_rep=0",
        lambda: impl(torch.randn(1, 2, 3, 4), 0),
        "n_rep must be at least 1: raise a ValueError for n_rep < 1",
    )
    expect_value_error(
        "a 3-D k (2, 3, 4)",
        lambda: impl(torch.randn(2, 3, 4), 2),
        "k must be (B, n_kv, T, head_dim): raise a ValueError for any other number of dimensions",
    )


# ------------------------------------------------------------------ 11.4 GQA


def _gqa(d: int, h: int, kvh: int, base: float, seed: int) -> GroupedQueryAttention:
    torch.manual_seed(seed)
    m = GroupedQueryAttention(d, h, kvh, rope_base=base)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return m.eval()


def _rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Meta's Llama RoPE: pairs (2i, 2i+1) as complex numbers times e^{iθ} (float64)."""
    D = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.outer(positions.double(), inv_freq)
    rot = torch.polar(torch.ones_like(angles), angles)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], D // 2, 2).contiguous())
    return torch.view_as_real(z * rot).flatten(-2)


def _rope_half(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Hugging Face's rotate_half RoPE (dimension i pairs with i + D/2)."""
    D = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.outer(positions.double(), inv_freq).repeat(1, 2)
    x = x.double()
    rotated = torch.cat((-x[..., D // 2 :], x[..., : D // 2]), dim=-1)
    return x * angles.cos() + rotated * angles.sin()


def _judge(
    m: GroupedQueryAttention,
    x: torch.Tensor,
    start: int = 0,
    *,
    rope: str = "interleaved",
    base: float | None = None,
    causal: bool = True,
    tiled: bool = False,
    past: torch.Tensor | None = None,
    restart: bool = False,
) -> torch.Tensor:
    """What attention over ``past`` (earlier tokens) + ``x`` gives for ``x``'s rows, in
    float64: the right answer by default, a typical mistake with a flag."""
    full = x if past is None else torch.cat([past, x], dim=1)
    B, T_all, C = full.shape
    h, kvh, hd = m.n_head, m.n_kv_head, m.head_dim
    xd = full.double()
    q = (xd @ m.q.weight.detach().double().T).view(B, T_all, h, hd).transpose(1, 2)
    k = (xd @ m.k.weight.detach().double().T).view(B, T_all, kvh, hd).transpose(1, 2)
    v = (xd @ m.v.weight.detach().double().T).view(B, T_all, kvh, hd).transpose(1, 2)
    pos = torch.arange(T_all)
    if restart:  # the new tokens numbered from 0 again, as if there were no cache
        pos = torch.cat([torch.arange(T_all - x.shape[1]), torch.arange(x.shape[1])])
    b = m.rope_base if base is None else base
    if rope == "interleaved":
        q, k = _rope_complex(q, pos, b), _rope_complex(k, pos, b)
    elif rope == "half":
        q, k = _rope_half(q, pos, b), _rope_half(k, pos, b)
    if tiled:
        k, v = k.repeat(1, h // kvh, 1, 1), v.repeat(1, h // kvh, 1, 1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    else:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    y = y.transpose(1, 2).reshape(B, T_all, C) @ m.proj.weight.detach().double().T
    return y[:, T_all - x.shape[1] :]


_ROPE_HALF_HINT = (
    "the course's RoPE is interleaved — pairs (2i, 2i+1) rotate together, as in "
    "lmkit.positions.apply_rope (exercise 3.2) — not Hugging Face's rotate_half (i with "
    "i + D/2); the weights' rows are laid out for the interleaved one"
)


def _gqa_suspects(m, x, start=0, past=None):
    def j(**kw):
        return lambda: _judge(m, x, start, past=past, **kw)

    return [
        (j(rope="none"), "rotate q and k with apply_rope(…, positions, base=self.rope_base)"),
        (j(rope="half"), _ROPE_HALF_HINT),
        (j(base=10000.0), "pass base=self.rope_base to apply_rope (SmolLM2 uses 100,000)"),
        (
            j(causal=False),
            "mask the future: query i may attend to keys 0 … i only (causal)",
        ),
        (j(tiled=True), "repeat_kv: " + _GROUPING_HINT),
    ]


def _hf_attention(m: GroupedQueryAttention):
    """HF's LlamaAttention with ``m``'s weights (q/k rows un-permuted) and its RoPE."""
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

    hd = m.head_dim
    config = HFLlamaConfig(
        hidden_size=m.d_model,
        num_attention_heads=m.n_head,
        num_key_value_heads=m.n_kv_head,
        rope_theta=m.rope_base,
        attention_bias=False,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    hf = LlamaAttention(config, layer_idx=0).double().eval()

    def unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
        # interleaved rows (2i, 2i+1) of each head → halves (i, i + hd/2)
        return w.view(heads, hd // 2, 2, -1).transpose(1, 2).reshape(heads * hd, -1)

    with torch.no_grad():
        hf.q_proj.weight.copy_(unpermute(m.q.weight.detach().double(), m.n_head))
        hf.k_proj.weight.copy_(unpermute(m.k.weight.detach().double(), m.n_kv_head))
        hf.v_proj.weight.copy_(m.v.weight.detach().double())
        hf.o_proj.weight.copy_(m.proj.weight.detach().double())
    return hf, LlamaRotaryEmbedding(config).double()


def _cache_mask_hint(err: BaseException) -> str | None:
    if "mask" in str(err) or "shape" in str(err) or "size" in str(err):
        return (
            "with a cache the queries are the T new tokens but the keys are all start + T "
            "tokens: the mask is (T, start + T), torch.ones(T, start + T).tril(start)"
        )
    return None


@checks("11.4")
def check_gqa(impl: Callable) -> None:
    g = torch.Generator().manual_seed(14)
    for case, d, h, kvh, base, shape in [
        ("d=24, 6 query / 2 KV heads, base 100000, x (2, 7, 24)", 24, 6, 2, 1e5, (2, 7, 24)),
        ("d=16, 4 query / 4 KV heads, base 10000, x (1, 5, 16)", 16, 4, 4, 1e4, (1, 5, 16)),
        ("d=32, 4 query / 1 KV head, base 500000, x (2, 6, 32)", 32, 4, 1, 5e5, (2, 6, 32)),
    ]:
        m = _gqa(d, h, kvh, base, seed=d + h)
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            got = call(case, impl, m, x)
        expect_tensor(got, shape, f"{case}: the result")
        compare(case, got, _judge(m, x), _gqa_suspects(m, x))

    # Hugging Face's LlamaAttention, with its rotate_half RoPE on un-permuted rows.
    m = _gqa(24, 6, 2, 1e5, seed=1)
    x = torch.randn(2, 9, 24, generator=g)
    hf, rotary = _hf_attention(m)
    pos = torch.arange(9)[None]
    xd = x.double()
    mask = torch.full((9, 9), float("-inf"), dtype=torch.float64).triu(1)[None, None]
    with torch.no_grad():
        want = hf(xd, position_embeddings=rotary(xd, pos), attention_mask=mask)[0]
        got = call("against HF's LlamaAttention", impl, m, x)
    compare("x (2, 9, 24) against HF's LlamaAttention", got, want, _gqa_suspects(m, x))

    # With a KV cache: 5 tokens, then 3 more, then 1 — the same rows as all at once.
    m = _gqa(24, 6, 2, 1e5, seed=2)
    x = torch.randn(2, 9, 24, generator=g)
    cache = KVCache(2)
    with torch.no_grad():
        for lo, hi in ((0, 5), (5, 8), (8, 9)):
            case = f"with a KV cache: tokens {lo}…{hi - 1} after {lo} cached"
            got = call(case, impl, m, x[:, lo:hi], cache, 1, hint=_cache_mask_hint)
            expect_tensor(got, (2, hi - lo, 24), f"{case}: the result")
            keys = cache.keys[1]
            if keys is None or tuple(keys.shape) != (2, 2, hi, 4):
                fail(
                    f"{case}: the cached keys of layer 1",
                    None if keys is None else tuple(keys.shape),
                    (2, 2, hi, 4),
                    "k, v = cache.append(layer, k, v) with the n_kv_head rotated keys, before "
                    "repeat_kv (and use the layer you were given)",
                )
            past = x[:, :lo] if lo else None
            suspects = _gqa_suspects(m, x[:, lo:hi], past=past)
            suspects.insert(
                0,
                (
                    lambda lo=lo, hi=hi, past=past: _judge(m, x[:, lo:hi], past=past, restart=True),
                    "the new tokens sit at positions start … start + T − 1 after the start "
                    "cached ones: read start = past_length(cache, layer) before appending",
                ),
            )
            compare(case, got, _judge(m, x[:, lo:hi], past=past), suspects)
    expect_value_error(
        "x of shape (2, 5, 12) for d_model=24",
        lambda: impl(m, torch.randn(2, 5, 12)),
        "check that x is (B, T, d_model) and raise a ValueError otherwise",
    )
