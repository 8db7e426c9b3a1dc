"""Checks of chapter 12: CrossAttention.forward, DecoderBlock.forward,
label_smoothed_cross_entropy, beam_search.

Judges: ``torch.nn.MultiheadAttention`` with the weights copied in (``in_proj`` = ``[q; kv]``,
``key_padding_mask`` = the opposite of lmkit's mask), its output and its per-head weights
(12.1); ``torch.nn.TransformerDecoderLayer(norm_first=True, activation="gelu")`` with the
weights copied in, a causal ``tgt_mask`` and ``memory_key_padding_mask`` (12.2);
``F.cross_entropy(label_smoothing=…, ignore_index=…)`` (12.3); an exhaustive search over
every sequence, :func:`lmkit.translation.greedy_search` for a beam of 1, a constructed
table where a beam of 2 beats greedy, and a float64 re-statement of the docstring's
algorithm for the whole n-best list (12.4).

The 12.2 check runs the block's sub-layers (LayerNorms, self-attention, cross-attention,
feed-forward) with forwards written here with PyTorch's functions: it judges the block's
wiring only, whether or not exercises 4.3, 5.1, 5.2 and 12.1 are done yet.
"""

from __future__ import annotations

import itertools
import math
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.checks import (
    HINT_DIFFERENTIABLE,
    HINT_LOG_SOFTMAX,
    call,
    compare,
    diagnose,
    expect_differentiable,
    expect_tensor,
    expect_type,
    expect_value_error,
    fail,
    fmt,
    near,
)
from lmkit.grading import checks
from lmkit.translation import CrossAttention, DecoderBlock, greedy_search


