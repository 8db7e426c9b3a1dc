"""Reference solutions of chapter 2's tokenizer exercises (lmkit.tokenizers)."""

from __future__ import annotations

import heapq
from collections import defaultdict
from itertools import pairwise


def get_pair_counts(ids: list[int]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for pair in pairwise(ids):  # every adjacent position, overlaps included
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2  # skip both: an occurrence never overlaps the one before it
        else:
            out.append(ids[i])
            i += 1
    return out


def _validate(text: str, vocab_size: int) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: there is nothing to learn merges from")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size <= 256:
        raise ValueError(
            f"vocab_size must be > 256 (the 256 byte values come first), got {vocab_size}"
        )


def train_bpe(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    """Byte-level BPE with incremental pair counts.

    A naive trainer recounts every pair of the whole text for each merge: O(n) per merge.
    Here the text is a doubly linked list of tokens, and each pair remembers where it
    occurs; merging an occurrence changes only the pairs to its left and right, so each
    merge costs time proportional to the occurrences it merges. A heap keyed by
    ``(-count, pair)`` finds the most frequent pair, the smallest one on ties; entries go
    stale when a count changes and are skipped when popped ("lazy deletion").
    """
    _validate(text, vocab_size)
    ids = list(text.encode("utf-8"))
    n = len(ids)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))

    # pair -> the positions of its left token; entries go stale as merges change the text
    where: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
    for i, pair in enumerate(pairwise(ids)):
        where[pair].append(i)
    counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    counts.update((pair, len(pos)) for pair, pos in where.items())
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)

    merges: dict[tuple[int, int], int] = {}
    new_id = 256
    while new_id < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair) != -neg:
            continue  # stale entry: the count changed since it was pushed
        a, b = pair
        changed = {pair}
        # Left to right, so that in a run like a a a the first two merge, as in merge().
        for i in sorted(where.pop(pair)):
            j = nxt[i] if ids[i] == a else -1
            if j == -1 or ids[j] != b:
                continue  # merged away or changed by an earlier occurrence
            p, k = prv[i], nxt[j]
            if p != -1:  # (x, a) becomes (x, new)
                left, new_left = (ids[p], a), (ids[p], new_id)
                counts[left] -= 1
                counts[new_left] += 1
                where[new_left].append(p)
                changed.add(left)
                changed.add(new_left)
            if k != -1:  # (b, y) becomes (new, y)
                right, new_right = (b, ids[k]), (new_id, ids[k])
                counts[right] -= 1
                counts[new_right] += 1
                where[new_right].append(i)
                changed.add(right)
                changed.add(new_right)
            counts[pair] -= 1
            ids[i], ids[j] = new_id, -1  # node j leaves the list
            nxt[i] = k
            if k != -1:
                prv[k] = i
        for q in changed:  # one fresh heap entry per changed pair
            if counts[q] > 0:
                heapq.heappush(heap, (-counts[q], q))
            else:
                del counts[q]
        merges[pair] = new_id
        new_id += 1
    return merges
