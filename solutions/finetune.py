"""Reference solutions of chapter 10 (lmkit.finetune)."""

from __future__ import annotations

import torch
from torch import nn

import lmkit.finetune


def mean_pool(hidden: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    if hidden.dim() != 3 or padding_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"mean_pool expects hidden (B, T, C) and padding_mask (B, T); got "
            f"{tuple(hidden.shape)} and {tuple(padding_mask.shape)}"
        )
    weights = padding_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1): 1 real, 0 padding
    total = (hidden * weights).sum(dim=1)  # (B, C)
    count = weights.sum(dim=1).clamp(min=1.0)  # (B, 1); an empty row divides 0 by 1
    return total / count


class LoRALinear(lmkit.finetune.LoRALinear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (…, in) @ (in, r) @ (r, out): two thin products, never the (out, in) matrix B A.
        update = (self.dropout(x) @ self.A.T) @ self.B.T
        return self.base(x) + self.scaling * update


def add_lora(
    model: nn.Module,
    targets: tuple[str, ...],
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    model.requires_grad_(False)
    # Collect first, then replace: changing modules while iterating over them is unsafe.
    chosen = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.endswith(tuple(targets))
    ]
    if not chosen:
        raise ValueError(f"no nn.Linear in the model has a name ending with {tuple(targets)}")
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(
            parent,
            child,
            lmkit.finetune.LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout),
        )
    return chosen
