"""Checks of chapter 8: sample_next_token."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from lmkit.checks import binomial_tol, call, expect_raises
from lmkit.grading import checks, reference

N = 20_000  # rows sampled per case: every kept token (p ≥ 1%) shows up, frequencies settle


def _draw(fn: Callable, logits: torch.Tensor, seed: int, **kw) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return fn(logits.clone(), generator=g, **kw)


class _Case(NamedTuple):
    description: str
    logits: torch.Tensor
    kwargs: dict
    hint: str  # if the sampled tokens or their frequencies are wrong


def _row(values: list[float]) -> torch.Tensor:
    return torch.tensor(values).repeat(N, 1)


CASES = [
    _Case(
        "temperature=1",
        _row([2.0, 1.0, 0.5, 0.0, -1.0, -2.0]),
        {},
        hint="sample from softmax(logits): torch.multinomial(torch.softmax(logits, -1), 1)",
    ),
    _Case(
        "temperature=0.5",
        _row([2.0, 1.0, 0.5, 0.0, -1.0, -2.0]),
        {"temperature": 0.5},
        hint="divide the logits by the temperature (0.5 makes the distribution sharper); do not "
        "multiply, and apply it before the softmax",
    ),
    _Case(
        "temperature=2.0",
        _row([2.0, 1.0, 0.5, 0.0, -1.0, -2.0]),
        {"temperature": 2.0},
        hint="divide the logits by the temperature (2.0 makes the distribution flatter)",
    ),
    _Case(
        "top_k=3 with a tie at the 3rd place",
        _row([3.0, 2.0, 2.0, 2.0, 1.0, 0.0]),
        {"top_k": 3},
        hint="top_k keeps exactly k tokens: with a tie at the k-th place keep the lower token ids "
        "(a stable sort), not every token ≥ the k-th value",
    ),
    _Case(
        "top_p=0.6 on probabilities (0.5, 0.3, 0.1, 0.1)",
        _row([math.log(0.5), math.log(0.3), math.log(0.1), math.log(0.1)]),
        {"top_p": 0.6},
        hint="keep the smallest set whose probability reaches top_p *including* the token that "
        "crosses it: here tokens 0 and 1 (0.5 < 0.6 ≤ 0.8)",
    ),
    _Case(
        "top_p=1.0",
        _row([1.0, 0.0, -1.0, -3.0]),
        {"top_p": 1.0},
        hint="top_p=1.0 is allowed (0 < top_p ≤ 1) and keeps every token",
    ),
    _Case(
        "top_k=3, then top_p=0.7 on what is left",
        _row([2.0, 1.5, 1.0, 0.9, 0.0]),
        {"top_k": 3, "top_p": 0.7},
        hint="apply top_k first, then top_p to the renormalised probabilities of the k survivors",
    ),
]


@checks("8.1")
def check_sample_next_token(impl: Callable) -> None:
    ref = reference("8.1")
    # Shapes and greedy decoding first: exact answers.
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [0.0, -1.0, 5.0, 2.0]])
    got = _draw(impl, logits, 0, temperature=0.0)
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"sample_next_token should return a tensor, got {type(got).__name__}")
    if got.shape != (2,) or got.dtype != torch.long:
        raise AssertionError(
            f"sample_next_token on logits (2, 4) should return int64 of shape (2,), got "
            f"{got.dtype} of shape {tuple(got.shape)}"
            + (
                "\nHint: squeeze the sample dimension: torch.multinomial(...).squeeze(-1)"
                if got.shape == (2, 1)
                else ""
            )
        )
    if got.tolist() != [1, 2]:
        raise AssertionError(
            f"temperature=0 should be greedy: argmax of each row = [1, 2] (ties → the lower "
            f"id), got {got.tolist()}"
        )
    # Rows are independent: each has its own top-k set.
    logits = torch.tensor([[5.0, 4.0, 3.0, -9.0], [1.0, 0.5, 0.0, -9.0]]).repeat(N // 2, 1)
    got = _draw(impl, logits, 2, top_k=2)
    rows = [sorted(set(got[i::2].tolist())) for i in range(2)]
    if rows != [[0, 1], [0, 1]]:
        raise AssertionError(
            f"with top_k=2, each row may only give its tokens [0, 1]; got "
            f"{rows[0]} and {rows[1]}.\nHint: filter each row on its own (dim=-1), not "
            "across the batch"
        )
    # Distributions: the learner's samples against the reference's, same seeds.
    for case, logits, kw, hint in CASES:
        got = call(f"sample_next_token({case})", _draw, impl, logits, 1, hint=hint, **kw)
        want = _draw(ref, logits, 1, **kw)
        V = logits.shape[-1]
        got_counts = torch.bincount(got, minlength=V)
        want_counts = torch.bincount(want, minlength=V)
        got_set = sorted(torch.nonzero(got_counts).flatten().tolist())
        want_set = sorted(torch.nonzero(want_counts).flatten().tolist())
        if got_set != want_set:
            raise AssertionError(
                f"sample_next_token({case}): sampled tokens {got_set}, expected exactly "
                f"{want_set}.\nHint: {hint}"
            )
        # Two samples of N draws each: the difference of their frequencies has √2 times a
        # binomial standard deviation; two draws of slack for tokens of tiny probability.
        tolerance = torch.tensor(
            [binomial_tol(c / N, N, sigmas=6 * math.sqrt(2), slack=2 / N) for c in want_counts]
        )
        if ((got_counts - want_counts).abs().double() / N > tolerance).any():
            raise AssertionError(
                f"sample_next_token({case}): token frequencies "
                f"{[round(c / N, 3) for c in got_counts.tolist()]}, expected about "
                f"{[round(c / N, 3) for c in want_counts.tolist()]}.\nHint: {hint}"
            )
    for kw in [{"temperature": -1.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}]:
        expect_raises(
            f"sample_next_token(..., {', '.join(f'{k}={v}' for k, v in kw.items())})",
            lambda kw=kw: impl(torch.zeros(1, 4), **kw),
            ValueError,
            "validate the arguments first: temperature ≥ 0, top_k ≥ 1, 0 < top_p ≤ 1",
        )
