"""Checks of chapter 3: sinusoidal_positions, apply_rope, Embeddings.forward.

The judges are independent of the reference solutions: the formula evaluated entry by
entry with ``math``, RoPE as a multiplication by ``e^{iθ}`` in complex numbers, and an
embedding lookup as a one-hot matrix product. A wrong answer is compared with the
mistakes learners really make, to name the likely one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmkit.checks import call, compare, expect_raises, expect_tensor
from lmkit.grading import checks
from lmkit.positions import Embeddings

# --------------------------------------------------------------- 3.1 sinusoidal_positions


def _pe_formula(
    T: int,
    d: int,
    *,
    start: int = 0,
    exponent: Callable[[int, int], float] | None = None,
    swap: bool = False,
    halves: bool = False,
    multiply: bool = False,
    degrees: bool = False,
) -> torch.Tensor:
    """The encoding entry by entry with ``math`` — and its usual corruptions.

    ``exponent(column, d)`` gives the power of 10000 for a column (right: ``2i/d`` for
    both columns ``2i`` and ``2i+1``).
    """
    exponent = exponent or (lambda col, d: (col - col % 2) / d)
    pe = torch.zeros(T, d, dtype=torch.float64)
    for pos in range(T):
        p = pos + start
        for col in range(d):
            if halves:  # all sines first, then all cosines
                half = (d + 1) // 2
                pair, is_cos = (col, False) if col < half else (col - half, True)
                e = 2 * pair / d
            else:
                is_cos = col % 2 == 1
                e = exponent(col, d)
            angle = p * 10000.0**e if multiply else p / 10000.0**e
            if degrees:
                angle = math.radians(angle)
            pe[pos, col] = math.cos(angle) if is_cos != swap else math.sin(angle)
    return pe


PE_CASES = [(6, 8), (50, 16), (5, 7), (3, 1), (0, 4)]


@checks("3.1")
def check_sinusoidal_positions(impl: Callable) -> None:
    for T, d in PE_CASES:
        case = f"sinusoidal_positions({T}, {d})"
        got = call(
            case
            + (
                " (an odd d_model: the last column is a sin with no cos partner, "
                "so there are d_model // 2 cosine columns)"
                if d % 2
                else ""
            ),
            impl,
            T,
            d,
        )
        expect_tensor(got, (T, d), case)
        if got.dtype != torch.float32:
            raise AssertionError(f"{case} should be float32 (torch's default), got {got.dtype}")
        want = _pe_formula(T, d)
        compare(
            case,
            got,
            want,
            [
                (
                    lambda: _pe_formula(T, d, swap=True),
                    "sin and cos are swapped: sines go in the even columns 0, 2, 4, …, "
                    "cosines in the odd columns 1, 3, 5, …",
                ),
                (
                    lambda: _pe_formula(T, d, start=1),
                    "positions start at 0: the first row is [0, 1, 0, 1, …] (sin 0 and cos 0)",
                ),
                (
                    lambda: _pe_formula(T, d, exponent=lambda c, d: (c // 2) / d),
                    "the exponent is 2i/d_model, where 2i is the even column index "
                    "(0, 2, 4, …): you used the pair index i instead of 2i",
                ),
                (
                    lambda: _pe_formula(T, d, exponent=lambda c, d: c / d),
                    "both columns of a pair share one frequency: the cos in column "
                    "2i+1 uses the same angle pos / 10000^(2i/d_model) as the sin in "
                    "column 2i (not (2i+1)/d_model)",
                ),
                (
                    lambda: _pe_formula(T, d, halves=True),
                    "interleave the columns: sin in the even ones, cos in the odd ones, "
                    "not all sines first and then all cosines",
                ),
                (
                    lambda: _pe_formula(T, d, exponent=lambda c, d: 2.0),
                    "'sin(pos / 10000²)' is a misreading: the exponent 2i/d_model "
                    "changes with the column, so each pair has its own frequency",
                ),
                (
                    lambda: _pe_formula(T, d, multiply=True),
                    "divide the position by 10000^(2i/d_model) (the frequencies fall "
                    "along the columns), do not multiply",
                ),
                (
                    lambda: _pe_formula(T, d, degrees=True),
                    "the angles are in radians (torch.sin takes radians): no conversion "
                    "to or from degrees",
                ),
            ],
            "PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), "
            "PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model)), pos = 0, 1, …",
        )


# ------------------------------------------------------------------------ 3.2 apply_rope


def _rope_complex(
    x: torch.Tensor, positions: torch.Tensor, base: float, *, sign: float = 1.0
) -> torch.Tensor:
    """RoPE as complex multiplication: pair (x[2i], x[2i+1]) is x[2i] + i·x[2i+1]."""
    D = x.shape[-1]
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], D // 2, 2).contiguous())
    freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    theta = sign * positions.double()[:, None] * freq  # (T, D/2)
    rotated = z * torch.polar(torch.ones_like(theta), theta)
    return torch.view_as_real(rotated).reshape(x.shape)


def _rope_variant(
    x: torch.Tensor,
    positions: torch.Tensor,
    base: float,
    *,
    halves: bool = False,
    sign: float = 1.0,
    pair_exponent: bool = False,
    degrees: bool = False,
    same_angle: bool = False,
) -> torch.Tensor:
    """The usual ways to get RoPE wrong, written with cos/sin."""
    D = x.shape[-1]
    xd = x.double()
    i = torch.arange(D // 2, dtype=torch.float64)
    freq = base ** (-(i if pair_exponent else 2 * i) / D)
    if same_angle:
        freq = torch.ones_like(freq)
    theta = sign * positions.double()[:, None] * freq
    if degrees:
        theta = theta * math.pi / 180
    cos, sin = theta.cos(), theta.sin()
    if halves:  # GPT-NeoX / HF Llama: pair i with i + D/2
        x0, x1 = xd[..., : D // 2], xd[..., D // 2 :]
        return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    x0, x1 = xd[..., 0::2], xd[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


ROPE_HINT = (
    "rotate each interleaved pair (x[2i], x[2i+1]) by θ = positions[t] · base^(-2i/D): "
    "out[2i] = x[2i]·cos θ - x[2i+1]·sin θ, out[2i+1] = x[2i]·sin θ + x[2i+1]·cos θ"
)


@checks("3.2")
def check_apply_rope(impl: Callable) -> None:
    g = torch.Generator().manual_seed(3)
    cases = [
        ("x of shape (5, 8), positions 0..4", torch.randn(5, 8, generator=g), None, None),
        (
            "x of shape (2, 3, 6, 16), positions [0, 1, 2, 10, 50, 1000]",
            torch.randn(2, 3, 6, 16, generator=g),
            torch.tensor([0, 1, 2, 10, 50, 1000]),
            None,
        ),
        (
            "x of shape (4, 8), positions [7, 3, 0, 9], base=500.0",
            torch.randn(4, 8, generator=g),
            torch.tensor([7, 3, 0, 9]),
            500.0,
        ),
        (
            "x of shape (1, 3, 4) in float64",
            torch.randn(1, 3, 4, generator=g, dtype=torch.float64),
            None,
            None,
        ),
    ]
    for case, x, positions, base in cases:
        T = x.shape[-2]
        pos = torch.arange(T) if positions is None else positions
        b = 10000.0 if base is None else base
        args = (x.clone(), pos) if base is None else (x.clone(), pos, base)
        got = call(f"apply_rope({case})", impl, *args)
        expect_tensor(got, tuple(x.shape), f"apply_rope({case})")
        if got.dtype != x.dtype:
            raise AssertionError(
                f"apply_rope({case}) should keep the dtype of x ({x.dtype}), got {got.dtype}"
            )
        want = _rope_complex(x, pos, b)
        compare(
            f"apply_rope({case})",
            got,
            want,
            [
                (
                    lambda: _rope_variant(x, pos, b, halves=True),
                    "pair the dimensions interleaved, (x[2i], x[2i+1]) as in RoFormer; "
                    "you rotated x[i] with x[i + D/2] (GPT-NeoX/Llama's rotate_half "
                    "convention)",
                ),
                (
                    lambda: _rope_variant(x, pos, b, sign=-1.0),
                    "the rotation goes the wrong way: out[2i] = x[2i]·cos θ - x[2i+1]·sin θ "
                    "and out[2i+1] = x[2i]·sin θ + x[2i+1]·cos θ",
                ),
                (
                    lambda: _rope_variant(x, pos, b, pair_exponent=True),
                    "the frequency of pair i is base^(-2i/D): you used base^(-i/D)",
                ),
                (
                    lambda: _rope_variant(x, pos, b, same_angle=True),
                    "each pair i has its own frequency base^(-2i/D): the angle is "
                    "positions[t] · base^(-2i/D), not positions[t]",
                ),
                (
                    lambda: _rope_variant(x, pos, b, degrees=True),
                    "the angles are in radians (torch.cos/torch.sin take radians): no "
                    "conversion from degrees",
                ),
                (
                    lambda: _rope_complex(x, torch.arange(T), b),
                    "use the positions you are given (they need not be 0..T-1), "
                    "not torch.arange(T)",
                ),
                (
                    lambda: _rope_complex(x, pos + 1, b),
                    "rotate by positions[t] itself: a token at position 0 is not rotated",
                ),
                (
                    lambda: _rope_complex(x, pos, 10000.0),
                    "use the base argument, not always 10000",
                ),
            ],
            ROPE_HINT,
        )
    expect_raises(
        "apply_rope(x of shape (3, 5), positions 0..2) — D = 5 is odd",
        lambda: impl(torch.randn(3, 5, generator=g), torch.arange(3)),
        ValueError,
        "RoPE rotates pairs of dimensions, so D must be even: check x.shape[-1] % 2 first",
    )


# ------------------------------------------------------------- 3.3 Embeddings.forward


def _embeddings(vocab: int, block: int, d: int, seed: int) -> Embeddings:
    torch.manual_seed(seed)
    return Embeddings(vocab, block, d)


@checks("3.3")
def check_embeddings_forward(impl: Callable) -> None:
    g = torch.Generator().manual_seed(4)
    # vocab < block_size, so a lookup of positions by token id would not crash
    module = _embeddings(13, 16, 6, seed=5)
    tok, pos = module.tok.weight.detach(), module.pos.weight.detach()
    for B, T in [(2, 5), (3, 16), (1, 1)]:
        idx = torch.randint(13, (B, T), generator=g)
        case = f"Embeddings(vocab_size=13, block_size=16, n_embd=6) on idx of shape ({B}, {T})"
        with torch.no_grad():
            got = call(case, impl, module, idx)
        expect_tensor(
            got,
            (B, T, 6),
            f"{case}: the output (add the two embeddings; do not concatenate them)",
        )
        # An embedding lookup is a one-hot row times the table.
        want = F.one_hot(idx, 13).double() @ tok.double() + pos[:T].double()
        ar = torch.arange(T)
        compare(
            case,
            got,
            want,
            [
                (
                    lambda: tok[idx],
                    "add the learned position embeddings: self.tok(idx) + self.pos(positions)",
                ),
                (
                    lambda: tok[idx] + pos[1 : T + 1],
                    "positions start at 0: use torch.arange(T), not 1..T",
                ),
                (
                    lambda: tok[idx] + pos[idx],
                    "look the position embedding up by position t = 0..T-1 "
                    "(torch.arange(T)), not by token id",
                ),
                (
                    lambda: tok[idx] * math.sqrt(6) + pos[:T],
                    "GPT-2 adds the two embeddings as they are: no √n_embd scaling "
                    "(that is the original Transformer's choice)",
                ),
                (
                    lambda: tok[idx] + tok[ar],
                    "positions have their own table, self.pos, not self.tok",
                ),
            ],
            "output[b, t] = self.tok.weight[idx[b, t]] + self.pos.weight[t]",
        )
    expect_raises(
        "Embeddings(block_size=16) on idx of shape (1, 17)",
        lambda: impl(module, torch.zeros(1, 17, dtype=torch.long)),
        ValueError,
        "there is no learned vector for position 16 or later: raise a ValueError that names "
        "T (17) and block_size (16)",
        mentions=(17, 16),
    )
