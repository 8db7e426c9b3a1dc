"""Plausible wrong answers to chapter 3's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch

from solutions import positions as ref

# ------------------------------------------------------------- 3.1 sinusoidal_positions


def _pe(
    T,
    d,
    *,
    start=0,
    pair_index=False,
    own_freq=False,
    swap=False,
    halves=False,
    multiply=False,
    degrees=False,
    base=10000,
):
    """A vectorised sinusoidal table with one of the usual mistakes switched on."""
    pos = torch.arange(start, T + start, dtype=torch.float32)[:, None]
    col = torch.arange(d, dtype=torch.float32)
    if own_freq:  # every column its own exponent: 2i for sin, 2i+1 for cos
        e = col / d
    elif pair_index:  # i instead of 2i
        e = torch.div(col, 2, rounding_mode="floor") / d
    else:
        e = (col - col % 2) / d
    angle = pos * base**e if multiply else pos / base**e
    if degrees:  # "torch.sin wants degrees": the angle is taken as degrees and converted
        angle = torch.deg2rad(angle)
    sin, cos = torch.sin(angle), torch.cos(angle)
    if halves:
        half = (d + 1) // 2
        i = torch.arange(half, dtype=torch.float32)
        a = pos / 10000 ** (2 * i / d)
        return torch.cat((torch.sin(a), torch.cos(a[:, : d - half])), dim=1)
    even = (col % 2 == 0)[None, :]
    if swap:
        even = ~even
    return torch.where(even, sin, cos)


def _popular_wrong(T, d):
    # "PE = sin(pos / 10000²) and cos(pos / 10000²)": the same angle in every column
    pos = torch.arange(T, dtype=torch.float32)[:, None].expand(T, d)
    col = torch.arange(d)[None, :]
    return torch.where(col % 2 == 0, torch.sin(pos / 10000**2), torch.cos(pos / 10000**2))


def _pe_even_only(T, d):
    # pe[:, 1::2] = cos(pos * div) with div of length ceil(d/2): breaks on an odd d_model
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


# ---------------------------------------------------------------------- 3.2 apply_rope


def _rope(
    x,
    positions,
    base=10000.0,
    *,
    halves=False,
    sign=1.0,
    pair_i=False,
    degrees=False,
    no_freq=False,
    swap_cos_sin=False,
):
    D = x.shape[-1]
    if D % 2:
        raise ValueError("odd D")
    i = torch.arange(D // 2, dtype=torch.float32)
    freq = torch.ones(D // 2) if no_freq else base ** (-(i if pair_i else 2 * i) / D)
    theta = sign * positions.float()[:, None] * freq
    if degrees:
        theta = torch.deg2rad(theta)
    cos, sin = theta.cos().to(x.dtype), theta.sin().to(x.dtype)
    if swap_cos_sin:
        cos, sin = sin, cos
    if halves:
        x0, x1 = x[..., : D // 2], x[..., D // 2 :]
        return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def _rope_in_float32(x, positions, base=10000.0):
    return ref.apply_rope(x.float(), positions, base)  # a float64 x comes back float32


def _emb_vague_error(self, idx):
    if idx.shape[1] > self.block_size:
        raise ValueError("sequence too long")  # which length, which limit?
    return self.tok(idx) + self.pos(torch.arange(idx.shape[1]))


def _rope_no_odd_check(x, positions, base=10000.0):
    if x.shape[-1] % 2:
        return x.clone()  # silently leaves an odd D unrotated
    return ref.apply_rope(x, positions, base)


# ------------------------------------------------------------- 3.3 Embeddings.forward


def _emb_no_positions(self, idx):
    return self.tok(idx)


def _emb_from_one(self, idx):
    T = idx.shape[1]
    if T > self.block_size:
        raise ValueError(f"T={T} > block_size={self.block_size}")
    return self.tok(idx) + self.pos(torch.arange(1, T + 1) % self.block_size)


def _emb_by_token(self, idx):
    return self.tok(idx) + self.pos(idx)


def _emb_tok_table_twice(self, idx):
    return self.tok(idx) + self.tok(torch.arange(idx.shape[1]))  # self.tok where self.pos is meant


def _emb_right_aligned(self, idx):
    T = idx.shape[1]
    if T > self.block_size:
        raise ValueError(f"T={T} > block_size={self.block_size}")
    return self.tok(idx) + self.pos(torch.arange(self.block_size - T, self.block_size))


def _emb_scaled(self, idx):
    T = idx.shape[1]
    return self.tok(idx) * math.sqrt(self.n_embd) + self.pos(torch.arange(T))


def _emb_no_length_check(self, idx):
    return self.tok(idx) + self.pos(torch.arange(idx.shape[1]))  # IndexError past block_size


def _emb_concat(self, idx):
    T = idx.shape[1]
    return torch.cat((self.tok(idx), self.pos(torch.arange(T)).expand(idx.shape[0], T, -1)), -1)


MISTAKES = {
    "3.1": [
        ("sin and cos swapped", lambda T, d: _pe(T, d, swap=True), "sin and cos are swapped"),
        ("positions start at 1", lambda T, d: _pe(T, d, start=1), "positions start at 0"),
        ("exponent i instead of 2i", lambda T, d: _pe(T, d, pair_index=True), "instead of 2i"),
        (
            "cos column with its own exponent",
            lambda T, d: _pe(T, d, own_freq=True),
            "both columns of a pair share one frequency",
        ),
        ("sines then cosines", lambda T, d: _pe(T, d, halves=True), "interleave the columns"),
        ("sin(pos/10000²)", _popular_wrong, "'sin(pos / 10000²)' is a misreading"),
        ("multiplies by 10000^(2i/d)", lambda T, d: _pe(T, d, multiply=True), "do not multiply"),
        ("angles as degrees", lambda T, d: _pe(T, d, degrees=True), "the angles are in radians"),
        (
            "base 1000",
            lambda T, d: _pe(T, d, base=1000),
            "PE[pos, 2i] = sin(pos / 10000^(2i/d_model))",
        ),
        (
            "crashes on odd d_model",
            _pe_even_only,
            "(an odd d_model: the last column is a sin with no cos partner",
        ),
        (
            "returns float64",
            lambda T, d: ref.sinusoidal_positions(T, d).double(),
            "should be float32",
        ),
    ],
    "3.2": [
        (
            "rotate_half pairing",
            lambda x, p, b=10000.0: _rope(x, p, b, halves=True),
            "GPT-NeoX/Llama's rotate_half convention",
        ),
        (
            "rotates the wrong way",
            lambda x, p, b=10000.0: _rope(x, p, b, sign=-1.0),
            "the rotation goes the wrong way",
        ),
        ("exponent i/D", lambda x, p, b=10000.0: _rope(x, p, b, pair_i=True), "base^(-i/D)"),
        (
            "degrees",
            lambda x, p, b=10000.0: _rope(x, p, b, degrees=True),
            "torch.cos/torch.sin take radians",
        ),
        (
            "one angle for every pair",
            lambda x, p, b=10000.0: _rope(x, p, b, no_freq=True),
            "each pair i has its own frequency",
        ),
        (
            "positions counted from 1",
            lambda x, p, b=10000.0: _rope(x, p + 1, b),
            "rotate by positions[t] itself",
        ),
        (
            "cos and sin swapped in the rotation",
            lambda x, p, b=10000.0: _rope(x, p, b, swap_cos_sin=True),
            "rotate each interleaved pair (x[2i], x[2i+1]) by θ = positions[t] · base^(-2i/D)",
        ),
        (
            "ignores positions",
            lambda x, p, b=10000.0: _rope(x, torch.arange(x.shape[-2]), b),
            "use the positions",
        ),
        ("ignores base", lambda x, p, b=10000.0: _rope(x, p), "base argument"),
        ("no error for odd D", _rope_no_odd_check, "D must be even"),
        ("computes in float32", _rope_in_float32, "should keep the dtype of x"),
    ],
    "3.3": [
        ("a ValueError naming no numbers", _emb_vague_error, "name 17 and 16 in the message"),
        ("no position embeddings", _emb_no_positions, "add the learned position embeddings"),
        ("positions from 1", _emb_from_one, "positions start at 0"),
        ("positions looked up by token id", _emb_by_token, "not by token id"),
        ("scaled by sqrt(d)", _emb_scaled, "no √n_embd scaling"),
        (
            "no ValueError past block_size",
            _emb_no_length_check,
            "raise a ValueError that names T (17)",
        ),
        ("concatenates", _emb_concat, "do not concatenate"),
        ("self.tok for positions", _emb_tok_table_twice, "positions have their own table"),
        (
            "right-aligned positions",
            _emb_right_aligned,
            "output[b, t] = self.tok.weight[idx[b, t]]",
        ),
    ],
}
