"""Chapter 7 — optimisation: the learning-rate schedule, gradient clipping and AdamW.

Exercises 7.1–7.3 live here. ``AdamW`` and ``param_groups`` build on them, so once your
functions pass their checks, the training loop of chapter 7 runs on your own optimiser.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from lmkit.grading import exercise

__all__ = [
    "AdamW",
    "adamw_step",
    "clip_grad_norm_",
    "cosine_lr",
    "param_groups",
    "set_cosine_lr",
]


@exercise("7.1")
def cosine_lr(
    step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> float:
    """The learning rate at ``step`` (0-based): linear warmup, then cosine decay to ``min_lr``.

    - ``step < warmup_steps``: ``max_lr * (step + 1) / warmup_steps`` (so the first step
      already trains, and step ``warmup_steps - 1`` reaches ``max_lr``);
    - ``warmup_steps <= step <= max_steps``: with ``r = (step - warmup_steps) /
      (max_steps - warmup_steps)``, ``min_lr + (max_lr - min_lr) * (1 + cos(π r)) / 2``
      — ``max_lr`` at the end of warmup, ``min_lr`` at ``max_steps``;
    - ``step > max_steps``: ``min_lr``.

    ``warmup_steps == max_steps`` means no decay phase: ``min_lr`` after warmup.
    Raises ``ValueError`` for a negative step or warmup, ``max_steps < warmup_steps``, or
    ``min_lr > max_lr``.
    """
    raise NotImplementedError(
        "Exercise 7.1: linear warmup to max_lr over warmup_steps, then a half cosine down "
        "to min_lr at max_steps, min_lr afterwards"
    )


@exercise("7.2")
def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the gradients of ``parameters`` in place so their *global* L2 norm ≤ ``max_norm``.

    The global norm is ``sqrt(sum over all parameters of sum(grad ** 2))`` — one number for
    the whole model, so clipping rescales every gradient by the same factor and keeps the
    update's direction. Parameters whose ``.grad`` is ``None`` are skipped. When the norm
    exceeds ``max_norm``, every gradient is multiplied by ``max_norm / (norm + 1e-6)``;
    otherwise nothing changes (never scale gradients *up*).

    Returns:
        The global norm *before* clipping, a 0-dim float tensor (as
        ``torch.nn.utils.clip_grad_norm_`` does): log it to see how often you clip.
    """
    raise NotImplementedError(
        "Exercise 7.2: compute the global L2 norm of all gradients; if it exceeds max_norm, "
        "scale every gradient in place by max_norm / (norm + 1e-6); return the norm"
    )


@exercise("7.3")
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
    """One AdamW update (Loshchilov & Hutter, 2019), in place, as ``torch.optim.AdamW`` does.

    For each parameter ``p`` with gradient ``g``, first moment ``m`` and second moment ``v``
    (all the same shape), and ``step`` = t, the number of this update (1 for the first):

    1. decoupled weight decay: ``p ← p · (1 − lr · weight_decay)``;
    2. moments: ``m ← β₁ m + (1 − β₁) g`` and ``v ← β₂ v + (1 − β₂) g²``;
    3. bias correction: ``m̂ = m / (1 − β₁ᵗ)``, ``v̂ = v / (1 − β₂ᵗ)``;
    4. update: ``p ← p − lr · m̂ / (√v̂ + ε)``.

    ``params``, ``exp_avgs`` and ``exp_avg_sqs`` are modified in place (use in-place tensor
    operations, under ``torch.no_grad()``); nothing is returned.
    """
    raise NotImplementedError(
        "Exercise 7.3: decay p by lr·weight_decay, update m and v, bias-correct them, "
        "then p -= lr · m̂ / (sqrt(v̂) + eps)"
    )


class AdamW(torch.optim.Optimizer):
    """AdamW built on :func:`adamw_step` — the optimiser the course's training loop uses.

    Same arguments and state names (``exp_avg``, ``exp_avg_sq``, ``step``) as
    ``torch.optim.AdamW``, so checkpoints and parameter groups work the same way.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"invalid AdamW hyper-parameters: lr={lr}, betas={betas}, eps={eps}, "
                f"weight_decay={weight_decay}"
            )
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, ms, vs, steps = [], [], [], [], set()
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                ms.append(state["exp_avg"])
                vs.append(state["exp_avg_sq"])
                steps.add(state["step"])
            # Parameters of a group normally share one step count; update them together.
            for t in sorted(steps):
                idx = [i for i, p in enumerate(params) if self.state[p]["step"] == t]
                adamw_step(
                    [params[i] for i in idx],
                    [grads[i] for i in idx],
                    [ms[i] for i in idx],
                    [vs[i] for i in idx],
                    t,
                    lr=group["lr"],
                    betas=group["betas"],
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                )
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group and a non-decayed one (nanoGPT's rule).

    Matrices (``dim >= 2``: linear weights, embeddings) are decayed; vectors (biases,
    LayerNorm gains and shifts) are not — shrinking a gain or a bias towards zero is not
    regularisation, it just fights the layer. A tied matrix appears once.
    """
    decay, no_decay = [], []
    for p in model.parameters():  # .parameters() yields a shared tensor once
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def set_cosine_lr(
    opt: torch.optim.Optimizer, step: int, *, lr: float, warmup_steps: int, max_steps: int
) -> float:
    """Set every group of ``opt`` to chapter 7's rate for the 0-based ``step``: linear
    warmup (at most ``max_steps``) then cosine decay from ``lr`` to ``lr / 10``, the recipe
    every later chapter trains with. Returns the rate."""
    rate = cosine_lr(
        step,
        max_lr=lr,
        min_lr=lr / 10,
        warmup_steps=min(warmup_steps, max_steps),
        max_steps=max_steps,
    )
    for group in opt.param_groups:
        group["lr"] = rate
    return rate
