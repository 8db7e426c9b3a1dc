"""Chapter 3 — where is a token? Token embeddings and three ways to encode position.

Attention (chapter 4) treats its input as a *set*: permute the tokens and the outputs are
permuted the same way. Word order has to be put into the vectors themselves. Exercises
3.1–3.3 live here:

- :func:`sinusoidal_positions` — the fixed sine/cosine table of "Attention Is All You
  Need" (Vaswani et al., 2017), added to the token embeddings;
- :func:`apply_rope` — rotary position embeddings (RoPE, Su et al., 2021), which rotate
  queries and keys instead;
- :meth:`Embeddings.forward` — GPT-2's learned token + position embeddings, the first
  layer of the GPT you build later.
"""

from __future__ import annotations

import torch
from torch import nn

from lmkit.grading import exercise

__all__ = ["Embeddings", "apply_rope", "sinusoidal_positions"]


@exercise("3.1")
def sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    """The sinusoidal position encodings of Vaswani et al. (2017), section 3.5.

    For position ``pos = 0, 1, …, n_positions - 1`` and column pair ``i``:

    - ``PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))``
    - ``PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))``

    Both columns of a pair share one frequency; sines sit in the even columns, cosines in
    the odd ones (interleaved, not two halves). Angles are in radians.

    Args:
        n_positions: number of positions ``T`` (≥ 0); the first position is 0.
        d_model: width of the encodings (≥ 1). If it is odd, the last column is the sine
            of its pair ``2i = d_model - 1`` (the formula defines ``PE[pos, 2i]`` for every
            ``2i < d_model``) and has no cosine partner.

    Returns:
        A float32 tensor of shape ``(n_positions, d_model)``.
    """
    raise NotImplementedError(
        "Exercise 3.1: fill even columns 2i with sin of pos / 10000^(2i/d_model) and "
        "odd columns 2i+1 with cos of the same angle"
    )


@exercise("3.2")
def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embeddings (RoPE; Su et al., 2021, "RoFormer"), interleaved pairs.

    The last dimension of ``x`` is read as ``D / 2`` pairs ``(x[..., 2i], x[..., 2i+1])``.
    The vector at row ``t`` has each pair rotated counter-clockwise by the angle
    ``θ = positions[t] · base^(-2i / D)`` (radians):

    - ``out[..., 2i]   = x[..., 2i] · cos θ - x[..., 2i+1] · sin θ``
    - ``out[..., 2i+1] = x[..., 2i] · sin θ + x[..., 2i+1] · cos θ``

    Convention: this is the *interleaved* pairing of the RoFormer paper (and of Meta's
    original Llama code, which uses complex numbers). GPT-NeoX and Hugging Face's Llama
    pair dimension ``i`` with ``i + D/2`` instead ("rotate_half"); the two differ by a fixed
    permutation of the dimensions, so weights trained with one do not work with the other.
    Because rotations compose, ``apply_rope(q, m) · apply_rope(k, n)`` depends on the
    positions only through ``m - n``.

    Args:
        x: a float tensor of shape ``(..., T, D)`` (queries or keys, e.g.
            ``(B, n_heads, T, head_dim)``); ``D`` must be even.
        positions: integer positions of shape ``(T,)`` (not necessarily ``0..T-1``).
        base: the base of the frequencies (10000 in the paper).

    Returns:
        A tensor of the same shape and dtype as ``x``.

    Raises:
        ValueError: if ``D`` is odd, or ``positions`` is not of shape ``(T,)``.
    """
    raise NotImplementedError(
        "Exercise 3.2: rotate each pair (x[2i], x[2i+1]) by positions[t] · base^(-2i/D)"
    )


class Embeddings(nn.Module):
    """GPT-2's input layer: a learned token embedding plus a learned position embedding.

    ``self.tok`` is an ``nn.Embedding(vocab_size, n_embd)`` and ``self.pos`` an
    ``nn.Embedding(block_size, n_embd)``: one learned vector per position
    ``0 … block_size - 1``. The GPT reuses this module (its ``tok.weight`` is also the
    tied output head).
    """

    def __init__(self, vocab_size: int, block_size: int, n_embd: int) -> None:
        super().__init__()
        self.vocab_size, self.block_size, self.n_embd = vocab_size, block_size, n_embd
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)

    @classmethod
    def from_config(cls, config) -> Embeddings:
        """``Embeddings(config.vocab_size, config.block_size, config.n_embd)``."""
        return cls(config.vocab_size, config.block_size, config.n_embd)

    @exercise("3.3")
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Embed token ids: ``tok[idx[b, t]] + pos[t]``.

        Args:
            idx: integer token ids of shape ``(B, T)``.

        Returns:
            A float tensor of shape ``(B, T, n_embd)``: the token embedding of each id plus
            the learned embedding of its position ``t = 0 … T-1`` (the same position
            vectors for every sequence in the batch; no scaling by √d, as in GPT-2).

        Raises:
            ValueError: if ``idx`` is not 2-D, or ``T > block_size`` (there is no learned
                vector for those positions); the message names ``T`` and ``block_size``.
        """
        raise NotImplementedError(
            "Exercise 3.3: look up self.tok(idx) and add self.pos at positions 0..T-1"
        )
