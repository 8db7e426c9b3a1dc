"""Chapter 4 — attention: every token looks at the others and takes what it needs.

Exercises 4.1–4.3 live here: :func:`causal_mask`, :func:`scaled_dot_product_attention`
(the teaching path, written out) and :meth:`MultiHeadAttention.forward`. :func:`attention`
also has a fast path through PyTorch's fused
``torch.nn.functional.scaled_dot_product_attention``; tests/test_attention.py proves the
two agree.

Masks are boolean and say where attention is **allowed**: ``True`` = this query may look
at this key (``torch.nn.functional.scaled_dot_product_attention``'s convention;
``torch.nn.MultiheadAttention``'s ``attn_mask`` uses the opposite one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.grading import exercise

__all__ = [
    "MultiHeadAttention",
    "attention",
    "causal_mask",
    "check_attention_inputs",
    "scaled_dot_product_attention",
]


@exercise("4.1")
def causal_mask(T: int) -> torch.Tensor:
    """The mask of a decoder (GPT): each token may look at itself and the tokens before it.

    Args:
        T: sequence length (≥ 0).

    Returns:
        A ``torch.bool`` tensor of shape ``(T, T)`` with ``mask[i, j] = True`` where query
        ``i`` may attend to key ``j``, i.e. where ``j <= i`` (the diagonal included).
    """
    raise NotImplementedError("Exercise 4.1: a (T, T) bool tensor, True on and below the diagonal")


def check_attention_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> None:
    """Raise a clear error for inputs :func:`scaled_dot_product_attention` cannot take.

    - ``q`` ``(..., T_q, d)`` and ``k`` ``(..., T_k, d)`` must share ``d`` →
      ``ValueError`` otherwise; ``v`` ``(..., T_k, d_v)`` must have ``T_k`` rows.
    - ``mask`` must be a ``torch.bool`` tensor (``TypeError`` otherwise) broadcastable to
      ``(..., T_q, T_k)`` (``ValueError`` otherwise).
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            "q, k, v should have shapes (..., T_q, d), (..., T_k, d), (..., T_k, d_v); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"queries and keys must have the same last dimension d: q is (..., T_q, d) = "
            f"{tuple(q.shape)} but k is (..., T_k, d) = {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"keys and values must have the same number of rows T_k: k is {tuple(k.shape)}, "
            f"v is {tuple(v.shape)} (expected (..., {k.shape[-2]}, d_v))"
        )
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        what = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(
            f"mask should be a torch.bool tensor (True = may attend), got {what}; "
            "for a 0/1 mask use mask.bool(), for an additive float mask use mask == 0"
        )
    T_q, T_k = q.shape[-2], k.shape[-2]
    batch = q.shape[:-2]
    if k.shape[:-2] != batch:
        batch = torch.broadcast_shapes(batch, k.shape[:-2])
    scores_shape = batch + (T_q, T_k)
    # This runs in every attention call: settle the usual case (a mask whose dimensions are
    # 1 or the scores' own) without torch.broadcast_shapes, which costs ~20 µs of Python.
    extra = len(scores_shape) - mask.dim()
    if extra >= 0 and all(
        m == 1 or m == s for m, s in zip(mask.shape, scores_shape[extra:], strict=True)
    ):
        return
    try:
        if torch.broadcast_shapes(mask.shape, scores_shape) != scores_shape:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the attention scores' "
            f"shape (..., T_q, T_k) = {tuple(scores_shape)}"
        ) from None