def _built(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` without touching the learner's global random state."""
    with torch.random.fork_rng(devices=[]):
        return factory()


def _randomise(module: nn.Module, seed: int, std: float = 0.3) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


def _padding(B: int, S: int, lengths: list[int]) -> torch.Tensor:
    """``(B, S)`` bool, True at the first ``lengths[b]`` (real) source tokens."""
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


# ------------------------------------------------------------------ 12.1 cross-attention


def _torch_cross(attn: CrossAttention) -> nn.MultiheadAttention:
    """nn.MultiheadAttention (float64) with ``attn``'s weights: in_proj = [q; k; v]."""
    bias = attn.q.bias is not None
    ref = _built(
        lambda: nn.MultiheadAttention(attn.d_model, attn.n_heads, bias=bias, batch_first=True)
    )
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([attn.q.weight, attn.kv.weight]))
        ref.out_proj.weight.copy_(attn.proj.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([attn.q.bias, attn.kv.bias]))
            ref.out_proj.bias.copy_(attn.proj.bias)
    return ref.double().eval()


def _linear64(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    b = None if layer.bias is None else layer.bias.detach().double()
    return F.linear(x.double(), layer.weight.detach().double(), b)


def _cross_variant(
    attn: CrossAttention,
    x: torch.Tensor,
    memory: torch.Tensor,
    allowed: torch.Tensor | None,
    *,
    kv_from_x: bool = False,
    swap_kv: bool = False,
    scale: str = "head_dim",
    causal: bool = False,
    no_transpose: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-attention in float64 as a learner might write it, one mistake per flag:
    ``(output (B, T, C), weights (B, h, T, S))``; ``allowed``: True = may attend."""
    B, T, C = x.shape
    source = x if kv_from_x else memory
    S = source.shape[1]
    h, hd = attn.n_heads, attn.head_dim
    q = _linear64(attn.q, x)
    k, v = _linear64(attn.kv, source).split(C, dim=-1)
    if swap_kv:
        k, v = v, k

    def heads(t: torch.Tensor, n: int) -> torch.Tensor:
        if no_transpose:
            return t.reshape(B, h, n, hd)
        return t.view(B, n, h, hd).transpose(1, 2)

    q, k, v = heads(q, T), heads(k, S), heads(v, S)
    d = {"head_dim": hd, "d_model": C, "none": 1}[scale]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    mask = allowed
    if causal:
        tri = torch.ones(T, S, dtype=torch.bool).tril()
        mask = tri if mask is None else mask & tri
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    y = (weights @ v).transpose(1, 2).reshape(B, T, C)
    return _linear64(attn.proj, y), weights


_HINT_SCALE = "divide the scores by sqrt(head_dim), the width of one head's queries"


def _cross_suspects(attn, x, memory, allowed):
    def out(**kw):
        return lambda: _cross_variant(attn, x, memory, allowed, **kw)[0]

    inverted = None if allowed is None else ~allowed
    return [
        (
            lambda: _cross_variant(attn, x, memory, None, kv_from_x=True)[0],
            "keys and values come from memory (self.kv(memory)), the queries from x: that "
            "was self-attention over x",
        ),
        (
            out(swap_kv=True),
            "kv(memory) holds the keys first, then the values: k, v = self.kv(memory)"
            ".split(C, dim=-1)",
        ),
        (
            out(causal=True),
            "no causal mask in cross-attention: the whole source is known before the first "
            "target token, every query may read every real source token",
        ),
        (
            lambda: _cross_variant(attn, x, memory, None)[0],
            "pass mask to the attention: padded source tokens must get weight 0",
        ),
        (
            lambda: _cross_variant(attn, x, memory, inverted)[0],
            "the mask is inverted: in lmkit True means *may attend* (a real source token), "
            "the opposite of nn.MultiheadAttention's key_padding_mask",
        ),
        (out(scale="none"), _HINT_SCALE),
        (out(scale="d_model"), _HINT_SCALE + " (not d_model: each head attends on its own)"),
        (
            out(no_transpose=True),
            "split heads with a view and a transpose: t.view(B, S, n_heads, head_dim)"
            ".transpose(1, 2); a reshape straight to (B, n_heads, S, head_dim) mixes tokens "
            "and heads",
        ),
    ]


_SHAPE_HINT = (
    "the queries have T rows and the keys S: the scores are (B, n_heads, T, S), so view q "
    "with T and k, v with S = memory.shape[1]; a (T, T) mask such as causal_mask(T) does "
    "not fit them (and cross-attention needs none)"
)


def _shape_hint(err: BaseException) -> str | None:
    text = str(err)
    if isinstance(err, RuntimeError) and ("size" in text or "shape" in text):
        return _SHAPE_HINT
    return None


CROSS_CASES = [
    ("CrossAttention(16, 4), x (2, 5, 16) over memory (2, 7, 16), sentence 2 padded after 4",
     dict(d_model=16, n_heads=4), 2, 5, 7, [7, 4]),
    ("CrossAttention(16, 2, bias=False), x (2, 3, 16) over memory (2, 6, 16), no mask",
     dict(d_model=16, n_heads=2, bias=False), 2, 3, 6, None),
    ("CrossAttention(12, 3), one target token x (3, 1, 12) over memory (3, 5, 12), padded",
     dict(d_model=12, n_heads=3), 3, 1, 5, [5, 2, 3]),
    ("CrossAttention(16, 4, fast=True), x (2, 6, 16) over memory (2, 4, 16), padded",
     dict(d_model=16, n_heads=4, fast=True), 2, 6, 4, [4, 1]),
]  # fmt: skip


@checks("12.1")
def check_cross_attention(impl: Callable) -> None:
    g = torch.Generator().manual_seed(121)
    for i, (case, kw, B, T, S, lengths) in enumerate(CROSS_CASES):
        attn = _randomise(_built(lambda kw=kw: CrossAttention(**kw)), seed=1210 + i)
        C = attn.d_model
        x, memory = torch.randn(B, T, C, generator=g), torch.randn(B, S, C, generator=g)
        real = None if lengths is None else _padding(B, S, lengths)
        mask = None if real is None else real[:, None, None, :]
        with torch.no_grad():
            got = call(case, impl, attn, x.clone(), memory.clone(), mask, hint=_shape_hint)
            want, weights = _torch_cross(attn)(
                x.double(),
                memory.double(),
                memory.double(),
                key_padding_mask=None if real is None else ~real,
                average_attn_weights=False,
            )
        expect_tensor(got, (B, T, C), f"{case}: the result")
        compare(case, got, want, _cross_suspects(attn, x, memory, mask))
        if attn.fast:
            continue  # no weights on the fast path
        stored = attn.last_weights
        if not isinstance(stored, torch.Tensor):
            fail(
                f"{case}: self.last_weights",
                stored,
                f"a tensor of shape {(B, attn.n_heads, T, S)}",
                "store the attention weights of the slow path: self.last_weights = weights",
            )
        expect_tensor(
            stored,
            (B, attn.n_heads, T, S),
            f"{case}: self.last_weights ((B, n_heads, T, S): one map per head, one row per "
            "target token, one column per source token)",
        )
        compare(
            f"{case}: self.last_weights",
            stored,
            weights,
            [
                (
                    lambda attn=attn, x=x, memory=memory: _cross_variant(attn, x, memory, None)[1],
                    "store the weights after the mask: a padded source token gets weight 0",
                )
            ],
        )
    attn = _randomise(_built(lambda: CrossAttention(16, 4)), seed=1)
    x, memory = torch.randn(2, 3, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    for what, args, hint in [
        ("x of width 8 for d_model=16", (torch.randn(2, 3, 8, generator=g), memory), "x"),
        ("memory of width 8 for d_model=16", (x, torch.randn(2, 5, 8, generator=g)), "memory"),
        ("a 2-D x (3, 16)", (torch.randn(3, 16, generator=g), memory), "x"),
    ]:
        expect_value_error(
            what,
            lambda args=args: impl(attn, *args),
            f"check that {hint} is (B, ·, d_model) and raise a ValueError naming its shape",
        )
    expect_value_error(
        "x with batch 2 and memory with batch 3",
        lambda: impl(attn, x, torch.randn(3, 5, 16, generator=g)),
        "x and memory must hold the same sentences: raise a ValueError when x.shape[0] != "
        "memory.shape[0]",
    )


# ------------------------------------------------------------------ 12.2 decoder block


def _ln_forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (self.d_model,), self.weight, self.bias, self.eps)


def _attend(q, k, v, mask) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _self_attn_forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    B, T, C = x.shape
    q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in self.qkv(x).split(C, -1))
    return self.proj(_attend(q, k, v, mask).transpose(1, 2).reshape(B, T, C))


def _cross_forward(self, x, memory, mask=None) -> torch.Tensor:
    (B, T, C), S = x.shape, memory.shape[1]
    q = self.q(x).view(B, T, self.n_heads, -1).transpose(1, 2)
    k, v = (t.view(B, S, self.n_heads, -1).transpose(1, 2) for t in self.kv(memory).split(C, -1))
    return self.proj(_attend(q, k, v, mask).transpose(1, 2).reshape(B, T, C))


def _ffn_forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.proj(F.gelu(self.fc(x), approximate=self.approximate))


def _decoder_block(seed: int, **kw) -> DecoderBlock:
    """A seeded block whose sub-layers run this module's forwards (PyTorch's functions)."""
    block = _randomise(_built(lambda: DecoderBlock(16, 4, **kw)), seed)
    with torch.no_grad():  # distinct LayerNorms, so that using one for all is seen
        g = torch.Generator().manual_seed(seed + 1)
        for ln in (block.ln1, block.ln2, block.ln3):
            ln.weight.copy_(1 + 0.3 * torch.randn(16, generator=g))
            if ln.bias is not None:
                ln.bias.copy_(0.2 * torch.randn(16, generator=g))
    for ln in (block.ln1, block.ln2, block.ln3):
        ln.forward = types.MethodType(_ln_forward, ln)
    block.self_attn.forward = types.MethodType(_self_attn_forward, block.self_attn)
    block.cross.forward = types.MethodType(_cross_forward, block.cross)
    block.ffn.forward = types.MethodType(_ffn_forward, block.ffn)
    return block


def _torch_decoder_layer(block: DecoderBlock) -> nn.TransformerDecoderLayer:
    """nn.TransformerDecoderLayer (pre-norm, GELU, float64) with the block's weights."""
    bias = block.ln1.bias is not None
    layer = _built(lambda: nn.TransformerDecoderLayer(
        block.ln1.d_model,
        block.self_attn.n_heads,
        dim_feedforward=block.ffn.d_ff,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=block.ln1.eps,
        batch_first=True,
        norm_first=True,
        bias=bias,
    ))  # fmt: skip
    sa, ca = block.self_attn, block.cross
    pairs = {
        "self_attn.in_proj_weight": sa.qkv.weight,
        "self_attn.out_proj.weight": sa.proj.weight,
        "multihead_attn.in_proj_weight": torch.cat([ca.q.weight, ca.kv.weight]),
        "multihead_attn.out_proj.weight": ca.proj.weight,
        "linear1.weight": block.ffn.fc.weight,
        "linear2.weight": block.ffn.proj.weight,
        "norm1.weight": block.ln1.weight,
        "norm2.weight": block.ln2.weight,
        "norm3.weight": block.ln3.weight,
    }
    if bias:
        pairs |= {
            "self_attn.in_proj_bias": sa.qkv.bias,
            "self_attn.out_proj.bias": sa.proj.bias,
            "multihead_attn.in_proj_bias": torch.cat([ca.q.bias, ca.kv.bias]),
            "multihead_attn.out_proj.bias": ca.proj.bias,
            "linear1.bias": block.ffn.fc.bias,
            "linear2.bias": block.ffn.proj.bias,
            "norm1.bias": block.ln1.bias,
            "norm2.bias": block.ln2.bias,
            "norm3.bias": block.ln3.bias,
        }
    layer.load_state_dict({k: v.detach() for k, v in pairs.items()})
    return layer.double().eval()


def _block_wiring(
    block: DecoderBlock,
    x: torch.Tensor,
    memory: torch.Tensor,
    memory_mask: torch.Tensor | None,
    *,
    causal: bool = True,
    pass_mask: bool = True,
    post_norm: bool = False,
    cross_first: bool = False,
    norm_memory: bool = False,
    residual: tuple[bool, bool, bool] = (True, True, True),
    one_ln: bool = False,
    add_to_normed: bool = False,
) -> torch.Tensor:
    """The block wired as a learner might, one mistake per flag (the sub-layers are right)."""
    T = x.shape[1]
    lns = (block.ln1,) * 3 if one_ln else (block.ln1, block.ln2, block.ln3)
    tri = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
    m = memory_mask if pass_mask else None

    def self_branch(h):
        return block.self_attn(h, tri)

    def cross_branch(h):
        return block.cross(h, lns[1](memory) if norm_memory else memory, m)

    branches = [(lns[0], self_branch), (lns[1], cross_branch), (lns[2], block.ffn)]
    if cross_first:
        branches[0], branches[1] = (lns[0], cross_branch), (lns[1], self_branch)
    for (ln, f), keep in zip(branches, residual, strict=True):
        r = x if keep else 0
        if post_norm:
            x = ln(r + f(x))
        else:
            h = ln(x)
            x = (h if add_to_normed else r) + f(h)
    return x


_HINT_RESIDUAL = (
    "a residual connection is missing: each of the three branches adds its output to x "
    "(x = x + branch(ln(x)))"
)


def _block_suspects(block, x, memory, memory_mask):
    def w(**kw):
        return lambda: _block_wiring(block, x, memory, memory_mask, **kw)

    return [
        (
            w(causal=False),
            "the self-attention needs the causal mask: self.self_attn(self.ln1(x), "
            "causal_mask(T)) (it was built with causal=False), or each target token reads "
            "the tokens after it",
        ),
        (
            w(pass_mask=False),
            "pass memory_mask to the cross-attention: self.cross(self.ln2(x), memory, "
            "memory_mask), so that no target token reads source padding",
        ),
        (
            w(post_norm=True),
            "that is post-norm (x = ln(x + branch(x))): this block is pre-norm, each "
            "LayerNorm goes on its branch's input, x = x + branch(ln(x))",
        ),
        (
            w(cross_first=True),
            "the order is self-attention (the target so far), then cross-attention (the "
            "source), then the feed-forward network",
        ),
        (
            w(norm_memory=True),
            "the memory is not normalised in the block (the encoder ends with its own "
            "LayerNorm): only x goes through ln2",
        ),
        *[
            (w(residual=tuple(j != i for j in range(3))), _HINT_RESIDUAL)  # type: ignore[arg-type]
            for i in range(3)
        ],
        (
            w(add_to_normed=True),
            "the residual adds the branch's output to x itself, not to ln(x): "
            "h = ln(x); x = x + branch(h)",
        ),
        (
            w(one_ln=True),
            "each branch has its own LayerNorm: ln1 before the self-attention, ln2 before "
            "the cross-attention, ln3 before the feed-forward network",
        ),
    ]


BLOCK_CASES = [
    ("DecoderBlock(16, 4, d_ff=24), x (2, 5, 16), memory (2, 7, 16), sentence 2 padded after 3",
     dict(d_ff=24), 2, 5, 7, [7, 3]),
    ("DecoderBlock(16, 4), x (2, 4, 16), memory (2, 3, 16), memory_mask=None",
     dict(), 2, 4, 3, None),
    ("DecoderBlock(16, 4, d_ff=20, bias=False), x (3, 6, 16), memory (3, 5, 16), padded",
     dict(d_ff=20, bias=False), 3, 6, 5, [5, 2, 4]),
]  # fmt: skip


@checks("12.2")
def check_decoder_block(impl: Callable) -> None:
    g = torch.Generator().manual_seed(122)
    for i, (case, kw, B, T, S, lengths) in enumerate(BLOCK_CASES):
        block = _decoder_block(1220 + 10 * i, **kw)
        x, memory = torch.randn(B, T, 16, generator=g), torch.randn(B, S, 16, generator=g)
        real = None if lengths is None else _padding(B, S, lengths)
        mask = None if real is None else real[:, None, None, :]
        with torch.no_grad():
            args = (x.clone(), memory.clone()) + (() if mask is None else (mask,))
            got = call(
                case,
                impl,
                block,
                *args,
                hint=lambda err: (
                    "forward takes (x, memory, memory_mask=None)"
                    if isinstance(err, TypeError) and "argument" in str(err)
                    else None
                ),
            )
            want = _torch_decoder_layer(block)(
                x.double(),
                memory.double(),
                tgt_mask=nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64),
                tgt_is_causal=True,
                memory_key_padding_mask=None if real is None else ~real,
            )
            expect_tensor(got, (B, T, 16), f"{case}: the result")
            compare(
                case,
                got,
                want,
                _block_suspects(block, x, memory, mask),
                "compare with the docstring: three pre-norm residual branches, in order, "
                "each x = x + branch(ln(x))",
            )


# ------------------------------------------------------------------ 12.3 the loss


def _smoothed(logits, targets, eps, ignore, *, szegedy=False, no_one_minus=False,
              count_padding=False, divide_all=False, reduce="mean", uniform_sum=False):  # fmt: skip
    """Label-smoothed cross-entropy in float64, one mistake per flag."""
    V = logits.shape[-1]
    if count_padding and not 0 <= ignore < V:
        return torch.tensor(float("nan"))  # padding with an id outside the vocabulary
    logp = torch.log_softmax(logits.double(), -1).reshape(-1, V)
    t = targets.reshape(-1)
    keep = torch.ones_like(t, dtype=torch.bool) if count_padding else t != ignore
    safe = torch.where(keep, t, 0)
    nll = -logp.gather(1, safe[:, None]).squeeze(1)
    if szegedy:
        others = -logp.sum(-1) - nll
        smooth = others / (V - 1)
    else:
        smooth = -logp.sum(-1) if uniform_sum else -logp.mean(-1)
    per = (1.0 if no_one_minus else 1.0 - eps) * nll + eps * smooth
    per = per * keep
    if reduce == "sum":
        return per.sum()
    return per.sum() / (t.numel() if divide_all else keep.sum())


def _loss_suspects(logits, targets, eps, ignore):
    def s(**kw):
        return lambda: float(_smoothed(logits, targets, eps, ignore, **kw))

    pad_hint = (
        f"average over the positions whose target is not ignore_index ({ignore}) only: "
        "padding neither adds to the sum nor counts in the mean"
    )
    return [
        (
            s(szegedy=True),
            "spread ε over all V tokens, the target included: ε · mean over V of (−log p) "
            "(F.cross_entropy's label_smoothing), not ε/(V − 1) on the other tokens",
        ),
        (s(divide_all=True), pad_hint),
        (s(count_padding=True), pad_hint),
        (
            s(no_one_minus=True),
            "the target's term is weighted by 1 − ε: (1 − ε) · (−log p[target]) + ε · "
            "mean over V of (−log p)",
        ),
        (
            s(uniform_sum=True),
            "the smoothing term is ε times the *mean* over the V tokens of −log p (ε/V on "
            "each), not the sum",
        ),
        (s(reduce="sum"), "return the mean over the non-ignored positions, not the sum"),
    ]


def _loss_cases():
    g = torch.Generator().manual_seed(123)
    logits = torch.randn(3, 5, 11, generator=g) * 3
    targets = torch.randint(1, 11, (3, 5), generator=g)
    targets[0, 3:], targets[2, 1:] = -100, -100
    flat = torch.randn(8, 7, generator=g) * 2
    flat_t = torch.randint(1, 7, (8,), generator=g)
    flat_t[[1, 4, 5]] = 0
    big = torch.randn(2, 3, 6, generator=g) * 1e4
    big_t = torch.randint(0, 6, (2, 3), generator=g)
    big_t[1, 2] = -100
    plain = torch.randn(4, 6, 9, generator=g)
    plain_t = torch.randint(0, 9, (4, 6), generator=g)
    return [
        ("logits (3, 5, 11), ε = 0.1, padding = -100", logits, targets, 0.1, -100),
        ("logits (8, 7), ε = 0.3, ignore_index = 0", flat, flat_t, 0.3, 0),
        ("logits (4, 6, 9), ε = 0 (plain cross-entropy), no padding", plain, plain_t, 0.0, -100),
        ("logits (2, 3, 6) of size ~1e4, ε = 0.1", big, big_t, 0.1, -100),
    ]


@checks("12.3")
def check_label_smoothing(impl: Callable) -> None:
    for desc, logits, targets, eps, ignore in _loss_cases():
        case = f"label_smoothed_cross_entropy({desc})"
        x = logits.clone().requires_grad_(True)
        got = call(case, impl, x, targets.clone(), eps, ignore)
        expect_type(got, torch.Tensor, case)
        if got.dim() != 0:
            fail(
                f"{case}: the shape of the result",
                tuple(got.shape),
                (),
                "return one number, the mean over every non-ignored position (all of "
                "batch and time), as a 0-dim tensor",
            )
        g = got.item()
        if not math.isfinite(g):
            raise AssertionError(f"{case} is {g}.\nHint: {HINT_LOG_SOFTMAX}")
        want = F.cross_entropy(
            logits.double().reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            label_smoothing=eps,
            ignore_index=ignore,
        ).item()
        if near(g, want):
            expect_differentiable(got, case, HINT_DIFFERENTIABLE)
            continue
        tests = [(lambda g, w, s=s: near(g, s()), t) for s, t in _loss_suspects(
            logits, targets, eps, ignore)]  # fmt: skip
        fail(case, g, want, diagnose(g, want, tests))
    logits, targets = (
        torch.randn(4, 5, generator=torch.Generator().manual_seed(1230)),
        torch.tensor([1, 2, 3, 4]),
    )
    for eps in (1.0, -0.1):
        expect_value_error(
            f"smoothing = {eps}",
            lambda eps=eps: impl(logits, targets, eps),
            "ε must be in [0, 1): raise a ValueError for any other smoothing",
        )
    expect_value_error(
        "every target = ignore_index",
        lambda: impl(logits, torch.full((4,), -100), 0.1),
        "a mean over no position is 0/0: raise a ValueError when every target is ignore_index",
    )
    for what, bad in [
        ("logits (4, 5) and targets (5,)", (logits, torch.zeros(5, dtype=torch.long))),
        ("logits (2, 3, 5) and targets (2, 4)",
         (torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))),
    ]:  # fmt: skip
        expect_value_error(
            what,
            lambda bad=bad: impl(*bad, 0.1),
            "check the shapes first: logits must be targets.shape + (V,); raise a "
            "ValueError naming both shapes",
        )


# ------------------------------------------------------------------ 12.4 beam search


def _random_model(V: int, seed: int):
    """A deterministic 'language model' over V tokens whose next-token distribution depends
    on the whole prefix (token 1 = BOS, 0 = EOS)."""
    weight = torch.randn(V, V, generator=torch.Generator().manual_seed(seed)) * 2

    def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        mixed = weight[prefixes[:, -1]] + 0.5 * weight[prefixes.sum(1) % V]
        return torch.log_softmax(mixed, dim=-1)

    return next_log_probs


def _table_model(table: dict[tuple[int, ...], list[float]], V: int):
    def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        rows = [table.get(tuple(p[1:]), [1.0 / V] * V) for p in prefixes.tolist()]
        return torch.tensor(rows, dtype=torch.float64).log().float()

    return next_log_probs


def _spec_beam(step, bos, eos, beam, max_len, lp, *, normalise=True, count_bos=False,
               shrink=True, keep_live=False, per_prefix=False, unterminated=True,
               return_normalised=False, with_bos=False):  # fmt: skip
    """The docstring's beam search, in float64, one prefix at a time; flags: mistakes."""
    live, finished = [([bos], 0.0)], []
    for _ in range(max_len):
        k = beam - len(finished) if shrink else beam
        cands = []
        for seq, score in live:
            logp = step(torch.tensor([seq]))[0].double()
            rows = [(score + float(logp[t]), seq + [t]) for t in range(logp.shape[0])]
            if per_prefix:
                rows = sorted(rows, key=lambda c: -c[0])[:k]
            cands += rows
        order = sorted(range(len(cands)), key=lambda i: -cands[i][0])  # stable
        ranked = [cands[i] for i in order]
        if per_prefix:
            chosen = ranked
        elif keep_live:  # fill the beam with live prefixes, finishing EOS ones on the way
            chosen, n_live = [], 0
            for c in ranked:
                if n_live == beam:
                    break
                chosen.append(c)
                n_live += c[1][-1] != eos
        else:
            chosen = ranked[: max(k, 0)]
        live = []
        for score, seq in chosen:
            (finished if seq[-1] == eos else live).append((seq, score))
        if not live:
            break
    if unterminated:
        finished += live

    def norm(h):
        n = len(h[0]) - (0 if count_bos else 1)
        return h[1] / n**lp if normalise else h[1]

    out = sorted(finished, key=norm, reverse=True)[:beam]
    return [
        (seq if with_bos else seq[1:], norm((seq, s)) if return_normalised else s) for seq, s in out
    ]


def _same(got, want) -> bool:
    return len(got) == len(want) and all(
        g[0] == w[0] and near(g[1], w[1]) for g, w in zip(got, want, strict=True)
    )


_HINT_SHRINK = (
    "the beam shrinks as hypotheses finish: keep the k = beam_size − len(finished) best "
    "candidates at each step, EOS ones included (not beam_size every step, and not "
    "beam_size live prefixes)"
)


def _beam_suspects(args):
    def s(**kw):
        return lambda: _spec_beam(*args, **kw)

    return [
        (s(with_bos=True), "return the tokens after BOS: seq[1:], not the whole sequence"),
        (
            s(return_normalised=True),
            "rank by the normalised score, but return each hypothesis's summed, "
            "unnormalised log-probability",
        ),
        (
            s(count_bos=True),
            "len is the number of tokens after BOS (EOS included): do not count BOS when "
            "normalising",
        ),
        (
            s(normalise=False),
            "rank the finished hypotheses by log_prob / len ** length_penalty, not by the raw sum",
        ),
        (
            s(unterminated=False),
            "after max_len steps the prefixes still live count as finished (unterminated "
            "hypotheses): add them before ranking",
        ),
        (
            s(per_prefix=True),
            "keep the k best candidates over all live prefixes together (flatten the "
            "(N, V) scores and take one topk), not k per prefix",
        ),
        (s(keep_live=True), _HINT_SHRINK),
        (s(shrink=False), _HINT_SHRINK),
    ]


def _nbest(case: str, got, beam: int) -> list[tuple[list[int], float]]:
    """The learner's n-best list, checked for its form, as plain lists and floats."""
    expect_type(got, list, f"{case}: the result (a list of (tokens, log_prob))")
    if not 1 <= len(got) <= beam:
        hint = None
        if not got:
            hint = (
                "return at least one hypothesis: after max_len steps the prefixes still "
                "live count as finished (unterminated hypotheses)"
            )
        fail(f"{case}: the number of hypotheses returned", len(got), f"1 … {beam}", hint)
    out = []
    for j, item in enumerate(got):
        if not isinstance(item, tuple | list) or len(item) != 2:
            fail(f"{case}: hypothesis {j}", item, "a pair (tokens, log_prob)", None)
        tokens, score = item
        expect_type(tokens, list, f"{case}: the tokens of hypothesis {j}")
        for t in tokens:
            expect_type(t, int, f"{case}: a token of hypothesis {j}")
        expect_type(score, (float, int), f"{case}: the log_prob of hypothesis {j}")
        out.append((list(tokens), float(score)))
    return out


def _which(got, args) -> str | None:
    """The hint of the first mistake whose n-best list is ``got``."""
    for make, hint in _beam_suspects(args):
        if _same(got, make()):
            return hint
    return None


def _show(hyps) -> str:
    return "[" + ", ".join(f"({h[0]}, {fmt(h[1])})" for h in hyps) + "]"


def _exhaustive(step, bos, eos, V, max_len, lp):
    best = None
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                continue  # EOS only at the end; shorter than max_len only when ended
            full = torch.tensor([bos, *seq])
            score = sum(float(step(full[None, : i + 1])[0, full[i + 1]]) for i in range(n))
            if best is None or score / n**lp > best[2]:
                best = (list(seq), score, score / n**lp)
    return best


@checks("12.4")
def check_beam_search(impl: Callable) -> None:
    BOS, EOS = 1, 0

    def run(case, step, beam, max_len, lp):
        got = call(case, impl, step, BOS, EOS, beam_size=beam, max_len=max_len,
                   length_penalty=lp)  # fmt: skip
        return _nbest(case, got, beam)

    # 1. A beam wide enough to keep every prefix is an exhaustive search.
    for lp in (0.0, 1.0):
        step = _random_model(4, seed=5)
        case = (
            f"beam_size=64, V=4, max_len=3, length_penalty={lp} (a beam that prunes nothing: "
            "an exhaustive search for the highest log_prob / len ** length_penalty)"
        )
        got = run(case, step, 64, 3, lp)
        seq, score, _ = _exhaustive(step, BOS, EOS, 4, 3, lp)
        if got[0][0] != seq or not near(got[0][1], score):
            hint = _which(got, (step, BOS, EOS, 64, 3, lp))
            fail(f"{case}: the best hypothesis", tuple(got[0]), (seq, score), hint)
    # 2. A beam of 1 is greedy search.
    for seed, lp in ((0, 0.0), (1, 1.0), (2, 1.0)):
        step = _random_model(6, seed)
        case = (
            f"beam_size=1, V=6, max_len=8, length_penalty={lp} (random model {seed}): greedy "
            "search, the best token at every step until EOS"
        )
        got = run(case, step, 1, 8, lp)
        tokens, score = greedy_search(step, BOS, EOS, 8)
        if len(got) != 1 or got[0][0] != tokens or not near(got[0][1], score):
            hint = _which(got, (step, BOS, EOS, 1, 8, lp))
            fail(case, _show(got), _show([(tokens, score)]), hint)
    # 3. A model where the likeliest first token leads nowhere: a beam of 2 finds better.
    table = {
        (): [0.05, 0.0, 0.0, 0.5, 0.4, 0.05],
        (3,): [0.3, 0.0, 0.0, 0.0, 0.35, 0.35],
        (4,): [0.95, 0.0, 0.0, 0.0, 0.0, 0.05],
        (3, 4): [0.9, 0, 0, 0, 0, 0.1],
        (3, 5): [0.9, 0, 0, 0, 0, 0.1],
    }
    step = _table_model({k: [max(p, 1e-9) for p in v] for k, v in table.items()}, 6)
    case = (
        "beam_size=2 on a model where greedy's first token 3 (p 0.5) leads to 3, 4, EOS "
        "(p 0.1575): the beam also keeps 4 and finds 4, EOS (0.4 · 0.95 = 0.38)"
    )
    got = run(case, step, 2, 3, 0.0)
    if got[0][0] != [4, 0] or not near(got[0][1], math.log(0.38)):
        hint = _which(got, (step, BOS, EOS, 2, 3, 0.0))
        fail(f"{case}: the best hypothesis", tuple(got[0]), ([4, 0], math.log(0.38)), hint)
    # 4. The whole n-best list against the docstring, restated here.
    for seed, V, beam, max_len, lp in [
        (7, 5, 3, 4, 0.0), (8, 5, 3, 5, 1.0), (9, 6, 4, 3, 0.5), (10, 4, 2, 6, 1.0),
        (11, 7, 3, 2, 1.0),
    ]:  # fmt: skip
        step = _random_model(V, seed)
        case = f"beam_size={beam}, V={V}, max_len={max_len}, length_penalty={lp} (model {seed})"
        got = run(case, step, beam, max_len, lp)
        args = (step, BOS, EOS, beam, max_len, lp)
        want = _spec_beam(*args)
        if not _same(got, want):
            hint = _which(got, args)
            fail(case, _show(got), _show(want), hint or (
                "follow the docstring step by step: a candidate scores its prefix's summed "
                "log-probability plus the token's; keep the k = beam_size − finished best "
                "candidates over all prefixes, EOS ones finished, then rank"))  # fmt: skip
    step = _random_model(4, 0)
    for what, kw in (("beam_size=0", dict(beam_size=0, max_len=5)),
                     ("max_len=0", dict(beam_size=2, max_len=0))):  # fmt: skip
        expect_value_error(
            what,
            lambda kw=kw: impl(step, BOS, EOS, length_penalty=0.0, **kw),
            "raise a ValueError when beam_size < 1 or max_len < 1: there would be no "
            "hypothesis to return",
        )
