"""Checks of chapter 5: layer_norm, FeedForward.forward, Block.forward.

The judges are PyTorch's own layers: ``torch.nn.functional.layer_norm``, ``nn.Linear`` +
``nn.GELU`` and ``nn.TransformerEncoderLayer`` with the same weights. A wrong answer is
compared with the outputs of typical mistakes, to name the likely one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.block import Block, FeedForward
from lmkit.checks import call, close, compare, expect_tensor, expect_type
from lmkit.grading import checks

# ---------------------------------------------------------------------------- helpers


def _expect_like(got: object, want: torch.Tensor, case: str) -> torch.Tensor:
    """A tensor of ``want``'s shape and dtype (the input's), detached for comparing."""
    expect_tensor(got, tuple(want.shape), case)
    assert isinstance(got, torch.Tensor)
    if got.dtype != want.dtype:
        raise AssertionError(
            f"{case} should have dtype {want.dtype} (the input's dtype), got {got.dtype}"
        )
    return got.detach()


# ---------------------------------------------------------------------- 5.1 layer_norm

HINT_UNBIASED = (
    "that is the unbiased variance (÷ (C − 1)): torch.var and Tensor.var divide by C − 1 "
    "by default. LayerNorm uses the biased one, ÷ C: x.var(dim=-1, unbiased=False, "
    "keepdim=True) or ((x - mean) ** 2).mean(dim=-1, keepdim=True)"
)
HINT_EPS = "eps goes inside the square root: (x - mean) / sqrt(var + eps), not / (sqrt(var) + eps)"


def _layer_norm_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None, float]]:
    g = torch.Generator().manual_seed(5)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    C = 8
    w, b = 1 + 0.5 * randn(C), 0.5 * randn(C)
    near_constant = 3.0 + 1e-3 * randn(2, 3, C)  # variance ≈ 1e-6, well below eps
    near_constant[0, 0] = 3.0  # and one row exactly constant: variance 0
    return [
        ("layer_norm(x (2, 3, 8), weight, bias)", randn(2, 3, C), w, b, 1e-5),
        ("layer_norm of a batch of 5 vectors (5, 8)", 2 + 3 * randn(5, C), w, b, 1e-5),
        ("layer_norm(x, weight, bias=None)", randn(2, 3, C), w, None, 1e-5),
        ("layer_norm(x, weight, bias, eps=0.1)", randn(4, C), w, b, 0.1),
        ("layer_norm of near-constant rows (variance ≈ 1e-6 < eps)", near_constant, w, b, 1e-5),
        ("layer_norm of rows with a large offset (1000 + N(0, 1), C = 64)",
         1000 + randn(3, 64), 1 + 0.5 * randn(64), 0.5 * randn(64), 1e-5),
    ]  # fmt: skip


def _ln_suspects(x, w, b, eps) -> list[tuple[Callable[[], torch.Tensor], str]]:
    shift = 0 if b is None else b

    def affine(y: torch.Tensor) -> torch.Tensor:
        return y * w + shift

    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    return [
        (lambda: affine((x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps)), HINT_UNBIASED),
        (lambda: affine((x - mean) / (torch.sqrt(var) + eps)), HINT_EPS),
        # With eps = 0.1 a fixed 1e-5 and no eps at all agree to ~1e-5: one hint for both.
        (
            lambda: affine((x - mean) / torch.sqrt(var)),
            "eps was not used: use the eps argument, (x - mean) / sqrt(var + eps) — not a "
            "fixed 1e-5, and not no eps at all",
        ),
        (
            lambda: affine(
                (x - x.mean(0, keepdim=True))
                / torch.sqrt(x.var(0, unbiased=False, keepdim=True) + eps)
            ),
            "that normalises over the first dimension (across the batch, like BatchNorm): "
            "LayerNorm normalises each vector over its last dimension, dim=-1",
        ),
        (
            lambda: affine((x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps)),
            "that normalises over the whole tensor: LayerNorm normalises each vector "
            "x[..., :] on its own, over dim=-1 with keepdim=True",
        ),
        (lambda: y, "weight and bias are missing: return y * weight + bias"),
        (lambda: y + shift, "multiply by weight (the gain γ): y * weight + bias"),
        (lambda: y * w, "add bias (the shift β) after multiplying by weight"),
        (lambda: (y + shift) * w, "first multiply by weight, then add bias: y * weight + bias"),
    ]


@checks("5.1")
def check_layer_norm(impl: Callable) -> None:
    for case, x, w, b, eps in _layer_norm_cases():
        want = F.layer_norm(x, (x.shape[-1],), w, b, eps)
        got = call(
            case,
            impl,
            x.clone(),
            w.clone(),
            None if b is None else b.clone(),
            eps,
            hint=lambda err, b=b: (
                "bias may be None: then add nothing"
                if b is None and isinstance(err, TypeError)
                else None
            ),
        )
        got = _expect_like(got, want, case)
        # fp32 rounding of the mean (≈ 1e-7 · offset) is amplified by 1 / sqrt(var + eps)
        atol = 2e-4 if "large offset" in case else 1e-3 if "near-constant" in case else 1e-5
        if "large offset" in case or "near-constant" in case:
            default_hint = (
                "when the mean is large compared with the spread, E[x²] − E[x]² subtracts two "
                "nearly equal numbers and loses the digits of the variance: compute the mean "
                "first, then the mean of (x − mean)² (and keep eps inside the square root, so "
                "that a constant row gives exactly the bias)"
            )
        else:
            default_hint = "compare with torch.nn.functional.layer_norm(x, (C,), weight, bias, eps)"
        compare(case, got, want, _ln_suspects(x, w, b, eps), default_hint, atol)


# ----------------------------------------------------------------- 5.2 FeedForward.forward


def _seeded_ffn(d_model: int, d_ff: int | None = None, **kw) -> FeedForward:
    with torch.random.fork_rng(devices=[]):  # the learner's random state is left alone
        torch.manual_seed(52)
        return FeedForward(d_model, d_ff, **kw).eval()


def _torch_ffn(m: FeedForward) -> nn.Module:
    """The same network from PyTorch's own layers, with m's weights."""
    ref = nn.Sequential(
        nn.Linear(m.d_model, m.d_ff, bias=m.fc.bias is not None),
        nn.GELU(approximate=m.approximate),
        nn.Linear(m.d_ff, m.d_model, bias=m.proj.bias is not None),
    )
    ref.load_state_dict({k.replace("fc.", "0.").replace("proj.", "2."): v
                         for k, v in m.state_dict().items()})  # fmt: skip
    return ref.eval()


def _ffn_suspects(m, x) -> list[tuple[Callable[[], torch.Tensor], str]]:
    other = "none" if m.approximate == "tanh" else "tanh"
    return [
        (
            lambda: m.proj(F.relu(m.fc(x))),
            "that is a ReLU: the Transformer FFN of GPT and BERT uses a GELU (F.gelu)",
        ),
        (
            lambda: m.proj(F.gelu(m.fc(x), approximate=other)),
            f"this FeedForward has approximate={m.approximate!r}: pass "
            "approximate=self.approximate to F.gelu (exact erf GELU for 'none', the tanh "
            "approximation for 'tanh')",
        ),
        (lambda: m.proj(m.fc(x)), "the GELU between the two Linear layers is missing"),
        (
            lambda: m.proj(m.fc(x) * torch.sigmoid(1.702 * m.fc(x))),
            "x · sigmoid(1.702 x) is another approximation of GELU: use F.gelu",
        ),
        (
            lambda: F.gelu(m.proj(m.fc(x)), approximate=m.approximate),
            "the GELU goes between self.fc and self.proj, not after self.proj",
        ),
        (
            lambda: m.proj(F.gelu(m.fc(x), approximate=m.approximate)) + x,
            "no residual inside the FFN: the Block adds x back (Exercise 5.3)",
        ),
    ]


HINT_LEADING = (
    "keep every leading dimension: nn.Linear and GELU act on the last one, so no reshape "
    "is needed (the input may be (T, C) as well as (B, T, C))"
)

FFN_CASES = [
    ("FeedForward(8) on x (2, 5, 8)", dict(d_model=8), (2, 5, 8)),
    ("FeedForward(8, d_ff=12, bias=False) on x (2, 5, 8)",
     dict(d_model=8, d_ff=12, bias=False), (2, 5, 8)),
    ("FeedForward(8, approximate='tanh') on x (2, 5, 8)",
     dict(d_model=8, approximate="tanh"), (2, 5, 8)),
    ("FeedForward(6, d_ff=10) on one sequence x (7, 6)", dict(d_model=6, d_ff=10), (7, 6)),
    ("FeedForward(8, dropout=0.5) in eval mode on x (2, 5, 8)",
     dict(d_model=8, dropout=0.5), (2, 5, 8)),
]  # fmt: skip


@checks("5.2")
def check_feed_forward(impl: Callable) -> None:
    g = torch.Generator().manual_seed(25)
    for case, kw, shape in FFN_CASES:
        m = _seeded_ffn(**kw)
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            want = _torch_ffn(m)(x)
            got = call(
                case,
                impl,
                m,
                x.clone(),
                hint=lambda err, x=x: (
                    HINT_LEADING
                    if x.dim() != 3 and isinstance(err, (ValueError, RuntimeError))
                    else None
                ),
            )
        expect_type(got, torch.Tensor, case)
        if got.shape != want.shape:
            if got.shape[-1] == m.d_ff:
                hint = (
                    f"the output has the hidden width d_ff = {m.d_ff}: apply self.proj to go "
                    f"back to d_model = {m.d_model}"
                )
            else:
                hint = HINT_LEADING if got.shape[:-1] != want.shape[:-1] else None
            raise AssertionError(
                f"{case}: got shape {tuple(got.shape)}, expected {tuple(want.shape)} (the "
                "input's shape)." + (f"\nHint: {hint}" if hint else "")
            )
        got = _expect_like(got, want, case)
        if "eval mode" in case and not close(got, want) and (got == 0).float().mean() > 0.2:
            raise AssertionError(
                f"{case}: {float((got == 0).float().mean()):.0%} of the output is zero.\nHint: "
                "dropout is on in eval mode: use self.dropout (an nn.Dropout follows "
                "train()/eval()), not F.dropout(..., training=True)"
            )
        with torch.no_grad():
            compare(
                case,
                got,
                want,
                _ffn_suspects(m, x),
                "dropout(proj(gelu(fc(x)))) — see the docstring",
            )

    # Training mode: dropout acts on the output, zeroing about p of it and scaling the rest.
    case = "FeedForward(8, dropout=0.5) in train mode on x (4, 16, 8)"
    m = _seeded_ffn(8, dropout=0.5).train()
    x = torch.randn(4, 16, 8, generator=g)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        clean = _torch_ffn(m)(x)
        torch.manual_seed(0)
        got = _expect_like(impl(m, x.clone()), clean, case)
    zeros = got == 0
    kept = ~zeros
    if not zeros.any() and close(got, clean):
        raise AssertionError(
            f"{case}: no output was dropped.\nHint: apply self.dropout to the output "
            "(after self.proj); in train() mode it zeroes each value with probability p"
        )
    if not (0.3 < zeros.float().mean() < 0.7) or not torch.allclose(
        got[kept], clean[kept] / 0.5, rtol=1e-4, atol=1e-5
    ):
        raise AssertionError(
            f"{case}: the output is not the network's output with dropout applied to it.\n"
            "Hint: dropout goes last, on the output of self.proj (dropout on the hidden layer "
            "is another model); each value kept is scaled by 1 / (1 − p)"
        )


# ---------------------------------------------------------------------- 5.3 Block.forward


def seeded_block(d_model: int = 16, n_heads: int = 4, **kw) -> Block:
    """A Block with seeded weights and distinct LayerNorms: the 5.3 check's subject, also
    used by tests/test_block.py with :func:`torch_block` as its judge."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(53)
        block = Block(d_model, n_heads, **kw).eval()
        # Distinct, non-trivial LayerNorms, so that using ln1 twice cannot go unnoticed.
        for ln in (block.ln1, block.ln2):
            ln.weight.copy_(1 + 0.3 * torch.randn(d_model))
            if ln.bias is not None:
                ln.bias.copy_(0.2 * torch.randn(d_model))
    return block


