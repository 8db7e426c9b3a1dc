"""Plausible wrong answers to chapter 13's exercises, and the hint each check must give."""

from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F

from lmkit.qa import check_span_logits
from solutions.recommend import hit_rate_and_ndcg as _ref

# ------------------------------------------------------------------ 13.1 span_loss


def _validated(s, e, start, end, mask):
    check_span_logits(s, e, mask)
    T = s.shape[1]
    if bool(((start < 0) | (end >= T) | (end < start)).any()):
        raise ValueError(f"bad span: start {start}, end {end}, T {T}")
    if mask is not None:
        rows = torch.arange(s.shape[0])
        if not bool((mask[rows, start] & mask[rows, end]).all()):
            raise ValueError("the answer lies outside the context")


def _masked(x, mask, fill=float("-inf")):
    return x if mask is None else x.masked_fill(~mask, fill)


def _loss_summed_ends(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    return F.cross_entropy(_masked(s, mask), start) + F.cross_entropy(_masked(e, mask), end)


def _loss_unmasked(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    return (F.cross_entropy(s, start) + F.cross_entropy(e, end)) / 2


def _loss_zero_fill(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    return (
        F.cross_entropy(_masked(s, mask, 0.0), start) + F.cross_entropy(_masked(e, mask, 0.0), end)
    ) / 2


def _loss_over_batch(s, e, start, end, mask=None):
    # log_softmax over dim 0: each position's logits normalised across the rows
    _validated(s, e, start, end, mask)
    rows = torch.arange(s.shape[0])
    ls = torch.log_softmax(_masked(s, mask), dim=0)[rows, start]
    le = torch.log_softmax(_masked(e, mask), dim=0)[rows, end]
    return -(ls.mean() + le.mean()) / 2


def _loss_exclusive_end(s, e, start, end, mask=None):
    # "end is one past the answer", as in Python slices
    _validated(s, e, start, end, mask)
    return (
        F.cross_entropy(_masked(s, mask), start) + F.cross_entropy(_masked(e, mask), end - 1)
    ) / 2


def _loss_start_only(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    return F.cross_entropy(_masked(s, mask), start)


def _loss_summed_batch(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    return (
        F.cross_entropy(_masked(s, mask), start, reduction="sum")
        + F.cross_entropy(_masked(e, mask), end, reduction="sum")
    ) / 2


def _loss_in_place(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    if mask is not None:
        s.data.masked_fill_(~mask, float("-inf"))
        e.data.masked_fill_(~mask, float("-inf"))
    return (F.cross_entropy(s, start) + F.cross_entropy(e, end)) / 2


def _loss_by_hand(s, e, start, end, mask=None):
    # softmax, then log: overflows to inf/inf = nan for large logits
    _validated(s, e, start, end, mask)
    rows = torch.arange(s.shape[0])
    ps = torch.exp(_masked(s, mask)) / torch.exp(_masked(s, mask)).sum(1, keepdim=True)
    pe = torch.exp(_masked(e, mask)) / torch.exp(_masked(e, mask)).sum(1, keepdim=True)
    return -(ps[rows, start].log().mean() + pe[rows, end].log().mean()) / 2


def _loss_no_order_check(s, e, start, end, mask=None):
    check_span_logits(s, e, mask)
    return (F.cross_entropy(_masked(s, mask), start) + F.cross_entropy(_masked(e, mask), end)) / 2


def _loss_no_context_check(s, e, start, end, mask=None):
    check_span_logits(s, e, mask)
    if bool(((start < 0) | (end >= s.shape[1]) | (end < start)).any()):
        raise ValueError("bad span")
    return (F.cross_entropy(_masked(s, mask), start) + F.cross_entropy(_masked(e, mask), end)) / 2


def _loss_no_shape_check(s, e, start, end, mask=None):
    # right, but end_logits of another length than start_logits go through unnoticed
    if bool(((start < 0) | (end >= s.shape[1]) | (end < start)).any()):
        raise ValueError("bad span")
    if mask is not None:
        rows = torch.arange(s.shape[0])
        if not bool((mask[rows, start] & mask[rows, end]).all()):
            raise ValueError("the answer lies outside the context")
    return (F.cross_entropy(_masked(s, mask), start) + F.cross_entropy(_masked(e, mask), end)) / 2


def _loss_detached(s, e, start, end, mask=None):
    return _loss_reference(s, e, start, end, mask).detach()


def _loss_reference(s, e, start, end, mask=None):
    _validated(s, e, start, end, mask)
    return (F.cross_entropy(_masked(s, mask), start) + F.cross_entropy(_masked(e, mask), end)) / 2


# ------------------------------------------------------------------ 13.2 best_span


def _span_table(s, e, mask, lo, hi):
    """Scores of spans with lo <= j - i <= hi, inside the context; -inf elsewhere."""
    check_span_logits(s, e, mask)
    B, T = s.shape
    scores = s[:, :, None] + e[:, None, :]
    ones = torch.ones(T, T, dtype=torch.bool)
    allowed = torch.triu(ones, diagonal=lo) & torch.tril(ones, diagonal=hi)
    allowed = allowed.expand(B, T, T)
    if mask is not None:
        allowed = allowed & mask[:, :, None] & mask[:, None, :]
    return scores.masked_fill(~allowed, float("-inf"))


def _flat_argmax(scores):
    B, T, _ = scores.shape
    f = scores.reshape(B, T * T).argmax(1)
    return f // T, f % T


def _span_checked(max_length, mask):
    if max_length < 1:
        raise ValueError(f"max_length {max_length}")
    if mask is not None and not bool(mask.any(1).all()):
        raise ValueError("a row without context")


def _span_independent(s, e, mask=None, max_length=30):
    check_span_logits(s, e, mask)
    _span_checked(max_length, mask)
    return _masked(s, mask).argmax(1), _masked(e, mask).argmax(1)


def _span_no_max_length(s, e, mask=None, max_length=30):
    _span_checked(max_length, mask)
    return _flat_argmax(_span_table(s, e, mask, 0, s.shape[1]))


def _span_off_by_one(s, e, mask=None, max_length=30):
    _span_checked(max_length, mask)
    return _flat_argmax(_span_table(s, e, mask, 0, max_length))


def _span_ignores_context(s, e, mask=None, max_length=30):
    _span_checked(max_length, mask)
    return _flat_argmax(_span_table(s, e, None, 0, max_length - 1))


def _span_last_maximum(s, e, mask=None, max_length=30):
    # loops with >=: on a tie the last pair seen wins
    _span_checked(max_length, mask)
    scores = _span_table(s, e, mask, 0, max_length - 1)
    B, T, _ = scores.shape
    flat = scores.reshape(B, T * T)
    last = T * T - 1 - flat.flip(1).argmax(1)
    return last // T, last % T


def _span_unravel_wrong(s, e, mask=None, max_length=30):
    _span_checked(max_length, mask)
    scores = _span_table(s, e, mask, 0, max_length - 1)
    B, T, _ = scores.shape
    f = scores.reshape(B, T * T).argmax(1)
    return f // (T - 1), f % (T - 1)


def _span_no_length_check(s, e, mask=None, max_length=30):
    if mask is not None and not bool(mask.any(1).all()):
        raise ValueError("a row without context")
    return _flat_argmax(_span_table(s, e, mask, 0, max(max_length - 1, 0)))


def _span_empty_row_zero(s, e, mask=None, max_length=30):
    # a row without context: every score is -inf, argmax returns (0, 0)
    check_span_logits(s, e, mask)
    if max_length < 1:
        raise ValueError(f"max_length {max_length}")
    return _flat_argmax(_span_table(s, e, mask, 0, max_length - 1))


def _span_no_shape_check(s, e, mask=None, max_length=30):
    _span_checked(max_length, mask)
    T = min(s.shape[1], e.shape[1])
    return _flat_argmax(_span_table(s[:, :T], e[:, :T], mask, 0, max_length - 1))


# ------------------------------------------------------------------ 13.3 ROUGE-N


def _grams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _prf(overlap, n_cand, n_ref):
    p, r = overlap / max(n_cand, 1), overlap / max(n_ref, 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _rouge_unclipped(candidate, reference, n=1):
    # "how many of my n-grams are in the reference": each repeat of 'the' counts again
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    overlap = sum(c for g, c in cand.items() if g in ref)
    return _prf(overlap, sum(cand.values()), sum(ref.values()))


def _rouge_sets(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")
    cand = {tuple(candidate[i : i + n]) for i in range(len(candidate) - n + 1)}
    ref = {tuple(reference[i : i + n]) for i in range(len(reference) - n + 1)}
    return _prf(len(cand & ref), len(cand), len(ref))


def _rouge_swapped(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    p, r, f = _prf(sum((cand & ref).values()), sum(ref.values()), sum(cand.values()))
    return p, r, f


def _rouge_arithmetic(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    p, r, _ = _prf(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))
    return p, r, (p + r) / 2


def _rouge_last_missing(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")

    def grams(tokens):
        return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n))

    cand, ref = grams(candidate), grams(reference)
    return _prf(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))


def _rouge_words_only(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = Counter(candidate), Counter(reference)  # n is accepted, then forgotten
    return _prf(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))


def _rouge_percent(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    p, r, f = _prf(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))
    return 100 * p, 100 * r, 100 * f


def _rouge_divides_by_zero(candidate, reference, n=1):
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    overlap = sum((cand & ref).values())
    p, r = overlap / sum(cand.values()), overlap / sum(ref.values())
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def _rouge_nan_f1(candidate, reference, n=1):
    # precision and recall guarded, F1 not: 0 / 0 in floating point (torch) is NaN
    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    p, r, _ = _prf(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))
    f = torch.tensor(2 * p * r) / torch.tensor(p + r)
    return p, r, f.item()


def _rouge_no_n_check(candidate, reference, n=1):
    # right for every n >= 1; n = 0 counts len + 1 empty tuples on each side, silently
    cand, ref = _grams(candidate, n), _grams(reference, n)
    return _prf(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))


def _rouge_fraction_objects(candidate, reference, n=1):
    from fractions import Fraction

    if n < 1:
        raise ValueError(f"n = {n}")
    cand, ref = _grams(candidate, n), _grams(reference, n)
    overlap = sum((cand & ref).values())
    p = Fraction(overlap, max(sum(cand.values()), 1))
    r = Fraction(overlap, max(sum(ref.values()), 1))
    return p, r, (2 * p * r / (p + r) if p + r else Fraction(0))


# ------------------------------------------------------------------ 13.4 HR@k and NDCG@k


def _check_k(scores, k):
    n = scores.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} must be between 1 and the {n} items")


def _target_scores(scores, target):
    return scores[torch.arange(len(target)), target]


def _log2_rank_plus_one(scores, target, k=10):
    # "DCG divides by log2 of the position": with a 0-based rank, position 0 divides by 0
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 1), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _natural_log(scores, target, k=10):
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _strictly_greater(scores, target, k=10):
    # the rank as "how many items beat the target": ties go to the target (optimistic)
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores > mine[:, None]).sum(1)
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _counts_itself(scores, target, k=10):
    # >= includes the target's own column, and nothing subtracts it
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1)
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _rank_at_most_k(scores, target, k=10):
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (rank <= k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _ascending_sort(scores, target, k=10):
    # argsort's default order is ascending: the worst item comes first
    _check_k(scores, k)
    order = scores.argsort(dim=1)
    rank = (order == target[:, None]).float().argmax(1)
    mine = _target_scores(scores, target)
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _ndcg_of_hits_only(scores, target, k=10):
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (rank < k) & (mine > -math.inf)
    gains = 1 / torch.log2(rank[hit].float() + 2)
    ndcg = gains.mean().item() if hit.any() else 0.0
    return hit.float().mean().item(), ndcg


def _summed(scores, target, k=10):
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().sum().item(), ndcg.sum().item()


def _excluded_target_can_hit(scores, target, k=10):
    # no special case for a -inf target: with k = n_items every row is a "hit"
    _check_k(scores, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = rank < k
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _tensors(scores, target, k=10):
    hr, ndcg = _ref(scores, target, k)
    return torch.tensor(hr), torch.tensor(ndcg)


def _masks_target_in_place(scores, target, k=10):
    # set the target aside to count the others: but this writes into the caller's scores
    _check_k(scores, k)
    rows = torch.arange(len(target))
    mine = scores[rows, target].clone()
    scores[rows, target] = -math.inf
    rank = (scores >= mine[:, None]).sum(1)
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _no_k_check(scores, target, k=10):
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _topk_crashes(scores, target, k=10):
    # the top-k list from torch.topk, which refuses k > n_items with a RuntimeError, not the
    # ValueError promised
    top = scores.topk(k, dim=1).values  # (B, k)
    mine = _target_scores(scores, target)
    rank = (scores >= mine[:, None]).sum(1) - 1
    hit = (mine >= top[:, -1]) & (rank < k) & (mine > -math.inf)
    ndcg = torch.where(hit, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return hit.float().mean().item(), ndcg.mean().item()


def _vague_k_error(scores, target, k=10):
    if not 1 <= k <= scores.shape[1]:
        raise ValueError("k is out of range")
    return _ref(scores, target, k)


MISTAKES = {
    "13.1": [
        ("sum of the two losses", _loss_summed_ends, "the mean of the two cross-entropies"),
        ("context mask ignored", _loss_unmasked, "fill their logits with -inf"),
        ("mask filled with 0", _loss_zero_fill, "with -inf, not 0"),
        ("softmax over the batch", _loss_over_batch, "you normalised over the batch"),
        ("end taken as exclusive", _loss_exclusive_end, "end is inclusive"),
        ("start loss only", _loss_start_only, "the start's cross-entropy and the end's"),
        ("summed over the batch", _loss_summed_batch, "average over the batch"),
        ("mask applied in place", _loss_in_place, "use masked_fill, not masked_fill_"),
        ("softmax then log", _loss_by_hand, "softmax(...).log() overflows"),
        ("end < start accepted", _loss_no_order_check, "raise a ValueError when end < start"),
        ("answer outside the context accepted", _loss_no_context_check, "validate the labels"),
        ("no shape check", _loss_no_shape_check, "both (B, T)"),
        ("detached", _loss_detached, "so backward() works"),
    ],
    "13.2": [
        ("best start and best end apart", _span_independent, "search over pairs i <= j"),
        ("no length limit", _span_no_max_length, "at most max_length tokens"),
        ("max_length + 1 tokens allowed", _span_off_by_one, "both ends included"),
        ("context mask ignored", _span_ignores_context, "must be context tokens"),
        ("last maximum on ties", _span_last_maximum, "the earliest start, then the earliest end"),
        ("flat index unravelled by T - 1", _span_unravel_wrong, "start = f // T, end = f % T"),
        ("max_length 0 accepted", _span_no_length_check, "max_length < 1"),
        ("empty row gives (0, 0)", _span_empty_row_zero, "do not return (0, 0)"),
        ("no shape check", _span_no_shape_check, "both (B, T)"),
    ],
    "13.3": [
        ("unclipped overlap", _rouge_unclipped, "clip the overlap"),
        ("sets of distinct n-grams", _rouge_sets, "count repeated n-grams"),
        ("precision and recall swapped", _rouge_swapped, "precision divides the overlap by"),
        ("arithmetic mean for F1", _rouge_arithmetic, "F1 is the harmonic mean"),
        ("last n-gram missing", _rouge_last_missing, "the last one is missing"),
        ("n ignored: unigrams always", _rouge_words_only, "n is the n-gram length"),
        ("percentages", _rouge_percent, "return fractions in [0, 1]"),
        ("division by zero on an empty side", _rouge_divides_by_zero, "divides by zero"),
        ("NaN F1 from 0 / 0", _rouge_nan_f1, "divides by zero"),
        ("n = 0 accepted", _rouge_no_n_check, "raise a ValueError naming n"),
        ("Fractions, not floats", _rouge_fraction_objects, "should be a float"),
    ],
    "13.4": [
        ("log2(rank + 1) with a 0-based rank", _log2_rank_plus_one, "NDCG uses log2(rank + 2)"),
        ("natural logarithm", _natural_log, "the discount is a base-2 logarithm"),
        ("ties counted for the target", _strictly_greater, "ties count against the target"),
        ("target counted in its own rank", _counts_itself, "so subtract 1"),
        ("rank <= k", _rank_at_most_k, "a hit is rank < k, not rank <= k"),
        ("ascending order", _ascending_sort, "a higher score means recommend first"),
        ("NDCG over hits only", _ndcg_of_hits_only, "average NDCG over the whole batch"),
        ("sums, not means", _summed, "return means over the batch"),
        ("excluded target counted", _excluded_target_can_hit, "a target whose score is -inf"),
        ("tensors, not floats", _tensors, "call .item() to turn a one-element tensor"),
        ("scores modified in place", _masks_target_in_place, "do not write into scores"),
        ("k not checked", _no_k_check, "raise a ValueError naming k and n_items"),
        ("topk's RuntimeError for k > n", _topk_crashes, "it should raise ValueError"),
        ("error names neither k nor n", _vague_k_error, "name 6 and 5 in the message"),
    ],
}
