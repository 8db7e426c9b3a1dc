"""Chapter 11 — from GPT-2 to a modern LLM: RMSNorm, SwiGLU, RoPE and grouped-query attention.

Today's open models (Llama, Qwen, SmolLM, Mistral) keep GPT-2's skeleton — token embeddings,
a stack of pre-norm residual blocks, a final norm, a head — and change four of its pieces:

- **RMSNorm** instead of LayerNorm: no mean subtracted, no bias (:func:`rms_norm`, 11.1);
- **SwiGLU** instead of the GELU feed-forward network: a gated product of two projections
  (:meth:`SwiGLU.forward`, 11.2);
- **RoPE** instead of learned positions: queries and keys are rotated (chapter 3's
  :func:`~lmkit.positions.apply_rope`), nothing is added to the embeddings;
- **grouped-query attention**: ``n_head`` query heads share ``n_kv_head`` key/value heads,
  which shrinks the KV cache ``n_head / n_kv_head`` times (:func:`repeat_kv`, 11.3, and
  :meth:`GroupedQueryAttention.forward`, 11.4).

:class:`Llama` assembles them; :meth:`Llama.from_gguf` loads SmolLM2-135M-Instruct from its
GGUF file (read by :mod:`lmkit.gguf`) and gives the same logits as Hugging Face's
``LlamaForCausalLM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: F401 — F.silu, for your SwiGLU
from torch import nn

from lmkit import grading
from lmkit.attention import attention  # noqa: F401 — for your GroupedQueryAttention
from lmkit.grading import exercise
from lmkit.loss import lm_loss
from lmkit.model import KVCache
from lmkit.positions import apply_rope  # noqa: F401 — for your GroupedQueryAttention

__all__ = [
    "GroupedQueryAttention",
    "Llama",
    "LlamaBlock",
    "LlamaConfig",
    "RMSNorm",
    "SwiGLU",
    "count_llama_parameters",
    "kv_cache_bytes",
    "past_length",
    "repeat_kv",
    "rms_norm",
    "swiglu_hidden",
]


# ------------------------------------------------------------------ 11.1 RMSNorm


@exercise("11.1")
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm (Zhang & Sennrich, 2019): ``x / sqrt(mean(x²) + eps) * weight``.

    LayerNorm without its two "centring" parts: no mean is subtracted and there is no bias.
    Each vector (the last dimension, of size ``C``) is divided by its root mean square,
    ``sqrt(mean over the C entries of x² + eps)`` (``eps`` inside the square root, so an
    all-zero vector gives 0, not NaN), then scaled entry by entry by ``weight``.

    Args:
        x: a float tensor of shape ``(..., C)``; not modified.
        weight: the learned gain, shape ``(C,)``.
        eps: added to the mean square (1e-5 in SmolLM2 and Llama 2, 1e-6 in Llama 3).

    Returns:
        A tensor of the shape and dtype of ``x``.

    Raises:
        ValueError: if ``weight`` is not of shape ``(C,)``.
    """
    raise NotImplementedError(
        "Exercise 11.1: divide x by sqrt(mean(x**2 over the last dim) + eps), times weight"
    )


