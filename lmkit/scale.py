"""Chapter 1 — how large is a large model? Parameters, training compute, training memory.

Exercises 1.1–1.3 live here. Each stub raises ``NotImplementedError`` until you write it;
``lmkit.grading.check("1.1")`` tells you whether your version is right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.config import TransformerConfig
from lmkit.grading import exercise

__all__ = [
    "BYTES_PER_PARAM",
    "PRECISIONS",
    "build_torch_model",
    "count_parameters",
    "flops_per_token",
    "human",
    "measure_training_flops",
    "training_memory",
]


@exercise("1.1")
def count_parameters(config: TransformerConfig) -> int:
    """Count the trainable parameters of the Transformer that ``config`` describes.

    The model (GPT-2 and BERT share this skeleton):

    - token embeddings ``V × d``, learned position embeddings ``block_size × d`` and, if
      ``n_segments > 0``, segment embeddings ``n_segments × d``;
    - ``n_layer`` blocks, each with: a query/key/value projection ``d → 3d`` and an
      output projection ``d → d``; a feed-forward network ``d → d_ff → d``
      (``config.ffn_dim``); two LayerNorms (a weight and a bias of size ``d`` each);
    - one more LayerNorm (GPT-2's final ``ln_f``; BERT's embedding LayerNorm);
    - if ``config.pooler``, a ``d → d`` layer;
    - an output head ``d → V`` *without* bias, which costs nothing extra when
      ``config.tied_head`` (it reuses the token embeddings).

    Every Linear layer and LayerNorm has a bias when ``config.bias`` is true, none otherwise.

    Returns:
        The number of parameters as an ``int`` (GPT-2 small: 124,439,808).
    """
    raise NotImplementedError(
        "Exercise 1.1: add up the embeddings, n_layer × (attention + feed-forward + two "
        "LayerNorms), the final LayerNorm, the pooler and an untied head"
    )


@exercise("1.2")
def flops_per_token(config: TransformerConfig, seq_len: int | None = None) -> int:
    """Training FLOPs per token (forward + backward) of the model, nanoGPT/PaLM style.

    ``6 * N + 12 * n_layer * n_embd * seq_len`` where

    - ``N`` is :func:`count_parameters` *minus* the position and segment embeddings
      (a lookup costs no multiply-adds; the token embedding stays in because the tied
      output head multiplies by it);
    - each parameter costs 2 FLOPs per token forward (a multiply and an add) and 4
      backward (gradients for the inputs and for the weights): 6 in all;
    - attention's ``QKᵀ`` and ``(weights)·V`` add ``2 · 2 · seq_len · d`` forward per layer
      and token, three times that with the backward pass: ``12 · L · d · seq_len``.

    Args:
        config: the model.
        seq_len: tokens per sequence; ``None`` means ``config.block_size``.

    Returns:
        FLOPs per trained token, an ``int``. Training compute is this × tokens seen (≈ 6·N·D).
    """
    raise NotImplementedError(
        "Exercise 1.2: 6 × (parameters without position/segment embeddings) "
        "+ 12 × n_layer × n_embd × seq_len"
    )


#: Bytes per parameter of each tensor type.
BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "fp16": 2}
#: The precisions :func:`training_memory` knows.
PRECISIONS = ("fp32", "bf16", "mixed")


@exercise("1.3")
def training_memory(n_params: int, precision: str = "fp32") -> dict[str, int]:
    """Bytes needed to *train* ``n_params`` parameters with AdamW (activations excluded).

    Three kinds of state live on the device for every parameter:

    - ``"weights"``: the parameters themselves;
    - ``"gradients"``: one gradient per parameter;
    - ``"optimizer"``: AdamW's two moment estimates ``m`` and ``v`` (and, for mixed
      precision, the fp32 master copy of the weights).

    ``precision`` is one of:

    - ``"fp32"``: everything in float32 (4 bytes each);
    - ``"bf16"``: everything in bfloat16 (2 bytes each), optimizer moments included;
    - ``"mixed"``: bf16 weights and gradients for the forward/backward pass, plus an fp32
      master copy of the weights and fp32 moments in the optimizer
      (Rajbhandari et al., 2020, "ZeRO").

    Returns:
        ``{"weights": …, "gradients": …, "optimizer": …, "total": …}`` in bytes (``int``),
        where ``total`` is the sum of the other three. Unknown ``precision`` → ``ValueError``.
    """
    raise NotImplementedError(
        "Exercise 1.3: bytes per parameter for weights, gradients and AdamW state "
        "(m, v and, for 'mixed', an fp32 master copy)"
    )


def build_torch_model(config: TransformerConfig, device: str | torch.device = "meta") -> nn.Module:
    """The model of :func:`count_parameters`, assembled from PyTorch's own layers.

    An independent reference: ``sum(p.numel() for p in model.parameters())`` must equal
    ``count_parameters(config)``. On the default ``"meta"`` device it holds shapes only
    (instant, no memory, even for GPT-3); on ``"cpu"`` it also runs: ``model(idx)`` maps
    token ids ``(B, T)`` to logits ``(B, T, V)`` with a pre-norm causal Transformer whose
    attention is written out as matrix products, so :func:`measure_training_flops` can
    count them.
    """
    d, n_head = config.n_embd, config.n_head

    class Skeleton(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(config.vocab_size, d)
            self.pos = nn.Embedding(config.block_size, d)
            self.seg = nn.Embedding(config.n_segments, d) if config.n_segments else None
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    d, n_head, config.ffn_dim, bias=config.bias, batch_first=True
                )
                for _ in range(config.n_layer)
            )
            self.norm = nn.LayerNorm(d, bias=config.bias)
            self.pooler = nn.Linear(d, d, bias=config.bias) if config.pooler else None
            self.head = nn.Linear(d, config.vocab_size, bias=False)
            if config.tied_head:
                self.head.weight = self.tok.weight  # shared, so .parameters() yields it once

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            B, T = idx.shape
            x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
            causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
            for blk in self.blocks:
                attn = blk.self_attn
                qkv = F.linear(blk.norm1(x), attn.in_proj_weight, attn.in_proj_bias)
                q, k, v = qkv.view(B, T, 3, n_head, d // n_head).permute(2, 0, 3, 1, 4)
                scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // n_head)
                weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
                y = (weights @ v).transpose(1, 2).reshape(B, T, d)
                x = x + attn.out_proj(y)
                x = x + blk.linear2(F.gelu(blk.linear1(blk.norm2(x))))
            return self.head(self.norm(x))

    with torch.device(device):
        return Skeleton()


def measure_training_flops(
    config: TransformerConfig, seq_len: int | None = None, batch_size: int = 1
) -> float:
    """Count the matmul FLOPs of one forward + backward pass, per token, with torch.

    Uses :class:`torch.utils.flop_counter.FlopCounterMode` on :func:`build_torch_model`
    (on the CPU, so keep ``config`` small). Element-wise work (LayerNorm, biases,
    softmax, GELU) is not counted: only matrix products, as in the 6·N estimate.
    """
    from torch.utils.flop_counter import FlopCounterMode

    T = config.block_size if seq_len is None else seq_len
    torch.manual_seed(0)
    model = build_torch_model(config, device="cpu")
    idx = torch.randint(config.vocab_size, (batch_size, T))
    with FlopCounterMode(display=False) as counter:
        model(idx).sum().backward()
    return counter.get_total_flops() / (batch_size * T)


def human(n: float, unit: str = "") -> str:
    """``124439808 → '124.4M'``; ``3.1e23 → '314.6Z'`` (SI prefixes)."""
    for factor, prefix in (
        (1e24, "Y"),
        (1e21, "Z"),
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G" if unit else "B"),
        (1e6, "M"),
        (1e3, "k"),
    ):
        if abs(n) >= factor:
            return f"{n / factor:.1f}{prefix}{unit}"
    return f"{n:.0f}{unit}"
