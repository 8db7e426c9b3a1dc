"""Reference solutions of chapter 1 (lmkit.scale)."""

from __future__ import annotations

from lmkit.config import TransformerConfig


def count_parameters(config: TransformerConfig) -> int:
    d, b = config.n_embd, int(config.bias)
    embeddings = (config.vocab_size + config.block_size + config.n_segments) * d
    layer_norm = d + b * d  # a gain and (optionally) a shift per feature

    attention = d * 3 * d + b * 3 * d + d * d + b * d  # fused QKV, then output projection
    ffn = d * config.ffn_dim + b * config.ffn_dim + config.ffn_dim * d + b * d
    block = attention + ffn + 2 * layer_norm

    pooler = (d * d + b * d) if config.pooler else 0
    head = 0 if config.tied_head else config.vocab_size * d  # no bias, as in GPT-2/BERT
    return embeddings + config.n_layer * block + layer_norm + pooler + head


def flops_per_token(config: TransformerConfig, seq_len: int | None = None) -> int:
    T = config.block_size if seq_len is None else seq_len
    lookups = (config.block_size + config.n_segments) * config.n_embd
    n = count_parameters(config) - lookups
    return 6 * n + 12 * config.n_layer * config.n_embd * T


_BYTES = {
    # precision: (weights, gradients, optimizer) bytes per parameter
    "fp32": (4, 4, 4 + 4),  # AdamW m and v in fp32
    "bf16": (2, 2, 2 + 2),  # m and v in bf16 too
    "mixed": (2, 2, 4 + 4 + 4),  # bf16 compute copy; fp32 master weights, m, v
}


def training_memory(n_params: int, precision: str = "fp32") -> dict[str, int]:
    if precision not in _BYTES:
        raise ValueError(f"precision must be one of {sorted(_BYTES)}, got {precision!r}")
    w, g, o = (n_params * b for b in _BYTES[precision])
    return {"weights": w, "gradients": g, "optimizer": o, "total": w + g + o}
