"""Reference solution of chapter 15's interpretability exercise (lmkit.interpret)."""

from __future__ import annotations

import torch


@torch.no_grad()
def logit_lens(model, idx: torch.Tensor) -> torch.Tensor:
    x = model.embed(idx)
    read = [model.head(model.norm(x))]
    for block in model.blocks:
        x = block(x)
        read.append(model.head(model.norm(x)))
    return torch.stack(read)