@exercise("4.2")
def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d) V, written out (Vaswani et al., 2017).

    Args:
        q: queries, shape ``(..., T_q, d)``.
        k: keys, shape ``(..., T_k, d)`` — the same ``d`` as ``q``.
        v: values, shape ``(..., T_k, d_v)``.
        mask: optional ``torch.bool`` tensor broadcastable to ``(..., T_q, T_k)``;
            ``True`` = query ``i`` may attend to key ``j``. Disallowed scores are set to
            ``-inf`` *before* the softmax, so their weights are exactly 0.

    Returns:
        ``(out, weights)``: ``out`` of shape ``(..., T_q, d_v)`` and ``weights`` of shape
        ``(..., T_q, T_k)``, where ``weights = softmax(q @ kᵀ / √d)`` over the keys (the
        last dimension; each row sums to 1) and ``out = weights @ v``.

    Numerics: large scores must not overflow (a softmax that subtracts the row maximum, as
    ``torch.softmax`` does). A query row whose mask allows **no** key has nothing to
    attend to: its weights are all 0 and its output is 0 (not NaN, not a uniform average).
    This is also what ``torch.nn.functional.scaled_dot_product_attention`` returns.

    Raises:
        ValueError: ``q`` and ``k`` have different ``d``, ``k`` and ``v`` different
            ``T_k``, or ``mask`` does not broadcast to ``(..., T_q, T_k)``.
        TypeError: ``mask`` is not a ``torch.bool`` tensor.
        (:func:`check_attention_inputs` raises exactly these; you may call it.)
    """
    raise NotImplementedError(
        "Exercise 4.2: weights = softmax of q @ k.T / √d over the keys, masked scores "
        "at -inf; return (weights @ v, weights)"
    )


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    fast: bool = False,
) -> torch.Tensor:
    """``softmax(q kᵀ / √d) v`` — the teaching path, or PyTorch's fused kernel.

    Shapes and mask as in :func:`scaled_dot_product_attention`; returns only ``out``
    ``(..., T_q, d_v)``. With ``fast=True`` it calls
    ``torch.nn.functional.scaled_dot_product_attention``, which never materialises the
    ``(T_q, T_k)`` weights on GPU (FlashAttention / memory-efficient kernels) and fuses
    the steps on CPU. Both give the same result up to floating-point rounding (a fully
    masked row gives 0 on both).
    """
    if not fast:
        return scaled_dot_product_attention(q, k, v, mask)[0]
    check_attention_inputs(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class MultiHeadAttention(nn.Module):
    """Multi-head (self-)attention with a fused Q, K, V projection, as in GPT-2.

    ``self.qkv`` maps ``x`` ``(B, T, C)`` to queries, keys and values at once (in that
    order along the last dimension: ``qkv(x)[..., :C]`` are the queries); each is split
    into ``n_heads`` heads of ``head_dim = C // n_heads`` dimensions. ``self.proj`` mixes
    the merged heads. The weights match ``torch.nn.MultiheadAttention``'s
    ``in_proj_weight`` / ``in_proj_bias`` and ``out_proj``.

    Args:
        d_model: the width ``C``.
        n_heads: number of heads; must divide ``d_model``.
        bias: whether the two Linear layers have biases.
        dropout: dropout on the attention weights during training (0 = none).
        causal: add :func:`causal_mask` in :meth:`forward` (a decoder, GPT) or not
            (an encoder, BERT).
        fast: compute attention with :func:`attention`'s fused fast path.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        fast: bool = False,
    ) -> None:
        super().__init__()
        if n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by n_heads ({n_heads}): each head "
                "gets d_model // n_heads dimensions"
            )
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.causal, self.fast = causal, fast
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        #: The attention weights of the last call, ``(B, n_heads, T, T)`` (None on the
        #: fast path, which does not compute them).
        self.last_weights: torch.Tensor | None = None

    @exercise("4.3")
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Multi-head self-attention of ``x`` ``(B, T, C)`` → ``(B, T, C)``.

        1. ``q, k, v``: ``self.qkv(x)`` split into three ``(B, T, C)`` tensors, in that
           order.
        2. Split heads: ``(B, T, C)`` → ``(B, T, n_heads, head_dim)`` →
           ``(B, n_heads, T, head_dim)`` (a view, then a transpose — not a bare reshape).
        3. Attention of every head at once with :func:`scaled_dot_product_attention`
           (or :func:`attention` with ``fast=self.fast``). The mask: ``mask`` (a
           ``torch.bool`` tensor broadcastable to ``(B, n_heads, T, T)``, True = may
           attend; e.g. a padding mask of shape ``(B, 1, 1, T)``), combined with
           :func:`causal_mask` by logical *and* when ``self.causal``.
        4. Dropout on the weights when ``self.training`` (optional for the exercise; the
           check uses ``dropout=0``), store them in ``self.last_weights``
           ``(B, n_heads, T, T)``.
        5. Merge heads: ``(B, n_heads, T, head_dim)`` → ``(B, T, n_heads, head_dim)`` →
           ``(B, T, C)``, then the output projection ``self.proj``.

        Returns:
            A tensor of shape ``(B, T, C)``.

        Raises:
            ValueError: if ``x`` is not ``(B, T, d_model)``.
        """
        raise NotImplementedError(
            "Exercise 4.3: qkv → split heads (B, h, T, hd) → attention → merge heads → proj"
        )
