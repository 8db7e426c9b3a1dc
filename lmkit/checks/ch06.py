"""Checks of chapter 6: lm_loss.

The judge is PyTorch's ``F.cross_entropy`` on the flattened batch × time. This module is
the model of a small check: cases, the toolkit's scaffold, and a table of suspects (the
value each typical mistake produces, paired with its hint).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmkit.checks import check_mean_cross_entropy
from lmkit.grading import checks


def _case(seed: int, B: int, T: int, V: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * scale
    targets = torch.randint(V, (B, T), generator=g)
    return logits, targets


def _want(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def _suspects(logits: torch.Tensor, targets: torch.Tensor) -> list[tuple[Callable, str]]:
    B, T, V = logits.shape
    logp = torch.log_softmax(logits.double(), dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    suspects = [
        (lambda: -picked.sum().item(), "average over all B·T positions (mean), not the sum"),
        (
            lambda: F.cross_entropy(torch.softmax(logits, -1).flatten(0, 1), targets.flatten()),
            "pass the raw logits: cross-entropy applies log-softmax itself (you applied "
            "softmax twice)",
        ),
        (
            lambda: -picked.mean().item() / math.log(2),
            "use the natural logarithm (nats), not bits",
        ),
    ]
    if T > 1:
        suspects.append(
            (
                lambda: F.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten()),
                "the targets are already shifted by get_batch: compare logits[:, t] with "
                "targets[:, t], do not shift again",
            )
        )
    if B > 1:
        suspects.append(
            (
                lambda: -logp.gather(-1, targets.T.reshape(B, T, 1)).mean().item(),
                "flatten logits and targets in the same order: logits.flatten(0, 1) with "
                "targets.flatten(), or .view(B * T, V) with .view(B * T)",
            )
        )
    return [(lambda s=s: float(s()), text) for s, text in suspects]


@checks("6.1")
def check_lm_loss(impl: Callable) -> None:
    check_mean_cross_entropy(
        "lm_loss",
        impl,
        [
            ("B=2, T=5, V=7", *_case(0, 2, 5, 7)),
            ("B=1, T=1, V=3", *_case(1, 1, 1, 3)),
            ("B=3, T=4, V=11 with logits of size ~1e4", *_case(2, 3, 4, 11, scale=1e4)),
            ("B=4, T=3, V=50257 (GPT-2's vocabulary)", *_case(3, 4, 3, 50257)),
        ],
        _want,
        _suspects,
    )