class RMSNorm(nn.Module):
    """``rms_norm`` as a layer: a gain ``weight`` of size ``d_model`` (initialised to 1)."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}"


# ------------------------------------------------------------------ 11.2 SwiGLU


def swiglu_hidden(d_model: int, multiple_of: int = 256) -> int:
    """Llama's SwiGLU width for a model of width ``d_model``: ``8·d/3`` (the width at which
    three matrices cost what GELU's two ``d × 4d`` ones cost), rounded *up* to a multiple of
    ``multiple_of`` (Meta's ``llama/model.py``). ``swiglu_hidden(4096) == 11008``."""
    hidden = int(2 * (4 * d_model) / 3)
    return multiple_of * math.ceil(hidden / multiple_of)


class SwiGLU(nn.Module):
    """The gated feed-forward network of Llama (Shazeer, 2020, "GLU Variants").

    Three bias-free projections: ``gate`` and ``up`` map ``d_model → d_ff``, ``down`` maps
    ``d_ff → d_model`` (Hugging Face names them ``gate_proj``, ``up_proj``, ``down_proj``;
    GGUF ``ffn_gate``, ``ffn_up``, ``ffn_down``).
    """

    def __init__(self, d_model: int, d_ff: int, *, bias: bool = False) -> None:
        super().__init__()
        self.d_model, self.d_ff = d_model, d_ff
        self.gate = nn.Linear(d_model, d_ff, bias=bias)
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    @exercise("11.2")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``down(silu(gate(x)) * up(x))``: ``(..., d_model)`` → ``(..., d_model)``.

        ``silu(z) = z · sigmoid(z)`` (``F.silu``; also called swish) is applied to the
        *gate* projection only; the product with ``up(x)`` is entry by entry, in the
        ``d_ff``-wide hidden space; ``down`` maps it back. No dropout.
        """
        raise NotImplementedError("Exercise 11.2: self.down(F.silu(self.gate(x)) * self.up(x))")


# ------------------------------------------------------------------ 11.3–11.4 GQA


@exercise("11.3")
def repeat_kv(k: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each key/value head ``n_rep`` times, so ``n_kv`` heads serve ``n_kv · n_rep``
    query heads.

    Query heads are grouped in order: query heads ``j·n_rep … (j+1)·n_rep − 1`` all use
    key/value head ``j``. So output head ``h`` is input head ``h // n_rep``:
    ``out[:, h] = k[:, h // n_rep]`` (Hugging Face's ``repeat_kv`` and
    ``F.scaled_dot_product_attention(..., enable_gqa=True)`` use the same grouping).

    Args:
        k: keys or values of shape ``(B, n_kv, T, head_dim)``; not modified.
        n_rep: how many query heads share one key/value head (≥ 1); ``n_rep = 1`` is plain
            multi-head attention and returns ``k`` unchanged.

    Returns:
        A tensor of shape ``(B, n_kv · n_rep, T, head_dim)``.

    Raises:
        ValueError: if ``k`` is not 4-D or ``n_rep < 1``.
    """
    raise NotImplementedError(
        "Exercise 11.3: (B, n_kv, T, hd) → (B, n_kv·n_rep, T, hd), head h = input head h // n_rep"
    )


def past_length(cache: KVCache | None, layer: int) -> int:
    """How many tokens ``cache`` already holds for ``layer`` (0 without a cache).

    Not ``cache.length``, which counts layer 0's keys: inside a forward pass layer 0 has
    already appended the new tokens when layer 1 runs."""
    if cache is None or cache.keys[layer] is None:
        return 0
    return cache.keys[layer].shape[-2]


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with RoPE and ``n_kv_head`` key/value heads (Ainslie et al., 2023).

    ``self.q`` maps ``d_model → n_head · head_dim`` (= ``d_model``), ``self.k`` and ``self.v``
    map ``d_model → n_kv_head · head_dim`` (a third of that in SmolLM2), ``self.proj`` maps
    the merged heads back; no biases. The rows of ``q``'s and ``k``'s weights are in the
    order that chapter 3's *interleaved* :func:`~lmkit.positions.apply_rope` expects (pairs
    ``2i, 2i+1`` of each head rotate together) — llama.cpp's GGUF layout.

    Args:
        d_model: the width ``C``.
        n_head: query heads; must divide ``d_model``.
        n_kv_head: key/value heads; must divide ``n_head``.
        rope_base: RoPE's frequency base (10,000 in Llama 2, 100,000 in SmolLM2).
        fast: compute attention with PyTorch's fused kernel (chapter 4's ``attention``).
    """

    def __init__(
        self,
        d_model: int,
        n_head: int,
        n_kv_head: int,
        *,
        rope_base: float = 10000.0,
        bias: bool = False,
        fast: bool = False,
    ) -> None:
        super().__init__()
        if n_head <= 0 or d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        if n_kv_head <= 0 or n_head % n_kv_head:
            raise ValueError(f"n_head ({n_head}) must be divisible by n_kv_head ({n_kv_head})")
        self.d_model, self.n_head, self.n_kv_head = d_model, n_head, n_kv_head
        self.head_dim = d_model // n_head
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")
        self.rope_base, self.fast = rope_base, fast
        kv = n_kv_head * self.head_dim
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.k = nn.Linear(d_model, kv, bias=bias)
        self.v = nn.Linear(d_model, kv, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    @exercise("11.4")
    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        """Grouped-query causal self-attention of ``x`` ``(B, T, C)`` → ``(B, T, C)``.

        1. ``q = self.q(x)`` → ``(B, n_head, T, head_dim)``; ``k = self.k(x)`` and
           ``v = self.v(x)`` → ``(B, n_kv_head, T, head_dim)`` (view, then transpose).
        2. Positions: the tokens of ``x`` sit at ``start … start + T − 1``, where
           ``start = past_length(cache, layer)`` (0 without a cache). Rotate ``q`` and ``k`` (not
           ``v``) with :func:`~lmkit.positions.apply_rope` at those positions and
           ``base=self.rope_base``.
        3. With a cache: ``k, v = cache.append(layer, k, v)`` — store the ``n_kv_head``
           rotated keys and the values, *before* repeating them (that is GQA's saving);
           it returns every key and value so far, ``(B, n_kv_head, start + T, head_dim)``.
        4. :func:`repeat_kv` keys and values to ``n_head`` heads; causal attention: the new
           query at position ``start + i`` sees the keys ``0 … start + i`` (a
           ``(T, start + T)`` mask, True = may attend; with ``start = 0`` it is
           chapter 4's ``causal_mask(T)``). Use chapter 4's
           :func:`~lmkit.attention.attention` with ``fast=self.fast``.
        5. Merge heads ``(B, n_head, T, head_dim)`` → ``(B, T, C)`` and apply ``self.proj``.

        Raises:
            ValueError: if ``x`` is not ``(B, T, d_model)``.
        """
        raise NotImplementedError(
            "Exercise 11.4: project q, k, v → heads → RoPE on q and k at positions "
            "start… → cache → repeat_kv → causal attention → merge → proj"
        )


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a Llama-architecture model (names as :func:`lmkit.gguf.llama_config_kwargs`
    returns them). SmolLM2-135M: ``LlamaConfig.smollm2_135m()``.

    Attributes:
        vocab_size, n_layer, d_model: as GPT-2's ``V``, ``L``, ``d``.
        n_head, n_kv_head: query heads and key/value heads (``n_kv_head`` divides
            ``n_head``; equal = multi-head attention, 1 = multi-query attention).
        d_ff: the SwiGLU hidden width.
        block_size: the longest context (RoPE has no table, but the model was trained up
            to it).
        rope_base, rms_eps: RoPE's frequency base and RMSNorm's epsilon.
        tie_embeddings: the head reuses the token-embedding matrix (SmolLM2: yes).
        fast_attention: PyTorch's fused attention kernel.
    """

    vocab_size: int = 49152
    n_layer: int = 30
    d_model: int = 576
    n_head: int = 9
    n_kv_head: int = 3
    d_ff: int = 1536
    block_size: int = 8192
    rope_base: float = 100000.0
    rms_eps: float = 1e-5
    tie_embeddings: bool = True
    fast_attention: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "d_model", "n_head", "n_kv_head", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.n_kv_head})"
            )
        if (self.d_model // self.n_head) % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.d_model // self.n_head}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @classmethod
    def smollm2_135m(cls, **overrides) -> LlamaConfig:
        """SmolLM2-135M's shape (its GGUF metadata gives the same numbers)."""
        return cls(**overrides)


def count_llama_parameters(config: LlamaConfig) -> int:
    """Chapter 1's count, extended: token embeddings ``V·d``; per block, ``q`` and ``proj``
    ``d·d`` each, ``k`` and ``v`` ``d·(n_kv_head·head_dim)`` each, SwiGLU ``3·d·d_ff`` and
    two RMSNorm gains ``2·d``; the final RMSNorm ``d``; a head ``V·d`` unless tied. No
    biases and no position embeddings (RoPE has no parameters)."""
    d, kv = config.d_model, config.n_kv_head * config.head_dim
    block = 2 * d * d + 2 * d * kv + 3 * d * config.d_ff + 2 * d
    head = 0 if config.tie_embeddings else config.vocab_size * d
    return config.vocab_size * d + config.n_layer * block + d + head


def kv_cache_bytes(config: LlamaConfig, n_tokens: int, bytes_per_value: int = 2) -> int:
    """Bytes of the KV cache for one sequence of ``n_tokens``: keys and values of
    ``n_kv_head`` heads of ``head_dim`` in each of ``n_layer`` layers (fp16/bf16 = 2 bytes)."""
    return 2 * config.n_layer * config.n_kv_head * config.head_dim * n_tokens * bytes_per_value


class LlamaBlock(nn.Module):
    """A pre-norm block: ``x + attn(attn_norm(x))``, then ``x + ffn(ffn_norm(x))``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attn_norm = RMSNorm(d, config.rms_eps)
        self.attn = GroupedQueryAttention(
            d,
            config.n_head,
            config.n_kv_head,
            rope_base=config.rope_base,
            fast=config.fast_attention,
        )
        self.ffn_norm = RMSNorm(d, config.rms_eps)
        self.ffn = SwiGLU(d, config.d_ff)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        """``(B, T, d)`` → ``(B, T, d)``; with a cache, ``x`` holds the new tokens only and
        their keys and values are appended to ``cache`` at index ``layer``."""
        x = x + self.attn(self.attn_norm(x), cache, layer)
        return x + self.ffn(self.ffn_norm(x))


class Llama(nn.Module):
    """The Llama architecture: ``idx (B, T) → logits (B, T, V)``.

    ``embed`` (tokens only: RoPE puts positions into attention) → ``n_layer``
    :class:`LlamaBlock` s → ``norm`` → ``head`` (tied to ``embed`` when
    ``config.tie_embeddings``). Same interface as chapter 6's ``GPT`` — ``forward(idx,
    targets)`` and ``forward_cached(idx, cache)`` — so chapter 8's
    :func:`~lmkit.sampling.generate` runs it.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        grading.resolve_references()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.d_model, config.rms_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) weights (Llama's ``initializer_range``), unit RMSNorm gains."""
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """All parameters, a tied matrix once (equals :func:`count_llama_parameters`)."""
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx: torch.Tensor, start: int = 0) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
            what = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be an int64 tensor of shape (B, T), got {what}")
        if start + idx.shape[1] > self.config.block_size:
            limit = self.config.block_size
            raise ValueError(
                f"{start} cached + {idx.shape[1]} new tokens exceed block_size {limit}, "
                f"the longest context this model takes; keep the last {limit - start} "
                "new tokens (idx[:, -n:])"
            )

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``idx`` (B, T) → ``(logits (B, T, V), loss or None)``. ``last_only``: the last
        position's logits only, ``(B, 1, V)`` — what sampling needs; SmolLM2's head is
        ``V·d`` = 28M multiply-adds per position, a fifth of the whole model's."""
        self._check_idx(idx)
        if last_only and targets is not None:
            raise ValueError("last_only computes no loss: pass targets=None")
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x[:, -1:] if last_only else x))
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss

    @torch.no_grad()
    def forward_cached(
        self, idx: torch.Tensor, cache: KVCache, *, last_only: bool = False
    ) -> torch.Tensor:
        """Logits ``(B, T_new, V)`` of the new tokens ``idx``, at positions
        ``cache.length …``; their keys and values are appended to ``cache`` (tested to equal
        :meth:`forward` on the whole sequence). ``last_only``: ``(B, 1, V)``, the last new
        token's."""
        self._check_idx(idx, cache.length)
        x = self.embed(idx)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        return self.head(self.norm(x[:, -1:] if last_only else x))

    # ------------------------------------------------------------------ GGUF weights

    @staticmethod
    def gguf_key_map(n_layer: int) -> dict[str, str]:
        """GGUF tensor names (llama.cpp's) → this model's state-dict keys."""
        mapping = {"token_embd.weight": "embed.weight", "output_norm.weight": "norm.weight"}
        names = {
            "attn_norm": "attn_norm",
            "attn_q": "attn.q",
            "attn_k": "attn.k",
            "attn_v": "attn.v",
            "attn_output": "attn.proj",
            "ffn_norm": "ffn_norm",
            "ffn_gate": "ffn.gate",
            "ffn_up": "ffn.up",
            "ffn_down": "ffn.down",
        }
        for i in range(n_layer):
            for theirs, ours in names.items():
                mapping[f"blk.{i}.{theirs}.weight"] = f"blocks.{i}.{ours}.weight"
        return mapping

    @classmethod
    def from_gguf_tensors(cls, config: LlamaConfig, tensors: dict[str, torch.Tensor]) -> Llama:
        """A model with the weights of a GGUF file's tensors (float32, ``(out, in)``).

        The ``attn_q``/``attn_k`` rows are kept as the file has them: llama.cpp permutes
        them for its interleaved RoPE, which is exactly chapter 3's ``apply_rope``. A file
        without ``output.weight`` has a tied head.
        """
        mapping = cls.gguf_key_map(config.n_layer)
        if "output.weight" in tensors:
            if config.tie_embeddings:
                raise ValueError("the file has an output.weight but the config ties the head")
            mapping["output.weight"] = "head.weight"
        elif not config.tie_embeddings:
            raise ValueError("the config has an untied head but the file has no output.weight")
        missing = sorted(set(mapping) - set(tensors))
        if missing:
            raise ValueError(f"the GGUF tensors lack {len(missing)} weights, e.g. {missing[:3]}")
        with torch.device("meta"):
            model = cls(config)
        state = {ours: tensors[theirs].float() for theirs, ours in mapping.items()}
        if config.tie_embeddings:
            state["head.weight"] = state["embed.weight"]
        model.load_state_dict(state, strict=True, assign=True)
        if config.tie_embeddings:
            model.head.weight = model.embed.weight
        return model.eval()

    @classmethod
    def from_gguf(cls, path: str | Path | None = None, **overrides) -> Llama:
        """SmolLM2-135M-Instruct (or the GGUF file at ``path``), dequantised to float32."""
        from lmkit.gguf import llama_config_kwargs, read_gguf, smollm2_path

        metadata, tensors = read_gguf(Path(path) if path is not None else smollm2_path())
        config = LlamaConfig(**{**llama_config_kwargs(metadata), **overrides})
        return cls.from_gguf_tensors(config, tensors)