def torch_block(block: Block) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer with the block's weights (torch's own implementation)."""
    bias = block.attn.qkv.bias is not None
    ref = nn.TransformerEncoderLayer(
        block.attn.d_model,
        block.attn.n_heads,
        block.ffn.d_ff,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=block.ln1.eps,
        batch_first=True,
        norm_first=block.norm_first,
        bias=bias,
    )
    pairs = {
        "self_attn.in_proj_weight": block.attn.qkv.weight,
        "self_attn.out_proj.weight": block.attn.proj.weight,
        "linear1.weight": block.ffn.fc.weight,
        "linear2.weight": block.ffn.proj.weight,
        "norm1.weight": block.ln1.weight,
        "norm2.weight": block.ln2.weight,
    }
    if bias:
        pairs |= {
            "self_attn.in_proj_bias": block.attn.qkv.bias,
            "self_attn.out_proj.bias": block.attn.proj.bias,
            "linear1.bias": block.ffn.fc.bias,
            "linear2.bias": block.ffn.proj.bias,
            "norm1.bias": block.ln1.bias,
            "norm2.bias": block.ln2.bias,
        }
    ref.load_state_dict({k: v.detach() for k, v in pairs.items()})
    return ref.eval()


def _torch_forward(block, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """The expected output; ``pad`` is (B, T), True at padding (torch's convention)."""
    T = x.shape[1]
    blocked = torch.ones(T, T, dtype=torch.bool).triu(1) if block.causal else None
    # With gradients on, PyTorch takes its plain path (no fused inference kernel).
    with torch.enable_grad():
        out = torch_block(block)(
            x, src_mask=blocked, src_key_padding_mask=pad, is_causal=block.causal
        )
    return out.detach()


def _wiring(block, x, allowed, *, norm_first=None, residual=True, same_ln=False,
            add_to_normed=False) -> torch.Tensor:  # fmt: skip
    """The block wired as told, with reference sub-layers (the typical mistakes)."""
    import solutions.block as ref

    def ln(m, h):
        return ref.layer_norm(h, m.weight, m.bias, m.eps)

    ln1 = lambda h: ln(block.ln1, h)  # noqa: E731
    ln2 = (lambda h: ln(block.ln1, h)) if same_ln else (lambda h: ln(block.ln2, h))  # noqa: E731
    attn = lambda h: ref._ReferenceAttention.forward(block.attn, h, allowed)  # noqa: E731
    ffn = lambda h: ref.FeedForward.forward(block.ffn, h)  # noqa: E731
    r = 1.0 if residual else 0.0
    if block.norm_first if norm_first is None else norm_first:
        h = ln1(x)
        x = (h if add_to_normed else x) * r + attn(h)
        h = ln2(x)
        return (h if add_to_normed else x) * r + ffn(h)
    x = ln1(x * r + attn(x))
    return ln2(x * r + ffn(x))


def _block_suspects(block, x, allowed, pad_allowed):
    T = x.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    other = "post" if block.norm_first else "pre"
    return [
        (
            lambda: _wiring(block, x, allowed, residual=False),
            "the residual connections are missing: add each sub-layer's output to its input "
            "(x = x + attn(ln1(x)) in pre-norm)",
        ),
        (
            lambda: _wiring(block, x, allowed, norm_first=not block.norm_first),
            f"that is {other}-norm: with norm_first={block.norm_first} "
            + (
                "the LayerNorm goes on each sub-layer's *input* (x = x + attn(ln1(x))), "
                "not after the residual sum"
                if block.norm_first
                else "the LayerNorm goes after the residual sum (x = ln1(x + attn(x)))"
            ),
        ),
        (
            lambda: _wiring(block, x, allowed, same_ln=True),
            "the same LayerNorm is used twice: ln1 goes with attention and ln2 with the "
            "feed-forward network; each has its own weights",
        ),
        (
            lambda: _wiring(block, x, allowed, add_to_normed=True),
            "the residual adds the sub-layer's output to x itself, not to ln(x): "
            "x = x + attn(ln1(x))",
        ),
        (
            lambda: _wiring(block, x, pad_allowed),
            "this block is causal: pass causal_mask(T) to self.attn (combined with mask by &), "
            "or every token sees the future",
        ),
        (
            lambda: _wiring(block, x, causal if pad_allowed is None else causal & pad_allowed),
            "this block is not causal (an encoder, like BERT's): every token may attend to "
            "every token, so pass no causal mask",
        ),
        (
            lambda: _wiring(block, x, causal if block.causal else None),
            "the mask argument was ignored: combine it with the causal mask, mask & causal_mask(T)",
        ),
        (
            lambda: _wiring(block, x, ~causal if block.causal else None),
            "the mask is inverted: in lmkit True means *may attend* (causal_mask(T) is True on "
            "and below the diagonal), the opposite of nn.MultiheadAttention's attn_mask",
        ),
    ]


BLOCK_CASES = [
    ("Block(16, 4) (pre-norm, causal: GPT-2's block)", dict(), False),
    ("Block(16, 4, causal=False) (pre-norm encoder)", dict(causal=False), False),
    ("Block(16, 4, causal=False, norm_first=False) (post-norm encoder: BERT's block)",
     dict(causal=False, norm_first=False), False),
    ("Block(16, 4, norm_first=False) (post-norm, causal)", dict(norm_first=False), False),
    ("Block(16, 4, d_ff=24, bias=False)", dict(d_ff=24, bias=False), False),
    ("Block(16, 4) with a padding mask (B, 1, 1, T)", dict(), True),
    ("Block(16, 4, causal=False) with a padding mask (B, 1, 1, T)", dict(causal=False), True),
]  # fmt: skip


@checks("5.3")
def check_block(impl: Callable) -> None:
    g = torch.Generator().manual_seed(35)
    B, T = 2, 6
    for case, kw, padded in BLOCK_CASES:
        block = seeded_block(**kw)
        x = torch.randn(B, T, 16, generator=g)
        pad = None
        if padded:  # the second sequence is 4 tokens long, then padding
            pad = torch.zeros(B, T, dtype=torch.bool)
            pad[1, 4:] = True
        allowed_pad = None if pad is None else ~pad[:, None, None, :]
        want = _torch_forward(block, x, pad)
        with torch.no_grad():
            args = (x.clone(),) if pad is None else (x.clone(), allowed_pad)
            got = call(
                case,
                impl,
                block,
                *args,
                hint=lambda err: (
                    "forward takes (x, mask=None): an optional extra mask"
                    if isinstance(err, TypeError) and "argument" in str(err)
                    else None
                ),
            )
        got = _expect_like(got, want, case)
        if pad is not None:
            # Outputs at padded positions are nobody's business (torch leaves them too).
            keep = ~pad[:, :, None]
            got, want = got * keep, want * keep
        if close(got, want):
            continue
        T_ = x.shape[1]
        causal = torch.ones(T_, T_, dtype=torch.bool).tril()
        allowed = causal if block.causal else None
        if allowed_pad is not None:
            allowed = allowed_pad if allowed is None else allowed_pad & causal
        with torch.no_grad():
            suspects = _block_suspects(block, x, allowed, allowed_pad)
            if pad is not None:
                keep = ~pad[:, :, None]
                suspects = [(lambda f=f: f() * keep, h) for f, h in suspects]
            compare(
                case,
                got,
                want,
                suspects,
                "compare with the docstring step by step: the mask, then the two residual "
                "branches in the order of norm_first",
            )
