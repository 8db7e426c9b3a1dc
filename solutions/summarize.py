"""Reference solution of chapter 13's summarisation exercise (lmkit.summarize)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def rouge_n(
    candidate: Sequence[str], reference: Sequence[str], n: int = 1
) -> tuple[float, float, float]:
    if n < 1:
        raise ValueError(f"n is the n-gram length and must be at least 1, got {n}")

    def ngrams(tokens: Sequence[str]) -> Counter:
        return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))

    cand, ref = ngrams(candidate), ngrams(reference)
    overlap = sum((cand & ref).values())  # & keeps each n-gram's smaller count: clipping
    precision = overlap / max(sum(cand.values()), 1)
    recall = overlap / max(sum(ref.values()), 1)
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return float(precision), float(recall), float(f1)
