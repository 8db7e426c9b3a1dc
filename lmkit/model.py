"""Chapter 6 — the GPT: embeddings, a stack of causal blocks, a final LayerNorm, a tied head.

Everything here is assembled from the pieces of chapters 3–5 (``Embeddings``,
``Block``, ``LayerNorm``), so the model runs on *your* implementations once they pass their
checks. It also loads GPT-2 weights from Hugging Face ``transformers`` checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lmkit import grading
from lmkit.attention import attention
from lmkit.block import Block, LayerNorm
from lmkit.config import PRESETS, TransformerConfig
from lmkit.loss import lm_loss
from lmkit.positions import Embeddings

if TYPE_CHECKING:  # transformers is imported only where GPT-2 weights are loaded
    from transformers import GPT2LMHeadModel

__all__ = ["GPT", "GPTConfig", "KVCache"]


@dataclass(frozen=True)
class GPTConfig(TransformerConfig):
    """A decoder-only Transformer (chapter 1's ``TransformerConfig``) plus run-time options.

    Attributes:
        dropout: dropout on embeddings, attention weights and residual branches (training).
        gelu: ``"none"`` (exact GELU) or ``"tanh"`` (the approximation GPT-2 was trained
            with; needed to reproduce GPT-2's logits exactly).
        fast_attention: use PyTorch's fused ``scaled_dot_product_attention`` kernel.
    """

    dropout: float = 0.0
    gelu: str = "none"
    fast_attention: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_segments or self.pooler or not self.tied_head:
            raise ValueError("a GPT has no segments, no pooler and a tied output head")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.gelu not in ("none", "tanh"):
            raise ValueError(f"gelu must be 'none' or 'tanh', got {self.gelu!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTConfig:
        """A GPT preset from ``lmkit.config.PRESETS`` (GPT-2 sizes use the tanh GELU)."""
        gpts = {k: v for k, v in PRESETS.items() if not v.n_segments}
        if name not in gpts:
            raise ValueError(f"unknown GPT preset {name!r}; choose from {', '.join(gpts)}")
        base = {f.name: getattr(gpts[name], f.name) for f in fields(TransformerConfig)}
        if name.startswith("gpt2"):
            base["gelu"] = "tanh"
        return cls(**{**base, **overrides})


class KVCache:
    """Keys and values of every layer for the tokens seen so far: ``(B, n_head, T, head_dim)``.

    With a cache, generating token ``t + 1`` only runs the new token through the model:
    its query attends to the stored keys and values instead of recomputing them for the
    whole prefix.
    """

    def __init__(self, n_layer: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-2)
            v = torch.cat([self.values[layer], v], dim=-2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class GPT(nn.Module):
    """GPT-2's architecture: ``idx (B, T) → logits (B, T, V)``.

    ``embed`` (token + learned positions) → dropout → ``n_layer`` pre-norm causal
    :class:`~lmkit.block.Block` s → ``ln_f`` → ``head``, whose weight *is* the token
    embedding matrix (tied). Its parameter count equals chapter 1's ``count_parameters``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        grading.resolve_references()  # before any torch.compile trace of this model
        self.config = config
        d = config.n_embd
        self.embed = Embeddings.from_config(config)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(
                d,
                config.n_head,
                d_ff=config.d_ff,
                bias=config.bias,
                dropout=config.dropout,
                causal=True,
                norm_first=True,
                fast=config.fast_attention,
            )
            for _ in range(config.n_layer)
        )
        for block in self.blocks:
            block.ffn.approximate = config.gelu
        self.ln_f = LayerNorm(d, bias=config.bias)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self.head.weight = self.embed.tok.weight  # weight tying: one V × d matrix
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm gains, and
        the projections that write into the residual stream scaled by 1/√(2·n_layer), so
        the stream's variance does not grow with depth (2 residual branches per block)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
                nn.init.ones_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            elif name.endswith(("attn.proj.weight", "ffn.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """All parameters (a tied matrix once); ``non_embedding`` leaves out positions."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.pos.weight.numel() if non_embedding else n

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """The final vectors ``(B, T, C)`` (after ``ln_f``): what the head reads, and what a
        classifier built on the GPT reads (chapter 10). Causal: position ``t`` has seen
        tokens ``0 … t`` only, so padding *after* a sequence never changes its vectors."""
        x = self.drop(self.embed(idx))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``idx`` (B, T) → ``(logits (B, T, V), loss or None)``; ``loss`` is
        :func:`~lmkit.loss.lm_loss` when ``targets`` (B, T) is given. ``last_only``: the
        logits of the last position only, ``(B, 1, V)`` — all that sampling the next token
        needs, without running the head over every position."""
        x = self.encode(idx)
        if last_only:
            if targets is not None:
                raise ValueError("last_only computes no loss: pass targets=None")
            x = x[:, -1:]
        logits = self.head(x)
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss

    @torch.no_grad()
    def forward_cached(
        self, idx: torch.Tensor, cache: KVCache, *, last_only: bool = False
    ) -> torch.Tensor:
        """Logits ``(B, T_new, V)`` of the new tokens ``idx`` (B, T_new), given ``cache``.

        The new tokens sit at positions ``cache.length …``; their keys and values are
        appended to ``cache``. Equals ``forward`` on the whole sequence (tested).
        ``last_only``: the last new token's logits only, ``(B, 1, V)``.
        """
        B, T = idx.shape
        start = cache.length
        if start + T > self.config.block_size:
            raise ValueError(
                f"the cache holds {start} tokens; {T} more exceed block_size "
                f"{self.config.block_size}"
            )
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.embed.tok(idx) + self.embed.pos(pos))
        for i, block in enumerate(self.blocks):
            attn = block.attn
            q, k, v = attn.qkv(block.ln1(x)).split(self.config.n_embd, dim=-1)
            q, k, v = (t.view(B, T, attn.n_heads, attn.head_dim).transpose(1, 2) for t in (q, k, v))
            k, v = cache.append(i, k, v)
            # New query j (absolute position start + j) sees keys 0 … start + j; a single new
            # token sees every cached key, so it needs no mask at all.
            mask = (
                None
                if T == 1
                else torch.ones(T, start + T, dtype=torch.bool, device=idx.device).tril(start)
            )
            y = attention(q, k, v, mask, fast=attn.fast)
            x = x + attn.proj(y.transpose(1, 2).reshape(B, T, self.config.n_embd))
            x = x + block.ffn(block.ln2(x))
        return self.head(self.ln_f(x[:, -1:] if last_only else x))

    # ------------------------------------------------------------------ GPT-2 interop

    _CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

    @staticmethod
    def hf_key_map(n_layer: int) -> dict[str, str]:
        """Hugging Face ``GPT2LMHeadModel`` state-dict keys → this model's keys."""
        mapping = {
            "transformer.wte.weight": "embed.tok.weight",
            "transformer.wpe.weight": "embed.pos.weight",
            "transformer.ln_f.weight": "ln_f.weight",
            "transformer.ln_f.bias": "ln_f.bias",
        }
        names = {
            "ln_1": "ln1",
            "ln_2": "ln2",
            "attn.c_attn": "attn.qkv",
            "attn.c_proj": "attn.proj",
            "mlp.c_fc": "ffn.fc",
            "mlp.c_proj": "ffn.proj",
        }
        for i in range(n_layer):
            for hf, ours in names.items():
                for kind in ("weight", "bias"):
                    mapping[f"transformer.h.{i}.{hf}.{kind}"] = f"blocks.{i}.{ours}.{kind}"
        return mapping

    @classmethod
    def from_hf(cls, hf_model: GPT2LMHeadModel, **overrides) -> GPT:
        """A GPT with the weights of a ``transformers.GPT2LMHeadModel`` (same logits)."""
        c = hf_model.config
        if getattr(c, "activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"unsupported activation {c.activation_function!r}")
        config = GPTConfig(
            vocab_size=c.vocab_size,
            block_size=c.n_positions,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_embd=c.n_embd,
            d_ff=c.n_inner,
            gelu="tanh",
            **overrides,
        )
        model = cls(config)
        theirs = hf_model.state_dict()
        ours = {}
        for hf_key, key in cls.hf_key_map(config.n_layer).items():
            tensor = theirs[hf_key]
            # GPT-2 stores its linear layers as Conv1D: (in, out), the transpose of nn.Linear.
            ours[key] = tensor.t() if hf_key.endswith(cls._CONV1D) else tensor
        ours["head.weight"] = ours["embed.tok.weight"]
        model.load_state_dict(ours, strict=True)
        return model

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides) -> GPT:
        """Load a local GPT-2 checkpoint directory (``config.json`` + weights) saved by
        ``transformers``; nothing is downloaded."""
        from transformers import GPT2LMHeadModel

        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"{path} is not a GPT-2 checkpoint directory (no config.json); download one "
                "with transformers' save_pretrained, or pass the folder that holds it"
            )
        hf = GPT2LMHeadModel.from_pretrained(path, local_files_only=True)
        return cls.from_hf(hf, **overrides)
