"""Checks of chapter 13: the ranking metric (13.3). Exercises 13.1–13.2 get their own sections
above this one.

Judges (13.3): ``torch.topk`` for scores without ties (the target's place among the ``k``
largest, in float64), and for scores with ties a plain Python sort in which the target comes
*after* every item with the same score (the pessimistic convention of the docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lmkit.checks import (
    call,
    diagnose,
    expect_type,
    expect_unchanged,
    expect_value_error,
    fmt,
    near,
)
from lmkit.grading import checks

# ------------------------------------------------------------------ 13.3 HR@k and NDCG@k


def _topk_judge(scores: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float]:
    """HR@k and NDCG@k from ``torch.topk``: valid only when no row has tied scores."""
    top = scores.double().topk(k, dim=1).indices  # (B, k), best first
    found = top == target[:, None]
    finite = scores.gather(1, target[:, None])[:, 0] > float("-inf")
    hit = found.any(1) & finite
    place = found.double().argmax(1)  # 0-based position in the top k (0 for a miss)
    gain = torch.where(hit, 1.0 / torch.log2(place + 2.0), 0.0)
    return hit.double().mean().item(), gain.mean().item()


def _sort_judge(scores: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float]:
    """HR@k and NDCG@k by sorting each row in Python, the target last among equal scores."""
    hits, gains = [], []
    for row, t in zip(scores.double().tolist(), target.tolist(), strict=True):
        order = sorted(range(len(row)), key=lambda j, row=row, t=t: (-row[j], j == t))
        place = order.index(t)
        hit = place < k and row[t] != -math.inf
        hits.append(1.0 if hit else 0.0)
        gains.append(1.0 / math.log2(place + 2) if hit else 0.0)
    return sum(hits) / len(hits), sum(gains) / len(gains)


def _variant(
    scores: torch.Tensor,
    target: torch.Tensor,
    k: int,
    *,
    ties: str = "against",
    base: float = 2.0,
    offset: int = 2,
    count_self: bool = False,
    cutoff: str = "<",
    lowest_first: bool = False,
    excluded_miss: bool = True,
    ndcg_over: str = "batch",
    total: bool = False,
) -> tuple[float, float]:
    """What a typical mistake computes: the metric with one convention changed."""
    hits, gains = [], []
    for row, t in zip(scores.double().tolist(), target.tolist(), strict=True):
        me = row[t]
        others = [s for j, s in enumerate(row) if j != t]
        better = [s for s in others if (s < me if lowest_first else s > me)]
        rank = len(better) + (sum(s == me for s in others) if ties == "against" else 0)
        rank += 1 if count_self else 0
        hit = rank < k if cutoff == "<" else rank <= k
        if excluded_miss and me == -math.inf:
            hit = False
        hits.append(1.0 if hit else 0.0)
        gains.append(1.0 / math.log(rank + offset, base) if hit else 0.0)
    B = len(hits)
    hr = sum(hits) if total else sum(hits) / B
    if ndcg_over == "hits":
        return hr, sum(gains) / max(sum(hits), 1.0)
    return hr, sum(gains) if total else sum(gains) / B


HINT_LOG2 = (
    "NDCG uses log2(rank + 2) for a 0-based rank: the top item (rank 0) gains 1/log2(2) = 1; "
    "log2(rank + 1) divides by log2(1) = 0 there"
)
HINT_NATURAL_LOG = (
    "the discount is a base-2 logarithm, 1 / log2(rank + 2) (torch.log2), not the natural "
    "log: with ln, rank 0 would gain 1/ln 2 = 1.44"
)
HINT_TIES = (
    "ties count against the target: an item whose score equals the target's ranks above it "
    "(count scores >= the target's, not only >), so a model that scores everything the same "
    "cannot look perfect"
)
HINT_SELF = (
    "the rank counts the *other* items that score at least as high: comparing with >= also "
    "counts the target itself, so subtract 1 (the best item has rank 0)"
)
HINT_CUTOFF = "with a 0-based rank the top k are ranks 0 … k-1: a hit is rank < k, not rank <= k"
HINT_LOWEST_FIRST = (
    "a higher score means recommend first: count the items scoring *more* than the target "
    "(sort descending), not less"
)
HINT_OVER_HITS = (
    "average NDCG over the whole batch, like the hit rate: a miss contributes 0, it is not left out"
)
HINT_MEAN = "return means over the batch (divide by B), not sums"
HINT_EXCLUDED = (
    "a target whose score is -inf was excluded from the ranking: it is a miss (hit 0, NDCG 0) "
    "for every k, even k = n_items, where every other item is in the top k"
)
HINT_IN_PLACE = (
    "do not write into scores (the caller ranks the same scores again for other cut-offs): "
    "work on the target's gathered score, or on a copy (scores.clone())"
)
HINT_BAD_K = (
    "check k first and raise a ValueError naming k and n_items: a top-k list longer than "
    "the catalogue, or empty, is a mistake in the caller, not a hit rate"
)


def _suspects(scores: torch.Tensor, target: torch.Tensor, k: int):
    def v(**kw):
        return lambda: _variant(scores, target, k, **kw)

    return [
        (v(offset=1), HINT_LOG2),
        (v(base=math.e), HINT_NATURAL_LOG),
        (v(ties="for"), HINT_TIES),
        (v(count_self=True), HINT_SELF),
        (v(cutoff="<="), HINT_CUTOFF),
        (v(lowest_first=True), HINT_LOWEST_FIRST),
        (v(ndcg_over="hits"), HINT_OVER_HITS),
        (v(total=True), HINT_MEAN),
        (v(excluded_miss=False), HINT_EXCLUDED),
    ]


def _ranked(seed: int, B: int, n: int, places: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random float32 scores ``(B, n)`` without ties, and targets put at the given 0-based
    places of their rows (so the cases hold a rank 0, a rank of exactly k, a miss, …)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, n, generator=g)
    order = scores.argsort(dim=1, descending=True)
    target = order[torch.arange(B), torch.tensor(places)]
    return scores, target


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int, Callable]]:
    cases = []
    s, t = _ranked(0, 6, 20, [0, 1, 4, 5, 12, 19])
    cases.append(("hit_rate_and_ndcg(random scores (6, 20), targets ranked 0, 1, 4, 5, 12, 19; "
                  "k=5)", s, t, 5, _topk_judge))  # fmt: skip
    s, t = _ranked(1, 4, 50, [2, 9, 10, 30])
    cases.append(("hit_rate_and_ndcg(random scores (4, 50), targets ranked 2, 9, 10, 30; k=10)",
                  s, t, 10, _topk_judge))  # fmt: skip
    tied = torch.tensor(
        [
            [3.0, 1.0, 3.0, 0.0, 2.0, 3.0],  # target 0 ties with items 2 and 5 for the top
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # every item scores the same
            [5.0, 4.0, 2.0, 2.0, 1.0, 0.0],  # target 3 ties with item 2
            [0.0, 2.0, 2.0, 2.0, 9.0, 1.0],  # target 1 ties with items 2 and 3
        ],
        dtype=torch.float64,
    )
    cases.append(("hit_rate_and_ndcg(scores with ties (4, 6), k=3)", tied,
                  torch.tensor([0, 4, 3, 1]), 3, _sort_judge))  # fmt: skip
    inf = float("-inf")
    excluded = torch.tensor(
        [
            [0.5, inf, 2.0, inf, 1.0],  # target 0 finite, two items excluded
            [inf, 3.0, inf, 1.0, 2.0],  # target 0 excluded (already seen)
            [1.0, inf, inf, inf, 4.0],  # target 4 finite
        ]
    )
    cases.append(("hit_rate_and_ndcg(scores (3, 5) with -inf for excluded items, k=5 = n_items)",
                  excluded, torch.tensor([0, 0, 4]), 5, _sort_judge))  # fmt: skip
    cases.append(("hit_rate_and_ndcg(one row (1, 4), the target scores highest, k=1)",
                  torch.tensor([[0.1, 0.7, 0.3, 0.2]]), torch.tensor([1]), 1, _topk_judge))  # fmt: skip
    return cases


@checks("13.3")
def check_hit_rate_and_ndcg(impl: Callable) -> None:
    for desc, scores, target, k, judge in _cases():
        given = scores.clone()
        got = call(desc, impl, given, target.clone(), k)
        expect_unchanged(given, scores, desc, HINT_IN_PLACE)
        expect_type(got, tuple, desc)
        if len(got) != 2:
            raise AssertionError(f"{desc} should return 2 numbers (hit_rate, ndcg), got {len(got)}")
        hr, ndcg = got
        expect_type(hr, float, f"{desc}: the hit rate")
        expect_type(ndcg, float, f"{desc}: the NDCG")
        want_hr, want_ndcg = judge(scores, target, k)
        if not math.isfinite(ndcg):
            hint = HINT_LOG2
        elif near(hr, want_hr) and near(ndcg, want_ndcg):
            continue
        else:
            tests = [
                (lambda g, w, s=s: near(g[0], s()[0]) and near(g[1], s()[1]), h)
                for s, h in _suspects(scores, target, k)
            ]
            hint = diagnose((hr, ndcg), (want_hr, want_ndcg), tests)
        raise AssertionError(
            f"{desc}: got HR@{k} = {fmt(hr)}, NDCG@{k} = {fmt(ndcg)}; expected HR@{k} = "
            f"{fmt(want_hr)}, NDCG@{k} = {fmt(want_ndcg)}." + (f"\nHint: {hint}" if hint else "")
        )

    scores, target = _ranked(2, 2, 5, [0, 3])
    for desc, k, mentions in [
        ("hit_rate_and_ndcg(scores (2, 5), k=6): k larger than the 5 items", 6, [6, 5]),
        ("hit_rate_and_ndcg(scores (2, 5), k=0)", 0, [0, 5]),
    ]:
        expect_value_error(
            desc, lambda k=k: impl(scores.clone(), target.clone(), k), HINT_BAD_K, mentions
        )
