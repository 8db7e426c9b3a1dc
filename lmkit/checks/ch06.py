"""Checks of chapter 6: lm_loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

import lmkit.loss  # noqa: F401  (registers Exercise 6.1)
from lmkit.checks import diagnose, expect_type, expect_value_error, fail
from lmkit.grading import checks


def _case(seed: int, B: int, T: int, V: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * scale
    targets = torch.randint(V, (B, T), generator=g)
    return logits, targets


@checks("6.1")
def check_lm_loss(impl: Callable) -> None:
    cases = [
        ("B=2, T=5, V=7", _case(0, 2, 5, 7)),
        ("B=1, T=1, V=3", _case(1, 1, 1, 3)),
        ("B=3, T=4, V=11 with logits of size ~1e4", _case(2, 3, 4, 11, scale=1e4)),
        ("B=4, T=3, V=50257 (GPT-2's vocabulary)", _case(3, 4, 3, 50257)),
    ]
    for case, (logits, targets) in cases:
        x = logits.clone().requires_grad_(True)
        got = impl(x, targets.clone())
        expect_type(got, torch.Tensor, f"lm_loss({case})")
        if got.dim() != 0:
            raise AssertionError(
                f"lm_loss({case}) should return a 0-dim tensor (one number, the mean), got "
                f"shape {tuple(got.shape)}"
                + ("\nHint: average over batch *and* time" if got.numel() > 1 else "")
            )
        # The real reference: PyTorch's cross-entropy on flattened batch × time.
        want = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        g = got.item()
        if not math.isfinite(g):
            raise AssertionError(
                f"lm_loss({case}) is {g}.\nHint: softmax(...).log() overflows or underflows "
                "for large logits; use torch.log_softmax (or F.cross_entropy), which "
                "subtracts the maximum first"
            )
        if torch.allclose(got.detach(), want, rtol=1e-5, atol=1e-6):
            if not got.requires_grad:
                raise AssertionError(
                    f"lm_loss({case}) is right but not differentiable: keep it a torch "
                    "computation (no .item(), no numpy) so loss.backward() works"
                )
            continue
        B, T, V = logits.shape
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        hint = diagnose(
            g,
            want.item(),
            [
                (
                    lambda g, w: math.isclose(g, -picked.sum().item(), rel_tol=1e-5),
                    "average over all B·T positions (mean), not the sum",
                ),
                (
                    lambda g, w: (
                        T > 1
                        and math.isclose(
                            g,
                            F.cross_entropy(
                                logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten()
                            ).item(),
                            rel_tol=1e-5,
                        )
                    ),
                    "the targets are already shifted by get_batch: compare logits[:, t] with "
                    "targets[:, t], do not shift again",
                ),
                (
                    lambda g, w: math.isclose(
                        g,
                        F.cross_entropy(
                            torch.softmax(logits, -1).flatten(0, 1), targets.flatten()
                        ).item(),
                        rel_tol=1e-5,
                    ),
                    "pass the raw logits: cross-entropy applies log-softmax itself (you applied "
                    "softmax twice)",
                ),
                (
                    lambda g, w: math.isclose(g, -picked.mean().item() / math.log(2), rel_tol=1e-5),
                    "use the natural logarithm (nats), not bits",
                ),
                (
                    lambda g, w: (
                        B > 1
                        and math.isclose(
                            g,
                            -logp.gather(-1, targets.T.reshape(B, T, 1)).mean().item(),
                            rel_tol=1e-5,
                        )
                    ),
                    "flatten logits and targets in the same order: logits.flatten(0, 1) with "
                    "targets.flatten(), or .view(B * T, V) with .view(B * T)",
                ),
            ],
        )
        fail(f"lm_loss({case})", g, want.item(), hint)
    for bad, what in [
        (
            (torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long)),
            "targets (2, 4) for logits (2, 3, 5)",
        ),
        ((torch.zeros(6, 5), torch.zeros(6, dtype=torch.long)), "2-D logits (6, 5)"),
    ]:
        expect_value_error(
            f"lm_loss with {what}",
            lambda bad=bad: impl(*bad),
            "check the shapes first and raise a ValueError naming the expected ones, "
            "(B, T, V) and (B, T)",
        )
