"""Checks of chapter 10: mean_pool, LoRALinear.forward, add_lora.

The judges: for :func:`~lmkit.finetune.mean_pool`, the mean of each row's real vectors
taken row by row in float64; for :meth:`~lmkit.finetune.LoRALinear.forward`, the formula
``x Wᵀ + b + (alpha / r) · (x Aᵀ) Bᵀ`` written out in float64 (and the layer's own
``merged()`` ``nn.Linear``), with its gradients; for :func:`~lmkit.finetune.add_lora`, the
structure of the adapted model (which layers were swapped, what they wrap, what may still
train), never its forward pass — that would run Exercise 10.2. A wrong answer is compared
with the mistakes learners really make, to name the likely one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from lmkit.checks import (
    call,
    compare,
    expect_finite,
    expect_type,
    expect_unchanged,
    expect_value_error,
    fmt,
)
from lmkit.finetune import LoRALinear
from lmkit.grading import checks

# ---------------------------------------------------------------------------- helpers


# ---------------------------------------------------------------------- 10.1 mean_pool

HINT_POOL = (
    "sum hidden over the real tokens, (hidden * padding_mask.unsqueeze(-1)).sum(1), and "
    "divide by their number, padding_mask.sum(1) clamped to at least 1"
)
HINT_EMPTY = "an all-padding row must give zeros, not NaN (clamp the count to at least 1)"
HINT_MASK_DTYPE = (
    "padding_mask may be bool or 0/1 integers or floats: turn it into weights, "
    "padding_mask.to(hidden.dtype), or into a bool mask, padding_mask.bool() — a 0/1 "
    "integer tensor used as an index picks positions 0 and 1, not the real tokens"
)
HINT_BROADCAST = (
    "padding_mask is (B, T) and hidden (B, T, C): give the mask a last dimension, "
    "padding_mask.unsqueeze(-1), so that it broadcasts over C"
)
HINT_POOL_SHAPES = (
    "check hidden.dim() == 3 and padding_mask.shape == hidden.shape[:2], and raise a "
    "ValueError otherwise (a (T,) mask would silently broadcast over the batch)"
)


def _pool_case(
    seed: int, B: int, T: int, C: int, lengths: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden with padding vectors far from the real ones, and a bool mask: the first
    ``lengths[b]`` tokens of row b are real, or (no lengths) a random pattern."""
    g = torch.Generator().manual_seed(seed)
    if lengths is not None:
        mask = torch.arange(T) < torch.tensor(lengths)[:, None]
    else:
        mask = torch.rand(B, T, generator=g) < 0.6
        mask[:, 1] = True  # at least one real token per row, not always the first
    hidden = torch.randn(B, T, C, generator=g)
    hidden[~mask] += 5.0  # padding vectors are garbage, not zeros
    return hidden, mask


