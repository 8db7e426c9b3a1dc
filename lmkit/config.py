"""The sizes that define a Transformer, and named presets of published models."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of a GPT- or BERT-style Transformer (nanoGPT's names).

    Attributes:
        vocab_size: number of token ids ``V``.
        block_size: the context length ``T``: how many learned position embeddings there are.
        n_layer: number of Transformer blocks ``L``.
        n_head: attention heads per block (``n_embd`` must be divisible by it).
        n_embd: model width ``d`` (embedding size).
        d_ff: hidden width of the feed-forward network; ``None`` means ``4 * n_embd``.
        n_segments: token-type (segment) embeddings; BERT uses 2, GPT none.
        pooler: BERT's pooler, a ``d × d`` layer with a bias on the ``[CLS]`` vector.
        bias: whether Linear and LayerNorm layers have biases (GPT-2/BERT: yes).
        tied_head: the output head reuses the token-embedding matrix (GPT-2, BERT: yes).
    """

    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    d_ff: int | None = None
    n_segments: int = 0
    pooler: bool = False
    bias: bool = True
    tied_head: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head dimensions"
            )
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or self.d_ff <= 0):
            raise ValueError(f"d_ff must be a positive int or None, got {self.d_ff!r}")
        if self.n_segments < 0:
            raise ValueError(f"n_segments must be ≥ 0, got {self.n_segments}")

    @property
    def ffn_dim(self) -> int:
        """The feed-forward hidden width (``d_ff``, by default ``4 * n_embd``)."""
        return self.d_ff if self.d_ff is not None else 4 * self.n_embd

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def with_(self, **changes) -> TransformerConfig:
        """A copy with some fields changed: ``cfg.with_(n_layer=24)``."""
        return replace(self, **changes)


_BERT = dict(vocab_size=30522, block_size=512, n_segments=2, pooler=True)

#: Published architectures. Parameter counts are checked against Hugging Face
#: ``transformers`` in tests/test_scale.py.
PRESETS: dict[str, TransformerConfig] = {
    # GPT-2 (Radford et al., 2019): the four released sizes.
    "gpt2": TransformerConfig(),
    "gpt2-medium": TransformerConfig(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": TransformerConfig(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": TransformerConfig(n_layer=48, n_head=25, n_embd=1600),
    # BERT (Devlin et al., 2018): encoder + pooler, as in BertModel.
    "bert-base": TransformerConfig(n_layer=12, n_head=12, n_embd=768, **_BERT),
    "bert-large": TransformerConfig(n_layer=24, n_head=16, n_embd=1024, **_BERT),
    # GPT-3 175B (Brown et al., 2020, Table 2.1): 96 layers, d=12288, 96 heads, 2048 context.
    "gpt3": TransformerConfig(block_size=2048, n_layer=96, n_head=96, n_embd=12288),
    # nanoGPT's character-level Shakespeare models (bias=False, 65 characters).
    "shakespeare-char": TransformerConfig(
        vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, bias=False
    ),
    "shakespeare-char-cpu": TransformerConfig(
        vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False
    ),
}
