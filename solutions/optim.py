"""Reference solutions of chapter 7 (lmkit.optim)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def cosine_lr(
    step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> float:
    if step < 0 or warmup_steps < 0:
        raise ValueError(f"step and warmup_steps must be ≥ 0, got {step} and {warmup_steps}")
    if max_steps < warmup_steps:
        raise ValueError(f"max_steps ({max_steps}) must be ≥ warmup_steps ({warmup_steps})")
    if min_lr > max_lr:
        raise ValueError(f"min_lr ({min_lr}) must be ≤ max_lr ({max_lr})")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))


def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    # Norm of the per-tensor norms = sqrt of the sum of all squares, without concatenating.
    total = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
    )
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g.detach().mul_(scale.to(g.dtype))
    return total


@torch.no_grad()
def adamw_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    step: int,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
) -> None:
    beta1, beta2 = betas
    bias1 = 1 - beta1**step
    bias2 = 1 - beta2**step
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        p.mul_(1 - lr * weight_decay)  # decoupled: not added to the gradient
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
        p.addcdiv_(m, denom, value=-lr / bias1)