def _pool_want(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row by row, in float64: the mean of the real vectors, zeros for an empty row."""
    keep = mask.bool()
    rows = [
        hidden[b][keep[b]].double().mean(0)
        if keep[b].any()
        else torch.zeros(hidden.shape[-1], dtype=torch.float64)
        for b in range(hidden.shape[0])
    ]
    return torch.stack(rows)


def _pool_suspects(hidden: torch.Tensor, mask: torch.Tensor):
    h = hidden.double()
    T = h.shape[1]
    m = mask.double().unsqueeze(-1)
    count = m.sum(1)
    suspects: list[tuple[Callable[[], torch.Tensor], str]] = [
        (
            lambda: h.mean(1),
            "padding vectors must not enter the sum nor the count: average over the real "
            "tokens only — (hidden * padding_mask.unsqueeze(-1)).sum(1) / padding_mask.sum(1)",
        ),
        (lambda: (h * m).sum(1) / T, "divide by the number of real tokens, not by T"),
        (
            lambda: h.sum(1) / count.clamp(min=1),
            "padding vectors must not enter the sum: multiply hidden by the mask "
            "(padding_mask.unsqueeze(-1)) before summing over T",
        ),
        (
            lambda: (h * m).sum(1),
            "divide the sum by the number of real tokens (padding_mask.sum(1)): that is "
            "their sum, not their mean",
        ),
        (
            lambda: (h * m).sum(1) / (count + 1),
            "divide by the number of real tokens: clamp the count to at least 1 "
            "(count.clamp(min=1)), do not add 1 to it",
        ),
        (
            lambda: (h * (1 - m)).sum(1) / (T - count).clamp(min=1),
            "padding_mask is True for the real tokens and False for padding: keep the "
            "positions where it is True",
        ),
    ]
    if mask.dtype != torch.bool:
        idx = mask.long()
        suspects.append(
            (
                lambda: torch.stack([h[b][idx[b]].mean(0) for b in range(h.shape[0])]),
                HINT_MASK_DTYPE,
            )
        )
    return suspects


@checks("10.1")
def check_mean_pool(impl: Callable) -> None:
    cases = [
        ("hidden (2, 5, 4), padding at the end of row 0", _pool_case(0, 2, 5, 4, [3, 5]), None),
        ("hidden (3, 6, 8), padding anywhere in the rows", _pool_case(1, 3, 6, 8), None),
        ("hidden (1, 7, 3), no padding", _pool_case(2, 1, 7, 3, [7]), None),
        ("hidden (3, 4, 5), row 1 all padding", _pool_case(3, 3, 4, 5, [2, 0, 4]), None),
        ("hidden (2, 5, 6), padding_mask as 0/1 int64", _pool_case(4, 2, 5, 6, [2, 4]), torch.long),
        ("hidden (2, 6, 3), padding_mask as 0./1. float32", _pool_case(5, 2, 6, 3), torch.float32),
    ]  # fmt: skip
    for i, (desc, (hidden, mask), dtype) in enumerate(cases):
        case = f"mean_pool({desc})"
        if dtype is not None:
            mask = mask.to(dtype)
        given_h, given_m = hidden.clone(), mask.clone()

        def on_error(err: BaseException, dtype=dtype, i=i) -> str:
            if dtype is not None:
                return HINT_MASK_DTYPE
            if i == 0 and isinstance(err, RuntimeError):
                return HINT_BROADCAST
            return HINT_POOL

        got = call(case, impl, given_h, given_m, hint=on_error)
        expect_type(got, torch.Tensor, case)
        B, T, C = hidden.shape
        if tuple(got.shape) != (B, C):
            raise AssertionError(
                f"{case}: got shape {tuple(got.shape)}, expected {(B, C)}.\nHint: one vector "
                "per sequence: sum and count over the time dimension (dim=1)"
                + (f" — {HINT_BROADCAST}" if got.dim() > 2 else "")
            )
        if got.dtype != hidden.dtype:
            raise AssertionError(
                f"{case}: got dtype {got.dtype}, expected {hidden.dtype} (hidden's dtype).\n"
                "Hint: turn the mask into weights of hidden's dtype: padding_mask.to(hidden.dtype)"
            )
        for name, given, original in [("hidden", given_h, hidden), ("padding_mask", given_m, mask)]:
            expect_unchanged(
                given,
                original,
                f"{case}: {name}",
                "do not zero the padding vectors in hidden itself (hidden[~mask] = 0 changes "
                "the caller's tensor): multiply by the mask instead, "
                "hidden * padding_mask.unsqueeze(-1)",
            )
        want = _pool_want(hidden, mask)
        if torch.isnan(got).any():
            empty = ~mask.bool().any(1)
            if empty.any() and torch.isnan(got[empty]).any():
                raise AssertionError(f"{case}: the all-padding row gives NaN.\nHint: {HINT_EMPTY}")
        compare(
            case,
            got,
            want,
            _pool_suspects(hidden, mask),
            HINT_MASK_DTYPE if dtype is not None else HINT_POOL,
        )

    # Differentiable, and no NaN in the gradient either (an all-padding row included).
    hidden, mask = _pool_case(3, 3, 4, 5, [2, 0, 4])
    case = "mean_pool(hidden (3, 4, 5), row 1 all padding) in a backward pass"
    h = hidden.clone().requires_grad_(True)
    # (The same inputs as case 4 above, which ran without a crash and left them intact.)
    got = call(case, impl, h, mask.clone())
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        raise AssertionError(
            f"{case}: the result is not connected to hidden, so the encoder gets no gradient."
            "\nHint: keep it a torch computation on hidden (no .item(), numpy or .detach())"
        )
    weights = torch.tensor([1 / 2, 1.0, 1 / 4])[:, None, None] * mask[..., None]
    gout = torch.randn(3, 5, generator=torch.Generator().manual_seed(10))
    got.backward(gout)
    if h.grad is None:
        raise AssertionError(f"{case}: hidden received no gradient")
    expect_finite(
        h.grad,
        f"{case}: the gradient with respect to hidden",
        f"{HINT_EMPTY} — replacing the NaN afterwards (torch.where, nan_to_num) still lets "
        "the 0/0 into the gradient",
    )
    compare(case + ": the gradient with respect to hidden", h.grad, weights * gout[:, None, :],
            [], HINT_POOL)  # fmt: skip

    # The errors the docstring promises.
    hidden, _ = _pool_case(6, 2, 5, 4, [5, 5])
    for what, h, m in [
        ("hidden (2, 5, 4) and padding_mask (2, 6)", hidden, torch.ones(2, 6, dtype=torch.bool)),
        ("hidden (2, 5, 4) and padding_mask (5,)", hidden, torch.ones(5, dtype=torch.bool)),
        ("hidden (5, 4) (no batch dimension) and padding_mask (5,)", hidden[0],
         torch.ones(5, dtype=torch.bool)),
    ]:  # fmt: skip
        expect_value_error(
            f"mean_pool({what})", lambda h=h, m=m: impl(h.clone(), m.clone()), HINT_POOL_SHAPES
        )


# ------------------------------------------------------------ 10.2 LoRALinear.forward

HINT_LORA = "self.base(x) + self.scaling * (self.dropout(x) @ self.A.T) @ self.B.T"
HINT_ORDER = (
    "the update is B A x: multiply by A.T first, then B.T — for x of shape "
    "(..., in_features), (x @ self.A.T) is (..., r) and (... @ self.B.T) is (..., out_features)"
)
HINT_LORA_LEADING = (
    "x may have any leading dimensions (..., in_features): use @ (torch.matmul), which acts "
    "on the last dimension, not torch.mm or a reshape to 2-D without reshaping back"
)
HINT_BRANCH_ONLY = (
    "apply self.dropout to the input of the low-rank branch only: the frozen base layer "
    "sees x itself, and its output is not dropped"
)
HINT_DROP_INPUT = (
    "apply self.dropout to the input x of the low-rank branch, "
    "(self.dropout(x) @ self.A.T) @ self.B.T, not to an intermediate or to its output"
)
HINT_DENSE = (
    "never form the (out, in) matrix B @ A: the update is B A x, so multiply by A.T first, "
    "then B.T — (self.dropout(x) @ self.A.T) @ self.B.T costs r · (in + out) per token; "
    "B @ A alone costs out · r · in, and the full matrix is what LoRA avoids"
)


def _lora_layer(
    in_f: int, out_f: int, r: int, alpha: float, *, bias: bool = True, dropout: float = 0.0
) -> LoRALinear:
    """A LoRALinear with seeded non-zero A and B (B starts at zero, which would hide
    every mistake in the update) and a sizeable bias, in eval mode."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(102 + in_f + 7 * out_f + 31 * r)
        base = nn.Linear(in_f, out_f, bias=bias)
        if bias:
            base.bias.copy_(torch.randn(out_f))
        layer = LoRALinear(base, r=r, alpha=alpha, dropout=dropout)
        layer.A.copy_(0.5 * torch.randn(r, in_f))
        layer.B.copy_(0.5 * torch.randn(out_f, r))
    return layer.eval()


def _lora_parts(layer: LoRALinear, x: torch.Tensor):
    """``x Wᵀ``, ``b`` (or 0) and the unscaled update ``(x Aᵀ) Bᵀ``, in float64."""
    W = layer.base.weight.detach().double()
    b = 0.0 if layer.base.bias is None else layer.base.bias.detach().double()
    A, B = layer.A.detach().double(), layer.B.detach().double()
    xd = x.detach().double()
    return xd @ W.T, b, (xd @ A.T) @ B.T


def _lora_want(layer: LoRALinear, x: torch.Tensor) -> torch.Tensor:
    xw, b, update = _lora_parts(layer, x)
    return xw + b + layer.scaling * update


def _lora_suspects(layer: LoRALinear, x: torch.Tensor):
    xw, b, u = _lora_parts(layer, x)
    s, r, alpha = layer.scaling, layer.r, layer.alpha
    A, B = layer.A.detach().double(), layer.B.detach().double()
    xd = x.double()
    return [
        (
            lambda: xw + b + alpha * u,
            "scale the low-rank update by alpha / r (self.scaling), not alpha",
        ),
        (
            lambda: xw + b + u,
            "scale the low-rank update by self.scaling = alpha / r: yours has no factor",
        ),
        (
            lambda: xw + b + (r / alpha) * u,
            "the scaling is alpha / r (self.scaling), not r / alpha",
        ),
        (
            lambda: xw + s * u,
            "keep the frozen base layer's output (and its bias): self.base(x), not x @ W.T",
        ),
        (
            lambda: s * u,
            "add the frozen base layer's output self.base(x): LoRA adds an update to the "
            "pre-trained layer, it does not replace it",
        ),
        (
            lambda: xw + b,
            "the low-rank update is missing: add self.scaling * (self.dropout(x) @ self.A.T) "
            "@ self.B.T to self.base(x)",
        ),
        (lambda: xw + b + s * (xd @ B @ A), HINT_ORDER),
    ]


class _DenseWatch(TorchFunctionMode):
    """Records matrix products whose result has the shape of the dense ``(out, in)``
    update (or its transpose)."""

    PRODUCTS = frozenset(
        {"matmul", "__matmul__", "__rmatmul__", "mm", "einsum", "linear", "tensordot",
         "bmm", "addmm", "multi_dot", "chain_matmul"}
    )  # fmt: skip

    def __init__(self, shapes: set[tuple[int, ...]]) -> None:
        super().__init__()
        self.shapes, self.hits = shapes, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if (
            getattr(func, "__name__", "") in self.PRODUCTS
            and isinstance(out, torch.Tensor)
            and tuple(out.shape) in self.shapes
        ):
            self.hits += 1
        return out


def _lora_call(case: str, impl: Callable, layer: LoRALinear, x: torch.Tensor) -> torch.Tensor:
    given = x.clone()

    def on_error(err: BaseException) -> str:
        if isinstance(err, RuntimeError) and x.dim() == 2:
            return HINT_ORDER
        if isinstance(err, RuntimeError):
            return HINT_LORA_LEADING
        return HINT_LORA

    got = call(case, impl, layer, given, hint=on_error)
    expect_type(got, torch.Tensor, case)
    want_shape = (*x.shape[:-1], layer.base.out_features)
    if tuple(got.shape) != want_shape:
        hint = (
            HINT_LORA_LEADING if got.numel() == x[..., :1].numel() * want_shape[-1] else HINT_ORDER
        )
        raise AssertionError(
            f"{case}: got shape {tuple(got.shape)}, expected {want_shape}.\nHint: {hint}"
        )
    if got.dtype != x.dtype:
        raise AssertionError(f"{case}: got dtype {got.dtype}, expected {x.dtype} (x's dtype).")
    expect_unchanged(given, x, f"{case}: x", f"{HINT_LORA} (no in-place ops on x)")
    return got


@checks("10.2")
def check_lora_forward(impl: Callable) -> None:
    g = torch.Generator().manual_seed(10_2)
    main = _lora_layer(6, 5, r=3, alpha=4.5)
    desc = "LoRALinear(nn.Linear(6, 5), r=3, alpha=4.5)"
    square = _lora_layer(6, 6, r=2, alpha=16.0, bias=False)
    cases = [
        (f"{desc} on x (7, 6)", main, (7, 6)),
        (f"{desc} on x (2, 4, 6)", main, (2, 4, 6)),
        (f"{desc} on a single vector x (6,)", main, (6,)),
        ("LoRALinear(nn.Linear(6, 6, bias=False), r=2, alpha=16.0) on x (3, 6)", square, (3, 6)),
    ]
    for case, layer, shape in cases:
        x = torch.randn(*shape, generator=g)
        got = _lora_call(case, impl, layer, x)
        compare(case, got, _lora_want(layer, x), _lora_suspects(layer, x), HINT_LORA)

    # Gradients: to A, B and x, none to the frozen base.
    case = f"{desc} on x (7, 6) in a backward pass"
    layer = _lora_layer(6, 5, r=3, alpha=4.5)
    x = torch.randn(7, 6, generator=g).requires_grad_(True)
    got = _lora_call(case, impl, layer, x)
    if not got.requires_grad:
        raise AssertionError(
            f"{case}: the output does not require a gradient, so A and B cannot be trained.\n"
            "Hint: keep the update in autograd: use self.A and self.B themselves (no .data, "
            ".detach() or torch.no_grad())"
        )
    gout = torch.randn(7, 5, generator=g)
    got.backward(gout)
    A, B = (
        layer.A.detach().clone().requires_grad_(True),
        layer.B.detach().clone().requires_grad_(True),
    )
    xr = x.detach().clone().requires_grad_(True)
    want = layer.base(xr) + layer.scaling * (xr @ A.T) @ B.T
    want.backward(gout)
    for name, have, expect in [("A", layer.A.grad, A.grad), ("B", layer.B.grad, B.grad)]:
        if have is None or not torch.count_nonzero(have):
            raise AssertionError(
                f"{case}: self.{name} received no gradient.\nHint: keep the update in "
                f"autograd: use self.{name} itself (no .data, .detach() or torch.no_grad())"
            )
        compare(f"{case}: the gradient of self.{name}", have, expect, [], HINT_LORA)
    if layer.base.weight.grad is not None or layer.base.weight.requires_grad:
        raise AssertionError(
            f"{case}: the frozen base weight received a gradient: the base layer must stay "
            "frozen, and forward must not change requires_grad"
        )
    if x.grad is None:
        raise AssertionError(
            f"{case}: x received no gradient.\nHint: the gradient must flow back to x through "
            "both branches (the layers below are trained too): do not detach x"
        )
    compare(
        f"{case}: the gradient with respect to x",
        x.grad,
        xr.grad,
        [(lambda: gout @ layer.base.weight.detach(), "do not detach x in the low-rank branch")],
        HINT_LORA,
    )

    # Dropout: on the input of the low-rank branch in train mode only.
    drop = _lora_layer(6, 5, r=3, alpha=4.5, dropout=0.5)
    ddesc = "LoRALinear(nn.Linear(6, 5), r=3, alpha=4.5, dropout=0.5)"
    x = torch.randn(4, 8, 6, generator=g)
    xw, b, u = _lora_parts(drop, x)
    s, A, B = drop.scaling, drop.A.detach().double(), drop.B.detach().double()

    def seeded(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                return fn()

        return run

    def dropped(t: torch.Tensor) -> torch.Tensor:
        return F.dropout(t, 0.5, training=True)

    def base_of(t: torch.Tensor) -> torch.Tensor:
        return drop.base(t.float()).detach().double()

    xd = x.double()
    case = f"{ddesc} in eval mode on x (4, 8, 6)"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = _lora_call(case, impl, drop, x)
    compare(
        case,
        got,
        _lora_want(drop, x),
        [
            (
                seeded(lambda: xw + b + s * (dropped(xd) @ A.T) @ B.T),
                "dropout is on in eval mode: use self.dropout (an nn.Dropout follows "
                "train()/eval()), not F.dropout(..., training=True)",
            ),
        ],
        HINT_LORA,
    )
    case = f"{ddesc} in train mode on x (4, 8, 6)"
    drop.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = _lora_call(case, impl, drop, x)
    drop.eval()
    full = xw + b + s * u
    if torch.allclose(got.detach().double(), full, rtol=1e-4, atol=1e-5):
        raise AssertionError(
            f"{case}: nothing was dropped.\nHint: apply self.dropout to the input of the "
            "low-rank branch, (self.dropout(x) @ self.A.T) @ self.B.T: in train() mode it "
            "zeroes each input value with probability p"
        )
    compare(
        case,
        got,
        seeded(lambda: xw + b + s * (dropped(xd) @ A.T) @ B.T)(),
        [
            (seeded(lambda: (lambda d: base_of(d) + s * (d @ A.T) @ B.T)(dropped(xd))),
             HINT_BRANCH_ONLY),
            (seeded(lambda: dropped(full)), HINT_BRANCH_ONLY),
            (seeded(lambda: xw + b + s * dropped(u)), HINT_DROP_INPUT),
            (seeded(lambda: xw + b + s * dropped(xd @ A.T) @ B.T), HINT_DROP_INPUT),
        ],
        HINT_BRANCH_ONLY,
    )  # fmt: skip

    # Efficiency: the (out, in) matrix B A is never formed.
    layer = _lora_layer(12, 10, r=2, alpha=4.0)
    case = "LoRALinear(nn.Linear(12, 10), r=2, alpha=4.0) on x (3, 4, 12)"
    x = torch.randn(3, 4, 12, generator=g)
    watch = _DenseWatch({(10, 12), (12, 10)})
    with torch.no_grad(), watch:
        got = _lora_call(case, impl, layer, x)
    compare(case, got, _lora_want(layer, x), _lora_suspects(layer, x), HINT_LORA)
    if watch.hits:
        raise AssertionError(
            f"{case}: right values, but your code formed a (10, 12) matrix — the size of "
            f"the whole weight ({fmt(120)} numbers) instead of the {fmt(2 * (12 + 10))} of A "
            f"and B.\nHint: {HINT_DENSE}"
        )

    # The same function as the merged nn.Linear (W + scaling · B A).
    case = f"{desc} on x (2, 3, 6), compared with layer.merged()"
    x = torch.randn(2, 3, 6, generator=g)
    with torch.no_grad():
        got = _lora_call(case, impl, main, x)
        compare(case, got, main.merged()(x), _lora_suspects(main, x), HINT_LORA)


# ----------------------------------------------------------------------- 10.3 add_lora

HINT_FREEZE = (
    "freeze every parameter of the model first: only A and B of the new layers may train "
    "(model.requires_grad_(False), then the replacements)"
)
HINT_FREEZE_ORDER = (
    "freeze the model before inserting the LoRA layers: requires_grad_(False) after the "
    "replacement froze their A and B too — only A and B of the new layers may train"
)
HINT_PARENT = (
    "replace the layer in its parent module (setattr on model.get_submodule(parent)), not "
    "in a copy — parent, _, child = name.rpartition('.'); setattr(model.get_submodule(parent), "
    "child, LoRALinear(...)); setattr(model, 'blocks.0.attn.qkv', …) only adds a new "
    "attribute with dots in its name and leaves the layer where it was"
)
HINT_SUFFIX = (
    "match names by their ending (targets are suffixes such as 'attn.qkv'): "
    "name.endswith(tuple(targets)) on the full names of model.named_modules(), not "
    "target in name, nor the last part of the name only"
)
HINT_ORIGINAL = (
    "wrap the original layer object, LoRALinear(that_linear, r=r, alpha=alpha, "
    "dropout=dropout) with the module found by named_modules(): not a new nn.Linear or a "
    "copy — its pre-trained weights are what LoRA adapts"
)
HINT_ONLY_LINEAR = (
    "only nn.Linear layers are replaced: skip the modules whose name matches but that are "
    "not an nn.Linear (isinstance(module, nn.Linear))"
)
HINT_DIRECT_CHILD = (
    "a layer that is a direct child of the model (a name without a dot, like 'head') has "
    "the model itself as its parent: name.rpartition('.') gives ('', '', 'head'), and "
    "model.get_submodule('') is model"
)


class _Attn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(6, 9)
        self.proj = nn.Linear(3, 6, bias=False)
        self.qkv_extra = nn.Linear(6, 6)  # contains 'attn.qkv', does not end with it


class _Side(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Module()
        # Ends with 'attn.qkv' but is no nn.Linear; 'side.attn.qkv.0' is one, not ending so.
        self.attn.qkv = nn.Sequential(nn.Linear(6, 6), nn.Tanh())


class _Tiny(nn.Module):
    """Layers named to tell the right matching rule from the plausible wrong ones."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = _Attn()
        self.side = _Side()
        self.enc = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 6))
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 4)


def _tiny() -> _Tiny:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(103)
        return _Tiny()


def _bert() -> nn.Module:
    from lmkit.bert import BERT, BertConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(103)
        return BERT(
            BertConfig(vocab_size=30, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
        )


def _adapt(
    case: str,
    impl: Callable,
    model: nn.Module,
    targets: tuple[str, ...],
    kwargs: dict[str, Any],
    error_hint: str | None = None,
) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)

        def on_error(err: BaseException) -> str | None:
            if error_hint is not None:
                return error_hint
            if isinstance(err, TypeError) and "wraps an nn.Linear" in str(err):
                return HINT_ONLY_LINEAR
            if isinstance(err, ValueError):
                return (
                    f"some nn.Linear names end with {targets}, yet nothing matched: " + HINT_SUFFIX
                )
            return None

        return call(case, impl, model, targets, hint=on_error, **kwargs)


def _check_adapted(
    case: str,
    model: nn.Module,
    got: Any,
    before: dict[str, nn.Module],
    weights: dict[str, torch.Tensor],
    expected: list[str],
    r: int,
    alpha: float,
    dropout: float,
) -> None:
    """Everything add_lora must have done to ``model`` (snapshot ``before``)."""
    # 1. The matching layers, found through their parents, are now LoRALinear.
    for name in expected:
        now = model.get_submodule(name)
        if isinstance(now, LoRALinear):
            continue
        elsewhere = any(
            isinstance(m, LoRALinear) and m.base is before[name] for m in model.modules()
        )
        returned = isinstance(got, (list, tuple)) and name in got
        if elsewhere or returned:
            hint = HINT_PARENT
        else:
            hint = (
                "every nn.Linear whose name ends with one of the targets is replaced: "
                + HINT_SUFFIX
            )
        raise AssertionError(
            f"{case}: model.get_submodule({name!r}) is still a {type(now).__name__}, "
            f"expected a LoRALinear.\nHint: {hint}"
        )
    # 2. Nothing else was swapped: every other module is the same object at the same place.
    for name, module in before.items():
        if name in expected or name == "":
            continue
        try:
            now = model.get_submodule(name)
        except AttributeError:
            now = None
        if now is module:
            continue
        if isinstance(now, LoRALinear):
            hint = HINT_SUFFIX
            what = f"{name!r} was replaced too, but it does not end with any of the targets"
        else:
            hint = (
                "change the model in place: only the matching layers are swapped, every "
                "other module stays the same object"
            )
            what = f"model.get_submodule({name!r}) is no longer the original module"
        raise AssertionError(f"{case}: {what}.\nHint: {hint}")
    extra = [n for n, m in model.named_modules() if isinstance(m, LoRALinear) and n not in expected]
    if extra:
        raise AssertionError(
            f"{case}: {extra[0]!r} is a LoRALinear, but it does not end with any of the "
            "targets (and was no module of the model before)"
        )
    # 3. Each wraps the original layer, untouched, with r, alpha and dropout as passed.
    for name in expected:
        layer = model.get_submodule(name)
        if layer.base is not before[name]:
            same = torch.equal(layer.base.weight.detach(), weights[name + ".weight"])
            raise AssertionError(
                f"{case}: {name}.base is not the nn.Linear that was there"
                + (" (a copy with the same weights)" if same else " (its weights differ)")
                + f".\nHint: {HINT_ORIGINAL}"
            )
        for pname, p in before[name].named_parameters():
            if not torch.equal(p.detach(), weights[f"{name}.{pname}"]):
                raise AssertionError(
                    f"{case}: the pre-trained {name}.{pname} changed.\nHint: {HINT_ORIGINAL}"
                )
        got_cfg = (layer.r, layer.alpha, layer.dropout.p)
        if got_cfg != (r, alpha, dropout):
            raise AssertionError(
                f"{case}: {name} has (r, alpha, dropout) = {got_cfg}, expected "
                f"{(r, alpha, dropout)}.\nHint: pass r, alpha and dropout on: "
                "LoRALinear(that_linear, r=r, alpha=alpha, dropout=dropout)"
            )
        if torch.count_nonzero(layer.B.detach()):
            raise AssertionError(
                f"{case}: {name}.B is not zero.\nHint: leave LoRALinear's initialisation "
                "alone: B starts at zero, so the adapted model starts as the pre-trained one"
            )
    # 4. Only A and B of the new layers may train.
    lora = {id(p) for n in expected for p in (model.get_submodule(n).A, model.get_submodule(n).B)}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    want_count = sum(r * (before[n].in_features + before[n].out_features) for n in expected)
    got_count = sum(p.numel() for _, p in trainable)
    stray = [n for n, p in trainable if id(p) not in lora]
    if stray:
        raise AssertionError(
            f"{case}: {fmt(got_count)} trainable numbers, expected {fmt(want_count)}: "
            f"{stray[0]!r} still requires a gradient.\nHint: {HINT_FREEZE}"
        )
    frozen = [
        f"{n}.{k}"
        for n in expected
        for k in ("A", "B")
        if not getattr(model.get_submodule(n), k).requires_grad
    ]
    if frozen:
        raise AssertionError(
            f"{case}: {fmt(got_count)} trainable numbers, expected {fmt(want_count)} "
            f"(r · (in + out) per layer): {frozen[0]} does not require a gradient.\n"
            f"Hint: {HINT_FREEZE_ORDER}"
        )
    # 5. The returned names.
    if not isinstance(got, list):
        raise AssertionError(
            f"{case} returned {type(got).__name__}, expected the list of the replaced "
            f"names {expected}.\nHint: return the list of the names you replaced, in "
            "named_modules() order"
        )
    if got != expected:
        if sorted(map(str, got)) == sorted(expected):
            hint = (
                "return the names in named_modules() order: one pass over "
                "model.named_modules(), not one pass per target"
            )
        else:
            hint = (
                "return the full names of the layers you replaced, as model.named_modules() "
                "gives them (e.g. 'blocks.0.attn.qkv')"
            )
        raise AssertionError(f"{case}: returned {got}, expected {expected}.\nHint: {hint}")


def _snapshot(model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, torch.Tensor]]:
    modules = dict(model.named_modules())
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    return modules, weights


@checks("10.3")
def check_add_lora(impl: Callable) -> None:
    # A small BERT: the query/key/value and output projections of both blocks.
    model = _bert()
    targets = ("attn.qkv", "attn.proj")
    case = f"add_lora(BERT with 2 blocks, {targets}, r=2, alpha=4.0)"
    before, weights = _snapshot(model)
    got = _adapt(case, impl, model, targets, dict(r=2, alpha=4.0))
    expected = [f"blocks.{i}.attn.{k}" for i in range(2) for k in ("qkv", "proj")]
    _check_adapted(case, model, got, before, weights, expected, 2, 4.0, 0.0)

    # Names that contain a target without ending with it, a match that is no nn.Linear,
    # a layer in an nn.Sequential, targets given in another order than the modules.
    model = _tiny()
    targets = ("attn.qkv", "enc.2", "attn.proj")
    case = (
        f"add_lora(a model with layers attn.qkv, attn.proj, attn.qkv_extra, "
        f"side.attn.qkv (an nn.Sequential), enc.0, enc.2 and head; {targets}, r=3, "
        "alpha=6.0, dropout=0.1)"
    )
    before, weights = _snapshot(model)
    got = _adapt(case, impl, model, targets, dict(r=3, alpha=6.0, dropout=0.1))
    _check_adapted(
        case, model, got, before, weights, ["attn.qkv", "attn.proj", "enc.2"], 3, 6.0, 0.1
    )

    # A direct child of the model (its parent is the model), with the default r and alpha.
    model = _tiny()
    case = "add_lora(the same model, ('head',)) with the default r=8, alpha=16.0"
    before, weights = _snapshot(model)
    got = _adapt(case, impl, model, ("head",), {}, error_hint=HINT_DIRECT_CHILD)
    _check_adapted(case, model, got, before, weights, ["head"], 8, 16.0, 0.0)

    # A typo must not silently train nothing.
    model = _tiny()

    def typo() -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return impl(model, ("attn.kqv",))

    expect_value_error(
        "add_lora(the same model, ('attn.kqv',)), which matches no layer",
        typo,
        "raise ValueError when nothing matches: a typo in targets would otherwise "
        "silently train nothing",
    )
