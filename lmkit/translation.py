"""Chapter 12 — encoder–decoder: the original Transformer, for translation.

Vaswani et al. (2017) built the Transformer to translate: an **encoder** reads the whole
source sentence (every token sees every token, chapter 9's direction), a **decoder** writes
the translation one token at a time (causal, chapter 6's direction) and, in every block,
looks back at the encoder's vectors through **cross-attention**: queries from the decoder,
keys and values from the source. This module adds that one new piece and what translation
needs around it:

- :meth:`CrossAttention.forward` (12.1) — chapter 4's attention with queries from one
  sequence and keys/values from another, under the source padding mask;
- :meth:`DecoderBlock.forward` (12.2) — causal self-attention → cross-attention → FFN, each
  a pre-norm residual branch (checked against ``torch.nn.TransformerDecoderLayer``);
- :func:`label_smoothed_cross_entropy` (12.3) — the loss of the original paper (ε = 0.1),
  padding ignored (checked against ``F.cross_entropy(label_smoothing=…)``);
- :func:`beam_search` (12.4) — keep the ``k`` best partial translations instead of one,
  with length normalisation.

:class:`EncoderDecoder` assembles them with chapter 5's encoder :class:`~lmkit.block.Block`
(``causal=False``), chapter 3's sinusoidal positions and one token embedding shared by the
source, the target and the output head (one BPE vocabulary for German and English).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F  # noqa: F401 — for your label_smoothed_cross_entropy
from torch import nn

from lmkit import grading
from lmkit.attention import (  # noqa: F401 — for your CrossAttention and DecoderBlock
    MultiHeadAttention,
    attention,
    causal_mask,
    scaled_dot_product_attention,
)
from lmkit.block import Block, FeedForward, LayerNorm
from lmkit.grading import exercise
from lmkit.positions import sinusoidal_positions

__all__ = [
    "CrossAttention",
    "DecoderBlock",
    "EncoderDecoder",
    "Seq2SeqConfig",
    "beam_search",
    "greedy_search",
    "label_smoothed_cross_entropy",
]

#: ``next_log_probs(prefixes)``: ``(N, t)`` token ids (each row starts with BOS) →
#: ``(N, V)`` log-probabilities of the next token after each prefix.
NextLogProbs = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------ 12.1 cross-attention


class CrossAttention(nn.Module):
    """Multi-head attention from one sequence (queries) to another (keys and values).

    In a translation model the queries come from the decoder's residual stream ``x``
    ``(B, T, C)`` and the keys and values from the encoder's output ``memory`` ``(B, S, C)``:
    each target token asks "which source tokens matter for me now?". ``self.q`` maps
    ``x`` to queries, ``self.kv`` maps ``memory`` to keys and values at once (keys first:
    ``kv(memory)[..., :C]``), ``self.proj`` mixes the merged heads — the weights of
    ``torch.nn.MultiheadAttention``'s ``in_proj_weight`` split as ``[q; k, v]``.

    Args:
        d_model: the width ``C`` of both sequences.
        n_heads: number of heads; must divide ``d_model``.
        bias: whether the Linear layers have biases.
        dropout: dropout on the attention weights during training (0 = none).
        fast: compute attention with chapter 4's fused fast path.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        fast: bool = False,
    ) -> None:
        super().__init__()
        if n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by n_heads ({n_heads}): each head "
                "gets d_model // n_heads dimensions"
            )
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.fast = fast
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        #: The attention weights of the last call, ``(B, n_heads, T, S)``: for each target
        #: token, how much it read each source token (None on the fast path).
        self.last_weights: torch.Tensor | None = None

    @exercise("12.1")
    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention of ``x`` ``(B, T, C)`` over ``memory`` ``(B, S, C)`` → ``(B, T, C)``.

        1. ``q = self.q(x)``; ``k, v``: ``self.kv(memory)`` split into two ``(B, S, C)``
           tensors, keys first.
        2. Split heads: ``(B, T, C)`` → ``(B, n_heads, T, head_dim)``, and the same for
           ``k`` and ``v`` with ``S`` rows (a view, then a transpose).
        3. Attention with chapter 4's :func:`~lmkit.attention.scaled_dot_product_attention`
           (or :func:`~lmkit.attention.attention` with ``fast=True`` when ``self.fast``).
           ``mask`` (a ``torch.bool`` tensor broadcastable to ``(B, n_heads, T, S)``, True =
           may attend; the source padding mask has shape ``(B, 1, 1, S)``) is passed as it
           is — **no causal mask**: the whole source is known before the first target token.
        4. Dropout on the weights when training (optional; the check uses ``dropout=0``),
           store them in ``self.last_weights`` ``(B, n_heads, T, S)`` on the slow path.
        5. Merge heads → ``(B, T, C)`` and apply ``self.proj``.

        Raises:
            ValueError: if ``x`` or ``memory`` is not ``(B, ·, d_model)``, or their batch
                sizes differ.
        """
        raise NotImplementedError(
            "Exercise 12.1: q from x, k and v from memory → split heads → attention under "
            "the source mask (not causal) → merge heads → proj"
        )


# ------------------------------------------------------------------ 12.2 decoder block


class DecoderBlock(nn.Module):
    """The decoder block of the Transformer, pre-norm: three residual branches.

    ``self.self_attn`` (chapter 4's :class:`~lmkit.attention.MultiHeadAttention`, built with
    ``causal=False``: the block adds the causal mask, once), ``self.cross``
    (:class:`CrossAttention`) and ``self.ffn`` (chapter 5's
    :class:`~lmkit.block.FeedForward`), each after its own LayerNorm ``ln1``, ``ln2``,
    ``ln3``. Its weights map one-to-one onto ``torch.nn.TransformerDecoderLayer(...,
    norm_first=True, activation="gelu", batch_first=True)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        d_ff: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        fast: bool = False,
    ) -> None:
        super().__init__()
        self.ln1 = LayerNorm(d_model, bias=bias)
        self.self_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout, fast=fast)
        self.ln2 = LayerNorm(d_model, bias=bias)
        self.cross = CrossAttention(d_model, n_heads, bias=bias, dropout=dropout, fast=fast)
        self.ln3 = LayerNorm(d_model, bias=bias)
        self.ffn = FeedForward(d_model, d_ff, bias=bias, dropout=dropout)

    @exercise("12.2")
    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The block on the target stream ``x`` ``(B, T, C)``, reading ``memory`` ``(B, S, C)``.

        ::

            x = x + self_attn(ln1(x), causal_mask(T))      # the target so far
            x = x + cross(ln2(x), memory, memory_mask)     # the source
            x = x + ffn(ln3(x))

        ``causal_mask(T)`` (chapter 4, on ``x``'s device) is for the self-attention only;
        ``memory_mask`` (True = a real source token, shape ``(B, 1, 1, S)``, or ``None``)
        for the cross-attention only. The memory itself is not normalised here (the encoder
        ends with its own LayerNorm).

        Returns:
            The new target stream, ``(B, T, C)``.
        """
        raise NotImplementedError(
            "Exercise 12.2: three pre-norm residual branches: causal self-attention, "
            "cross-attention over memory under memory_mask, feed-forward"
        )


# ------------------------------------------------------------------ 12.3 the loss


@exercise("12.3")
def label_smoothed_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    smoothing: float = 0.1,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Cross-entropy against a smoothed target: ``1 − ε`` on the right token, ``ε`` spread
    uniformly over all ``V`` tokens (Szegedy et al., 2016; the Transformer used ε = 0.1).

    For one position with log-probabilities ``log p = log_softmax(logits)``::

        loss = (1 − ε) · (−log p[target]) + ε · mean over the V tokens of (−log p)

    averaged over the positions whose target is not ``ignore_index`` (padding). With
    ``ε = 0`` it is ordinary cross-entropy; it equals
    ``F.cross_entropy(logits, targets, label_smoothing=ε, ignore_index=…)``.

    Args:
        logits: ``(N, V)`` or ``(B, T, V)`` raw scores.
        targets: ``(N,)`` or ``(B, T)`` token ids; ``ignore_index`` marks padding.
        smoothing: ``ε`` in ``[0, 1)``.
        ignore_index: the target id whose positions do not count.

    Returns:
        A 0-dim tensor: the mean loss per non-ignored position.

    Raises:
        ValueError: if the shapes do not match, ``ε`` is outside ``[0, 1)``, or every
            target is ``ignore_index`` (a mean over nothing).
    """
    raise NotImplementedError(
        "Exercise 12.3: log_softmax; (1 − ε)·NLL of the target + ε·mean over all V tokens "
        "of −log p; average over the positions whose target is not ignore_index"
    )


# ------------------------------------------------------------------ 12.4 beam search


def greedy_search(
    next_log_probs: NextLogProbs, bos_id: int, eos_id: int, max_len: int
) -> tuple[list[int], float]:
    """The most likely next token at every step, until EOS or ``max_len`` tokens.

    Returns ``(tokens, log_prob)``: the tokens after BOS (EOS included when it came) and
    their summed log-probability."""
    seq, score = [bos_id], 0.0
    for _ in range(max_len):
        logp = next_log_probs(torch.tensor([seq]))[0]
        token = int(logp.argmax())
        seq.append(token)
        score += float(logp[token])
        if token == eos_id:
            break
    return seq[1:], score


@exercise("12.4")
def beam_search(
    next_log_probs: NextLogProbs,
    bos_id: int,
    eos_id: int,
    *,
    beam_size: int = 4,
    max_len: int = 50,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    """Search for the most likely sequence, keeping the ``beam_size`` best prefixes.

    Every hypothesis starts as ``[bos_id]`` with log-probability 0. At each of at most
    ``max_len`` steps:

    1. ``next_log_probs`` on all live prefixes (one ``(N, t)`` tensor) gives ``(N, V)``;
       a candidate is a live prefix plus one token, scored by the prefix's summed
       log-probability plus that token's.
    2. Keep the ``k`` best candidates over all prefixes and tokens, where ``k`` =
       ``beam_size`` minus the number of hypotheses already finished (the beam shrinks as
       hypotheses finish: with ``beam_size = 1`` this is exactly :func:`greedy_search`).
    3. A kept candidate ending in ``eos_id`` is finished; the others are the live prefixes
       of the next step. Stop when no prefix is live.

    After ``max_len`` steps the prefixes still live count as finished (unterminated).
    Finished hypotheses are ranked by their **length-normalised** score
    ``log_prob / len ** length_penalty`` (``len`` = tokens after BOS, EOS included;
    ``length_penalty = 0``: the raw sum, which favours short outputs; ``1``: the mean per
    token). Ties keep the order in which hypotheses were found.

    Returns:
        ``[(tokens, log_prob), …]``, best first, at most ``beam_size`` of them: the tokens
        after BOS (EOS included when it came) and their *summed, unnormalised*
        log-probability.

    Raises:
        ValueError: if ``beam_size < 1`` or ``max_len < 1``.
    """
    raise NotImplementedError(
        "Exercise 12.4: expand every live prefix by every token, keep the best "
        "beam_size − finished, move those ending in EOS to finished, rank finished by "
        "log_prob / len ** length_penalty"
    )


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Seq2SeqConfig:
    """The shape of an :class:`EncoderDecoder` and its special token ids.

    Attributes:
        vocab_size: the shared (source and target) vocabulary ``V``.
        block_size: the longest source or target sequence, in tokens (BOS/EOS included).
        n_enc_layer, n_dec_layer: encoder blocks and decoder blocks.
        d_model, n_head, d_ff: width, heads, feed-forward width (``None``: ``4 · d_model``).
        dropout: dropout in attention, feed-forward and on the embeddings (training only).
        pad_id, bos_id, eos_id: padding, begin- and end-of-sentence token ids.
        fast_attention: PyTorch's fused attention kernel.
    """

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    block_size: int = 64
    n_enc_layer: int = 3
    n_dec_layer: int = 3
    d_model: int = 256
    n_head: int = 4
    d_ff: int | None = None
    dropout: float = 0.1
    fast_attention: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_enc_layer", "n_dec_layer", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_head <= 0 or self.d_model % self.n_head:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name} must be a token id < vocab_size {self.vocab_size}")

    def with_(self, **changes) -> Seq2SeqConfig:
        return replace(self, **changes)


class EncoderDecoder(nn.Module):
    """The Transformer of Vaswani et al. (2017), pre-norm: ``(src, tgt_in) → logits``.

    One token embedding (scaled by ``√d_model``, as in the paper) plus chapter 3's
    sinusoidal positions feeds both stacks; ``n_enc_layer`` encoder blocks (chapter 5's
    :class:`~lmkit.block.Block` with ``causal=False`` and the source padding mask) end in
    ``enc_ln``; ``n_dec_layer`` :class:`DecoderBlock` s end in ``dec_ln``; the head reuses
    the embedding matrix (the paper shares all three).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        grading.resolve_references()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.register_buffer(
            "positions", sinusoidal_positions(c.block_size, c.d_model), persistent=False
        )
        self.drop = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList(
            Block(
                c.d_model,
                c.n_head,
                d_ff=c.d_ff,
                dropout=c.dropout,
                causal=False,
                fast=c.fast_attention,
            )
            for _ in range(c.n_enc_layer)
        )
        self.enc_ln = LayerNorm(c.d_model)
        self.decoder = nn.ModuleList(
            DecoderBlock(c.d_model, c.n_head, d_ff=c.d_ff, dropout=c.dropout, fast=c.fast_attention)
            for _ in range(c.n_dec_layer)
        )
        self.dec_ln = LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation for the shared embedding, N(0, 1/d_model), so that
        after the √d_model scaling a token vector has unit-sized entries, like the sinusoidal
        positions it is added to (GPT-2's 0.02 would leave the tokens at 0.23, drowned by
        positions of amplitude 1). N(0, 0.02) for every other matrix, zero biases, unit
        LayerNorm gains. With the head tied to a large embedding, a fresh decoder puts its
        highest logit on its own input token: the initial loss is above log V (measured in
        tests/test_translation.py), a price paid back within a few hundred steps."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.embed.weight, std=self.config.d_model**-0.5)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"token ids must be an int64 (B, T) tensor, got {tuple(idx.shape)}")
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(
                f"a sequence of {T} tokens is longer than block_size {self.config.block_size}:"
                " split the sentence, or train a model with a larger block_size"
            )
        x = self.embed(idx) * math.sqrt(self.config.d_model) + self.positions[:T]
        return self.drop(x)

    def source_mask(self, src: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` source ids → ``(B, 1, 1, S)`` bool, True at real (non-padding) tokens."""
        return (src != self.config.pad_id)[:, None, None, :]

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` ``(B, S)`` → ``(memory (B, S, C), source mask (B, 1, 1, S))``."""
        mask = self.source_mask(src)
        x = self._embed(src)
        for block in self.encoder:
            x = block(x, mask)
        return self.enc_ln(x), mask

    def decode(
        self, tgt: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        """``tgt`` ``(B, T)`` (starting with BOS) → next-token logits ``(B, T, V)``."""
        x = self._embed(tgt)
        for block in self.decoder:
            x = block(x, memory, memory_mask)
        return self.head(self.dec_ln(x))

    def forward(
        self,
        src: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor | None = None,
        *,
        smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: ``tgt_in`` is the target shifted right (``BOS y₁ … y_{n−1}``),
        ``tgt_out`` the target itself (``y₁ … y_n EOS``, padded with ``pad_id``). Returns
        ``(logits (B, T, V), loss or None)``, the loss being
        :func:`label_smoothed_cross_entropy` with padding ignored."""
        memory, mask = self.encode(src)
        logits = self.decode(tgt_in, memory, mask)
        loss = None
        if tgt_out is not None:
            loss = label_smoothed_cross_entropy(
                logits, tgt_out, smoothing, ignore_index=self.config.pad_id
            )
        return logits, loss

    def next_log_probs_for(self, src: torch.Tensor) -> NextLogProbs:
        """The ``next_log_probs`` of one source sentence ``src`` ``(S,)`` for
        :func:`beam_search` / :func:`greedy_search`: it encodes the source once and decodes
        any batch of prefixes against it (no KV cache: sentences are short). Padding and
        BOS get probability 0."""
        if src.dim() != 1:
            raise ValueError(f"one sentence at a time: src should be (S,), got {tuple(src.shape)}")
        memory, mask = self.encode(src[None])

        never = [self.config.pad_id, self.config.bos_id]

        def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
            n = prefixes.shape[0]
            logits = self.decode(prefixes, memory.expand(n, -1, -1), mask.expand(n, -1, -1, -1))
            logits = logits[:, -1].float()
            logits[:, never] = float("-inf")  # never targets in training: never written
            return torch.log_softmax(logits, dim=-1)

        return next_log_probs

    @torch.no_grad()
    def translate_ids(
        self,
        src: torch.Tensor,
        *,
        beam_size: int = 1,
        max_len: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[int]:
        """Translate one sentence of ids ``(S,)``: greedy (``beam_size = 1``) or
        :func:`beam_search`; returns the target ids without BOS and EOS. ``max_len``
        defaults to ``2 · len(src) + 10``, at most ``block_size − 1`` tokens after BOS."""
        was_training = self.training
        self.eval()
        # Default: twice the source plus 10 tokens (a translation is rarely longer), and
        # never beyond the positions the model has.
        limit = self.config.block_size - 1
        max_len = min(2 * len(src) + 10 if max_len is None else max_len, limit)
        step = self.next_log_probs_for(src)
        c = self.config
        if beam_size == 1:
            tokens, _ = greedy_search(step, c.bos_id, c.eos_id, max_len)
        else:
            tokens = beam_search(
                step,
                c.bos_id,
                c.eos_id,
                beam_size=beam_size,
                max_len=max_len,
                length_penalty=length_penalty,
            )[0][0]
        self.train(was_training)
        return [t for t in tokens if t != c.eos_id]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Right-pad lists of ids to one ``(B, max length)`` int64 tensor."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


# ------------------------------------------------------------------ data and training


def make_tokenizer(pairs: Sequence[tuple[str, str]], vocab_size: int = 2000):
    """One byte-level BPE (chapter 2, GPT-2's pre-split pattern) for both languages,
    trained on the source and target sides of ``pairs``, with ``<pad>``, ``<bos>`` and
    ``<eos>`` on top. Byte-level: any character can be encoded (an unknown one costs a few
    byte tokens, it is never lost)."""
    from lmkit.tokenizers import GPT2_PATTERN, BPETokenizer

    text = "\n".join(f"{src}\n{tgt}" for src, tgt in pairs)
    return BPETokenizer.train(text, vocab_size, SPECIAL_TOKENS, pattern=GPT2_PATTERN)


#: The special tokens of :func:`make_tokenizer`, in id order after the merges.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")


def config_for(tokenizer, **sizes) -> Seq2SeqConfig:
    """A :class:`Seq2SeqConfig` with ``tokenizer``'s vocabulary and special ids."""
    ids = {
        name: tokenizer.special_tokens[tok]
        for name, tok in zip(("pad_id", "bos_id", "eos_id"), SPECIAL_TOKENS, strict=True)
    }
    return Seq2SeqConfig(vocab_size=tokenizer.vocab_size, **ids, **sizes)


def encode_pairs(
    tokenizer, pairs: Sequence[tuple[str, str]], config: Seq2SeqConfig
) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids of each pair: the source ``x₁ … x_m EOS``, the target ``BOS y₁ … y_n EOS``.

    Pairs with either side longer than ``config.block_size`` are left out. Returns
    ``(sources, targets, n_dropped)``."""
    sources, targets, dropped = [], [], 0
    for src, tgt in pairs:
        s = tokenizer.encode(src, allowed_special="none") + [config.eos_id]
        t = [config.bos_id, *tokenizer.encode(tgt, allowed_special="none"), config.eos_id]
        if len(s) > config.block_size or len(t) > config.block_size:
            dropped += 1
            continue
        sources.append(s)
        targets.append(t)
    return sources, targets, dropped


def _batch(sources, targets, rows, pad_id: int):
    src = pad_batch([sources[i] for i in rows], pad_id)
    tgt = pad_batch([targets[i] for i in rows], pad_id)
    return src, tgt[:, :-1], tgt[:, 1:]  # teacher forcing: read BOS y₁…, predict y₁ … EOS


@torch.no_grad()
def evaluate_loss(model: EncoderDecoder, sources, targets, batch_size: int = 128) -> float:
    """Mean cross-entropy per target token (no smoothing: the real loss), teacher-forced."""
    was_training = model.training
    model.eval()
    total, count, pad = 0.0, 0, model.config.pad_id
    for lo in range(0, len(sources), batch_size):
        src, tgt_in, tgt_out = _batch(
            sources, targets, range(lo, min(lo + batch_size, len(sources))), pad
        )
        logits, _ = model(src, tgt_in)
        n = int((tgt_out != pad).sum())
        total += float(label_smoothed_cross_entropy(logits, tgt_out, 0.0, pad)) * n
        count += n
    model.train(was_training)
    return total / count


def fit(
    model: EncoderDecoder,
    train: tuple[list[list[int]], list[list[int]]],
    val: tuple[list[list[int]], list[list[int]]],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup_steps: int = 100,
    smoothing: float = 0.1,
    clip: float = 1.0,
    weight_decay: float = 0.01,
    eval_every: int = 100,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train with chapter 7's recipe: AdamW (decay on matrices only), linear warmup and
    cosine decay to ``lr / 10``, gradient clipping; mini-batches of ``batch_size`` pairs of
    similar length, a random window (a generator seeded by ``seed``) of the pairs sorted by
    length; label-smoothed loss. Every ``eval_every`` steps
    the validation loss is measured and the weights of the best evaluation are kept; they
    are put back at the end. Returns ``{"history": [[step, train_loss, val_loss], …],
    "best_step", "best_val_loss"}``."""
    from lmkit.optim import AdamW, clip_grad_norm_, param_groups, set_cosine_lr

    sources, targets = train
    if len(sources) < batch_size:
        raise ValueError(f"{len(sources)} training pairs cannot fill a batch of {batch_size}")
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]) + len(targets[i]), i))
    opt = AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(seed)
    history, best, best_state, running = [], (None, math.inf), None, []
    for step in range(1, steps + 1):
        model.train()
        set_cosine_lr(opt, step - 1, lr=lr, warmup_steps=warmup_steps, max_steps=steps)
        # Pairs of similar length side by side (a random window of the length order):
        # about half the padding of random batches. Every pair is equally likely to be
        # drawn, except the batch_size − 1 shortest and longest, which are drawn less.
        start = int(torch.randint(len(order) - batch_size + 1, (1,), generator=g))
        rows = order[start : start + batch_size]
        src, tgt_in, tgt_out = _batch(sources, targets, rows, model.config.pad_id)
        _, loss = model(src, tgt_in, tgt_out, smoothing=smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_(model.parameters(), clip)
        opt.step()
        running.append(loss.item())
        if step % eval_every == 0 or step == steps:
            val_loss = evaluate_loss(model, *val)
            train_loss = sum(running) / len(running)
            running = []
            history.append([step, train_loss, val_loss])
            if log:
                log(f"step {step:5d}  train {train_loss:.3f}  val {val_loss:.3f}")
            if val_loss < best[1]:
                best = (step, val_loss)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_step": best[0], "best_val_loss": best[1]}


def translate(
    model: EncoderDecoder, tokenizer, sentence: str, *, beam_size: int = 1, **kwargs
) -> str:
    """Translate one sentence (text in, text out). An empty sentence gives an empty
    translation; one longer than the model's ``block_size`` raises a ``ValueError``."""
    if not sentence.strip():
        return ""
    ids = tokenizer.encode(sentence, allowed_special="none") + [model.config.eos_id]
    if len(ids) > model.config.block_size:
        raise ValueError(
            f"the sentence is {len(ids)} tokens (with EOS), longer than the model's "
            f"block_size {model.config.block_size}: split it into shorter sentences"
        )
    out = model.translate_ids(torch.tensor(ids), beam_size=beam_size, **kwargs)
    return tokenizer.decode(out).strip()


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """SacreBLEU's corpus BLEU (0–100; its default 13a tokenisation, one reference each):
    the score machine-translation papers report, computed the standard way."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


#: Model sizes and training settings: ``ci`` is what chapter 12's notebook trains in about
#: half a minute on one thread; ``cpu`` is ``scripts/train_translation.py``'s run (under
#: six minutes on two cores), whose measured BLEU the notebook shows.
PRESETS: dict[str, dict] = {
    "ci": {
        "model": dict(d_model=128, n_enc_layer=2, n_dec_layer=2, n_head=4, d_ff=512, dropout=0.1),
        "train": dict(steps=120, batch_size=64, lr=3e-3, warmup_steps=30, eval_every=40),
    },
    # 11 CPU-minutes: under 6 minutes on two cores, 11 on one (scripts/train_translation.py).
    "cpu": {
        "model": dict(d_model=128, n_enc_layer=3, n_dec_layer=3, n_head=4, d_ff=512, dropout=0.1),
        "train": dict(steps=2000, batch_size=64, lr=3e-3, warmup_steps=200, eval_every=250),
    },
    # The same model trained six times longer, with more dropout: in tuning runs without
    # dropout the validation loss turned up after about 2,000 steps (15,861 pairs are few).
    "long": {
        "model": dict(d_model=128, n_enc_layer=3, n_dec_layer=3, n_head=4, d_ff=512, dropout=0.2),
        "train": dict(steps=12000, batch_size=64, lr=3e-3, warmup_steps=400, eval_every=500),
    },
}
#: The vocabulary of the shared German–English BPE (byte-level, GPT-2's pre-split). In
#: tuning runs of 15 CPU-minutes 4,000 did no better (validation BLEU 0.71 against 0.97,
#: both near zero), and 2,000 makes the softmax half as large; small vocabularies suit small
#: data (Sennrich & Zhang, 2019).
VOCAB_SIZE = 2000
#: The longest source or target, in tokens with BOS/EOS: 7 of the 15,861 training pairs
#: are longer and left out.
BLOCK_SIZE = 64


def to_torch_transformer(model: EncoderDecoder) -> nn.Transformer:
    """The same network as PyTorch's ``nn.Transformer``, ``model``'s weights copied in.

    Used right — ``norm_first=True`` (its default is the paper's post-norm),
    ``batch_first=True`` (its default is ``(T, B, C)``), ``activation="gelu"`` (default
    ReLU), and masks in its polarity (True = *not* allowed) — it gives the same outputs:
    ``nn_transformer(model._embed(src), model._embed(tgt_in), tgt_mask=…,
    src_key_padding_mask=…, memory_key_padding_mask=…)`` then ``model.head``. Embeddings,
    positions and the head are not part of ``nn.Transformer``."""
    import warnings

    with warnings.catch_warnings():  # "enable_nested_tensor … norm_first": not used here
        warnings.simplefilter("ignore", UserWarning)
        torch_model = _build_torch_transformer(model)

    def copy_attention(theirs: nn.MultiheadAttention, weight, bias, proj: nn.Linear) -> None:
        theirs.in_proj_weight.copy_(weight)
        theirs.in_proj_bias.copy_(bias)
        theirs.out_proj.weight.copy_(proj.weight)
        theirs.out_proj.bias.copy_(proj.bias)

    def copy_norm(theirs: nn.LayerNorm, ours: LayerNorm) -> None:
        theirs.weight.copy_(ours.weight)
        theirs.bias.copy_(ours.bias)

    def copy_ffn(theirs, ours: FeedForward) -> None:
        theirs.linear1.weight.copy_(ours.fc.weight)
        theirs.linear1.bias.copy_(ours.fc.bias)
        theirs.linear2.weight.copy_(ours.proj.weight)
        theirs.linear2.bias.copy_(ours.proj.bias)

    with torch.no_grad():
        for theirs, ours in zip(torch_model.encoder.layers, model.encoder, strict=True):
            copy_attention(
                theirs.self_attn, ours.attn.qkv.weight, ours.attn.qkv.bias, ours.attn.proj
            )
            copy_norm(theirs.norm1, ours.ln1)
            copy_norm(theirs.norm2, ours.ln2)
            copy_ffn(theirs, ours.ffn)
        for theirs, ours in zip(torch_model.decoder.layers, model.decoder, strict=True):
            sa, cross = ours.self_attn, ours.cross
            copy_attention(theirs.self_attn, sa.qkv.weight, sa.qkv.bias, sa.proj)
            copy_attention(
                theirs.multihead_attn,
                torch.cat([cross.q.weight, cross.kv.weight]),
                torch.cat([cross.q.bias, cross.kv.bias]),
                cross.proj,
            )
            for n, ln in (
                (theirs.norm1, ours.ln1),
                (theirs.norm2, ours.ln2),
                (theirs.norm3, ours.ln3),
            ):
                copy_norm(n, ln)
            copy_ffn(theirs, ours.ffn)
        copy_norm(torch_model.encoder.norm, model.enc_ln)
        copy_norm(torch_model.decoder.norm, model.dec_ln)
    return torch_model.eval()


def _build_torch_transformer(model: EncoderDecoder) -> nn.Transformer:
    c = model.config
    return nn.Transformer(
        c.d_model,
        c.n_head,
        c.n_enc_layer,
        c.n_dec_layer,
        dim_feedforward=model.encoder[0].ffn.d_ff,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
