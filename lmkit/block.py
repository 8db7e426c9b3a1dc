"""Chapter 5 — the Transformer block: attention and a feed-forward network, each wrapped
in a residual connection with a LayerNorm.

Exercises 5.1–5.3 live here: :func:`layer_norm`, :meth:`FeedForward.forward` and
:meth:`Block.forward`. The same :class:`Block` is a GPT block (``causal=True``, pre-norm)
and, with ``causal=False, norm_first=False``, a BERT block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401  (for your FeedForward.forward: F.gelu)
from torch import nn

from lmkit.attention import MultiHeadAttention, causal_mask  # noqa: F401  (your Block.forward)
from lmkit.grading import exercise

__all__ = ["Block", "FeedForward", "LayerNorm", "layer_norm"]


@exercise("5.1")
def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float = 1e-5
) -> torch.Tensor:
    """Layer normalisation (Ba et al., 2016) over the last dimension of ``x``.

    For every vector ``x[..., :]`` of ``C`` features separately::

        mean = average of the C values
        var  = average of (x - mean)²          # the *biased* variance: divide by C, not C - 1
        y    = (x - mean) / sqrt(var + eps)    # eps *inside* the square root
        out  = y * weight + bias

    Args:
        x: input of shape ``(..., C)`` (for a Transformer ``(B, T, C)``: every token is
            normalised on its own, independently of the batch and of the other tokens).
        weight: the gain ``γ``, shape ``(C,)``.
        bias: the shift ``β``, shape ``(C,)``, or ``None`` for no shift.
        eps: added to the variance so that a constant vector (variance 0) gives 0, not NaN.

    Returns:
        A tensor of the shape and dtype of ``x``; the same as
        ``torch.nn.functional.layer_norm(x, (C,), weight, bias, eps)``.
    """
    raise NotImplementedError(
        "Exercise 5.1: (x - mean) / sqrt(biased variance + eps) over the last dimension, "
        "then * weight + bias"
    )


class LayerNorm(nn.Module):
    """``torch.nn.LayerNorm(d_model, eps, bias=bias)`` on top of :func:`layer_norm`.

    ``weight`` starts at ones and ``bias`` at zeros (``None`` when ``bias=False``, as in
    nanoGPT's models without biases), so a fresh LayerNorm only standardises.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, *, bias: bool = True) -> None:
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1:] != (self.d_model,):
            raise ValueError(
                f"LayerNorm({self.d_model}) normalises inputs of shape (..., {self.d_model}), "
                f"got {tuple(x.shape)}"
            )
        return layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}, bias={self.bias is not None}"


class FeedForward(nn.Module):
    """The position-wise feed-forward network: ``d_model → d_ff → d_model`` with a GELU.

    Args:
        d_model: the width ``C`` of the residual stream.
        d_ff: the hidden width; ``None`` means ``4 * d_model`` (GPT-2, BERT).
        bias: whether the two Linear layers have biases.
        dropout: dropout on the output during training (0 = none).
        approximate: ``"none"`` for the exact GELU ``x · Φ(x)`` (BERT, PyTorch's default)
            or ``"tanh"`` for the tanh approximation that GPT-2's weights were trained with
            (Hugging Face's ``"gelu_new"``); passed to ``torch.nn.functional.gelu``.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        approximate: str = "none",
    ) -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        d_ff = d_ff or 4 * d_model
        self.d_model, self.d_ff, self.approximate = d_model, d_ff, approximate
        self.fc = nn.Linear(d_model, d_ff, bias=bias)  # up: one "key" per hidden unit
        self.proj = nn.Linear(d_ff, d_model, bias=bias)  # down: back to the residual stream
        self.dropout = nn.Dropout(dropout)

    @exercise("5.2")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``dropout(proj(gelu(fc(x))))``, applied to every token on its own.

        Args:
            x: shape ``(B, T, d_model)`` (any leading dimensions work the same way).

        Returns:
            Shape ``(B, T, d_model)``: ``self.fc`` widens to ``d_ff``, the GELU
            (``torch.nn.functional.gelu(h, approximate=self.approximate)``) is applied
            element-wise, ``self.proj`` brings it back to ``d_model``, and ``self.dropout``
            acts on that output (a no-op in ``eval()`` mode or with ``dropout=0``).
        """
        raise NotImplementedError(
            "Exercise 5.2: self.fc, then GELU (approximate=self.approximate), then "
            "self.proj, then self.dropout"
        )


class Block(nn.Module):
    """One Transformer block: attention and a feed-forward network, each in a residual branch.

    Args:
        d_model: the width ``C``.
        n_heads: attention heads; must divide ``d_model`` (``ValueError`` otherwise).
        d_ff: the feed-forward width; ``None`` means ``4 * d_model``.
        bias: biases in every Linear layer and LayerNorm.
        dropout: dropout in attention and in the feed-forward output (training only).
        causal: a decoder block (GPT): token ``t`` sees only tokens ``≤ t``. With ``False``
            it is an encoder block (BERT): every token sees every token.
        norm_first: pre-norm (GPT-2 onwards) when true, post-norm (the original
            Transformer, BERT) when false.
        fast: attention through PyTorch's fused kernel (see ``lmkit.attention``).

    The block applies causality itself, in :meth:`forward` (``self.attn`` is built with
    ``causal=False`` so that the mask is added exactly once).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        d_ff: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        causal: bool = True,
        norm_first: bool = True,
        fast: bool = False,
    ) -> None:
        super().__init__()
        self.causal, self.norm_first = causal, norm_first
        self.ln1 = LayerNorm(d_model, bias=bias)
        self.attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout, fast=fast)
        self.ln2 = LayerNorm(d_model, bias=bias)
        self.ffn = FeedForward(d_model, d_ff, bias=bias, dropout=dropout)

    @exercise("5.3")
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The block on ``x`` of shape ``(B, T, C)`` → ``(B, T, C)``.

        The attention mask: ``causal_mask(T)`` (from ``lmkit.attention``, on ``x``'s
        device) when ``self.causal``, combined by logical *and* with ``mask`` if one is
        given; ``mask`` alone (or ``None``) otherwise. Pass it to ``self.attn(h, mask)``.

        Pre-norm (``self.norm_first``, GPT-2)::

            x = x + attn(ln1(x))
            x = x + ffn(ln2(x))

        Post-norm (``not self.norm_first``, the original Transformer and BERT)::

            x = ln1(x + attn(x))
            x = ln2(x + ffn(x))

        with ``attn = self.attn``, ``ffn = self.ffn``, ``ln1 = self.ln1``,
        ``ln2 = self.ln2``.

        Args:
            x: the residual stream, ``(B, T, C)``.
            mask: optional extra ``torch.bool`` mask broadcastable to ``(B, n_heads, T, T)``,
                True = may attend (e.g. a padding mask of shape ``(B, 1, 1, T)``).

        Returns:
            The new residual stream, ``(B, T, C)``.
        """
        raise NotImplementedError(
            "Exercise 5.3: build the mask (causal_mask when self.causal), then the two "
            "residual branches, pre-norm or post-norm as self.norm_first says"
        )
