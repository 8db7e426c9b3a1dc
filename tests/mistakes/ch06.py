"""Plausible wrong answers to chapter 6's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from solutions.loss import lm_loss as ref


def _shapes(logits, targets):
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError("expected (B, T, V) and (B, T)")


def _sum(logits, targets):
    _shapes(logits, targets)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")


def _shift_again(logits, targets):
    _shapes(logits, targets)
    if logits.shape[1] == 1:
        return ref(logits, targets)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten())


def _double_softmax(logits, targets):
    _shapes(logits, targets)
    return F.cross_entropy(logits.softmax(-1).flatten(0, 1), targets.flatten())


def _naive(logits, targets):
    _shapes(logits, targets)
    p = logits.softmax(-1).gather(-1, targets.unsqueeze(-1))
    return -(p.log()).mean()


def _naive_exp(logits, targets):
    _shapes(logits, targets)
    e = logits.exp()
    p = e.gather(-1, targets.unsqueeze(-1)).squeeze(-1) / e.sum(-1)
    return -p.log().mean()


def _item(logits, targets):
    return torch.tensor(ref(logits, targets).item())


def _no_checks(logits, targets):
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1)[: logits.reshape(-1, logits.shape[-1]).shape[0]],
    )


def _bits(logits, targets):
    _shapes(logits, targets)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten()) / math.log(2)


def _transposed_targets(logits, targets):
    _shapes(logits, targets)
    return F.cross_entropy(logits.flatten(0, 1), targets.T.flatten())  # (T, B) order


def _per_position(logits, targets):
    _shapes(logits, targets)
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")


MISTAKES = {
    "6.1": [
        ("sum instead of mean", _sum, "average over all B·T positions (mean), not the sum"),
        ("shifts the targets again", _shift_again, "already shifted"),
        ("softmax before cross_entropy", _double_softmax, "softmax twice"),
        ("softmax().log() underflows", _naive, "log_softmax (or F.cross_entropy)"),
        ("exp() overflows", _naive_exp, "log_softmax (or F.cross_entropy)"),
        ("returns a detached tensor", _item, "not differentiable"),
        ("no shape checks", _no_checks, "raise a ValueError naming the expected ones"),
        ("in bits", _bits, "natural logarithm (nats), not bits"),
        (
            "targets flattened time-major",
            _transposed_targets,
            "flatten logits and targets in the same order",
        ),
        ("per-position losses", _per_position, "average over batch *and* time"),
    ],
}
