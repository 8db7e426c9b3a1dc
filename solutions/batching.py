"""Reference solution of chapter 2's batching exercise (lmkit.batching)."""

from __future__ import annotations

import numpy as np
import torch


def get_batch(
    data, block_size: int, batch_size: int, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    n = len(data)
    if block_size >= n:
        raise ValueError(
            f"block_size ({block_size}) must be smaller than len(data) ({n}): a window "
            "needs block_size + 1 tokens, its inputs and the next token as the last target"
        )
    # n - block_size valid starts: 0 … n - block_size - 1 (randint's high is exclusive).
    ix = torch.randint(n - block_size, (batch_size,), generator=generator).tolist()
    if isinstance(data, torch.Tensor):
        rows = [data[i : i + block_size + 1].long() for i in ix]
        chunk = torch.stack(rows)
    else:  # NumPy arrays and memmaps (uint16), lists
        chunk = torch.from_numpy(
            np.stack([np.asarray(data[i : i + block_size + 1], dtype=np.int64) for i in ix])
        )
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()
