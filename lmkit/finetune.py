"""Chapter 10 — fine-tuning: a classifier on top of a pre-trained encoder, frozen features,
and low-rank adaptation (LoRA).

Exercises 10.1–10.3 live here: :func:`mean_pool`, :meth:`LoRALinear.forward` and
:func:`add_lora`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from lmkit.grading import exercise

__all__ = [
    "LoRALinear",
    "SequenceClassifier",
    "add_lora",
    "count_trainable",
    "load_reviews_gpt",
    "mean_pool",
]


@exercise("10.1")
def mean_pool(hidden: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the vectors of the *real* tokens of each sequence.

    Args:
        hidden: ``(B, T, C)`` vectors, e.g. an encoder's output.
        padding_mask: ``(B, T)`` bool (or 0/1), True for real tokens, False for padding.

    Returns:
        ``(B, C)``: for each sequence, the sum of ``hidden[b, t]`` over its real tokens
        divided by their number. Padding vectors must not count in the sum *or* in the
        number. A sequence with no real token gives a vector of zeros (not NaN).
        ``ValueError`` if the shapes do not fit together.
    """
    raise NotImplementedError(
        "Exercise 10.1: zero the padding vectors, sum over T, divide by the number of real "
        "tokens (at least 1)"
    )


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al., 2021).

    ``y = base(x) + (alpha / r) · B A x``, with ``A`` of shape ``(r, in_features)`` and
    ``B`` of shape ``(out_features, r)``. ``A`` starts random and ``B`` at zero, so at first
    the layer computes exactly what ``base`` does; training moves only ``A`` and ``B``:
    ``r · (in + out)`` numbers instead of ``in · out``.

    Args:
        base: the pre-trained layer; its parameters are frozen (``requires_grad=False``).
        r: the rank of the update.
        alpha: the update is scaled by ``alpha / r``, so that changing ``r`` does not
            change the size of the initial steps (the paper's convention).
        dropout: dropout on the input of the low-rank branch (training only).
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if r < 1:
            raise ValueError(f"the rank r must be ≥ 1, got {r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(r, base.in_features, **like))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises weights
        self.dropout = nn.Dropout(dropout)

    @exercise("10.2")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self.base(x) + self.scaling · (self.dropout(x) @ A.T) @ B.T``.

        Args:
            x: ``(..., in_features)``.

        Returns:
            ``(..., out_features)``. Multiply by ``A.T`` first, then by ``B.T``: the
            ``(out, in)`` matrix ``B @ A`` is never formed, which is the point of a
            low-rank update (``r · (in + out)`` multiply-adds per token instead of
            ``in · out``).
        """
        raise NotImplementedError(
            "Exercise 10.2: base(x) plus scaling times dropout(x) through A.T, then B.T"
        )

    def merged(self) -> nn.Linear:
        """An ``nn.Linear`` with ``W + scaling · B A``: the same function, no extra cost."""
        base = self.base
        out = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(base.weight + self.scaling * self.B @ self.A)
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


@exercise("10.3")
def add_lora(
    model: nn.Module,
    targets: tuple[str, ...],
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze ``model`` and put a :class:`LoRALinear` around some of its linear layers.

    1. Freeze every parameter of ``model`` (``requires_grad_(False)``).
    2. For every submodule that is an ``nn.Linear`` and whose name (as in
       ``model.named_modules()``, e.g. ``"blocks.0.attn.qkv"``) ends with one of
       ``targets`` (e.g. ``("attn.qkv", "attn.proj")``), replace it in its parent module by
       ``LoRALinear(that_linear, r=r, alpha=alpha, dropout=dropout)``. Its ``A`` and ``B``
       are then the only trainable parameters.

    Args:
        model: any module (the encoder of a classifier, a GPT…); changed in place.
        targets: name endings that select the layers to adapt.

    Returns:
        The names of the replaced layers, in ``named_modules()`` order.

    Raises:
        ValueError: if no ``nn.Linear`` matches ``targets`` (a typo would otherwise silently
            train nothing).
    """
    raise NotImplementedError(
        "Exercise 10.3: freeze all parameters, then swap each matching nn.Linear for a "
        "LoRALinear in its parent (model.get_submodule + setattr)"
    )


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


class SequenceClassifier(nn.Module):
    """A pre-trained model with a classification head: ``(B, T) ids → (B, n_classes)``.

    The body is a :class:`~lmkit.model.GPT` or a :class:`~lmkit.bert.BERT`; the head is
    dropout and one linear layer on a *pooled* vector of the sequence:

    - ``"mean"``: the mean of the vectors of the real tokens (:func:`mean_pool`);
    - ``"last"``: the vector of the last real token — in a GPT the only one that has read
      the whole sequence (GPT-1's choice);
    - ``"cls"``: BERT's pooled ``[CLS]`` vector (``body.pool``).

    The head starts with small weights, so training starts from near-uniform predictions.
    """

    def __init__(
        self, body: nn.Module, n_classes: int, *, pooling: str = "mean", dropout: float = 0.1
    ) -> None:
        super().__init__()
        from lmkit.model import GPT

        if pooling not in ("mean", "last", "cls"):
            raise ValueError(f"pooling must be 'mean', 'last' or 'cls', got {pooling!r}")
        if pooling == "cls" and isinstance(body, GPT):
            raise ValueError("a GPT has no [CLS] token: use pooling='mean' or 'last'")
        self.body, self.pooling, self.causal = body, pooling, isinstance(body, GPT)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(body.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled vector ``(B, C)`` of each sequence; padding only at the end."""
        if padding_mask is None:
            padding_mask = torch.ones_like(idx, dtype=torch.bool)
        if self.causal:  # padding after the text is never attended to: no mask needed
            h = self.body.encode(idx)
        else:
            h = self.body.encode(idx, None, padding_mask)
        if self.pooling == "mean":
            return mean_pool(h, padding_mask)
        if self.pooling == "last":
            last = padding_mask.long().sum(1).clamp(min=1) - 1  # (B,) index of the last token
            return h[torch.arange(len(idx), device=idx.device), last]
        return self.body.pool(h)

    def forward(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.features(idx, padding_mask)))


ASSETS = Path(__file__).parent / "assets"


def load_reviews_gpt(folder: str | Path = ASSETS):
    """The small GPT pre-trained on IMDB reviews for chapter 10, and its tokenizer.

    Made by ``scripts/pretrain_reviews.py`` and shipped with the course (3.7 MB): no
    download. Returns ``(model, tokenizer)``; the model is in ``eval()`` mode.
    """
    from lmkit.model import GPT, GPTConfig
    from lmkit.tokenizers import BPETokenizer

    folder = Path(folder)
    state = torch.load(folder / "reviews_gpt.pt", map_location="cpu", weights_only=True)
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), BPETokenizer.load(folder / "reviews_bpe.json")
