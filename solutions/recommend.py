"""Reference solution of chapter 13's ranking metric (lmkit.recommend)."""

from __future__ import annotations

import torch


def hit_rate_and_ndcg(
    scores: torch.Tensor, target: torch.Tensor, k: int = 10
) -> tuple[float, float]:
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] == 0:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"scores should be (B, n_items) with B ≥ 1, got {got}")
    B, n_items = scores.shape
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an int in 1 … n_items = {n_items}, got k = {k!r}")
    if not isinstance(target, torch.Tensor) or target.shape != (B,):
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"target should be (B,) = ({B},), one item per row, got {got}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target should hold integer item indices, got {target.dtype}")
    if (target < 0).any() or (target >= n_items).any():
        raise ValueError(f"target holds indices outside 0 … {n_items - 1}")
    if torch.isnan(scores).any():
        raise ValueError("scores hold NaN: a NaN has no place in a ranking")
    mine = scores.gather(1, target[:, None])  # (B, 1): each row's target score
    # ≥ counts the target itself once; ties with other items count against it (pessimistic).
    rank = (scores >= mine).sum(1) - 1
    hit = (rank < k) & (mine[:, 0] > float("-inf"))  # an excluded target is never a hit
    gain = torch.where(hit, 1.0 / torch.log2(rank.double() + 2), 0.0)
    return hit.double().mean().item(), gain.mean().item()
