"""Plausible wrong answers to chapter 13's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch

from solutions.recommend import hit_rate_and_ndcg as _ref

# ------------------------------------------------------------------ 13.3 HR@k and NDCG@k


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
    "13.3": [
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
