"""Plausible wrong answers to chapter 2's exercises, and the hint each check must give."""

from __future__ import annotations

import numpy as np
import torch

from solutions import batching as bref
from solutions import tokenizers as ref

# ------------------------------------------------------------------ 2.1 get_pair_counts


def _counts_missing_last(ids):
    counts = {}
    for i in range(len(ids) - 2):  # off by one
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _counts_step_two(ids):
    counts = {}
    for i in range(0, len(ids) - 1, 2):  # non-overlapping windows
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _counts_crash_short(ids):
    counts = {(ids[0], ids[1]): 0}  # assumes at least two ids
    for i in range(len(ids) - 1):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _counts_popping(ids):
    counts = {}
    while len(ids) > 1:  # consumes the caller's list
        a = ids.pop(0)
        counts[(a, ids[0])] = counts.get((a, ids[0]), 0) + 1
    return counts


def _counts_like_merge(ids):
    """Counts each pair the way merge() finds it: left to right, skipping overlaps."""
    counts = {}
    for pair in set(zip(ids, ids[1:], strict=False)):
        i, n = 0, 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                n, i = n + 1, i + 2
            else:
                i += 1
        counts[pair] = n
    return counts


def _counts_reversed(ids):
    counts = {}
    for i in range(len(ids) - 1):
        pair = (ids[i + 1], ids[i])  # right, then left
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _counts_cyclic(ids):
    counts = {}
    for a, b in zip(ids, ids[1:] + ids[:1], strict=True):  # wraps around to the start
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts if len(ids) > 1 else {}


# ---------------------------------------------------------------------------- 2.2 merge


def _merge_overlapping(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 1  # should skip both
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_every_position(ids, pair, new_id):
    hits = {i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair}
    out = []
    for i in range(len(ids)):
        if i in hits:  # a match overlapping the previous one is merged too
            out.append(new_id)
        elif i - 1 not in hits:
            out.append(ids[i])
    return out


def _merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_right_to_left(ids, pair, new_id):
    return ref.merge(ids[::-1], pair[::-1], new_id)[::-1]


def _merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _merge_reads_past_the_end(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if (ids[i], ids[i + 1]) == pair:  # no neighbour for the last id
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_list_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + 2] == pair:  # a list never equals a tuple: nothing is merged
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_either_order(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if len(ids[i : i + 2]) == 2 and set(ids[i : i + 2]) == set(pair):  # (b, a) too
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ------------------------------------------------------------------------ 2.3 train_bpe


def _trainer(
    *,
    n_merges=None,
    first_id=256,
    tie="smallest",
    code_points=False,
    apply=True,
    check_type=True,
    check_vocab=True,
    sort=False,
    stop_early=True,
):
    def train(text, vocab_size):
        if check_type and not isinstance(text, str):
            raise TypeError("text must be a str")
        if not text or (check_vocab and vocab_size <= 256):
            raise ValueError("bad input")
        ids = [ord(c) for c in text] if code_points else list(text.encode("utf-8"))
        base = list(ids)
        merges = {}
        steps = (vocab_size - 256) if n_merges is None else n_merges(vocab_size)
        for k in range(steps):
            counts = ref.get_pair_counts(ids if apply else base)
            counts = {p: c for p, c in counts.items() if p not in merges}
            if not counts and stop_early:
                break
            if tie == "smallest":
                pair = min(counts, key=lambda p: (-counts[p], p))
            elif tie == "least":  # min where max was meant
                pair = min(counts, key=lambda p: (counts[p], p))
            else:
                pair = max(counts, key=counts.get)  # first seen on ties
            merges[pair] = first_id + k
            ids = ref.merge(ids, pair, first_id + k)
        return dict(sorted(merges.items())) if sort else merges

    return train


def _trainer_counts_with_plain_dict(text, vocab_size):
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    if not text or vocab_size <= 256:
        raise ValueError("bad input")
    ids, merges = list(text.encode("utf-8")), {}
    for new_id in range(256, vocab_size):
        counts = {}
        for pair in zip(ids, ids[1:], strict=False):
            counts[pair] += 1  # KeyError: a plain dict has no default 0
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        ids = ref.merge(ids, pair, new_id)
    return merges


def _trainer_accepts_empty(text, vocab_size):
    return {} if text == "" else _trainer()(text, vocab_size)


# ------------------------------------------------------------------------ 2.4 get_batch


def _batch_scattered(data, block_size, batch_size, generator=None):
    t = torch.as_tensor(np.asarray(data, dtype=np.int64))
    ix = torch.randint(len(t) - block_size, (batch_size, block_size), generator=generator)
    return t[ix], t[ix + 1]  # one random token per position, not a window


def _batch_aligned(data, block_size, batch_size, generator=None):
    t = torch.as_tensor(np.asarray(data, dtype=np.int64))
    chunks = (len(t) - 1) // block_size  # whole blocks only: offsets 0, T, 2T, …
    ix = torch.randint(chunks, (batch_size,), generator=generator) * block_size
    x = torch.stack([t[i : i + block_size] for i in ix])
    return x, torch.stack([t[i + 1 : i + 1 + block_size] for i in ix])


def _batch(data, block_size, batch_size, generator=None, *, high=0, shift=1, dtype=None):
    n = len(data)
    t = torch.as_tensor(np.asarray(data, dtype=np.int64))
    ix = torch.randint(n - block_size + high, (batch_size,), generator=generator)
    x = torch.stack([t[i : i + block_size] for i in ix])
    y = torch.stack([t[i + shift : i + shift + block_size] for i in ix])
    if dtype is not None:
        x, y = x.to(dtype), y.to(dtype)
    return x, y


def _batch_unchecked(data, block_size, batch_size, generator=None):
    if block_size >= len(data):
        return torch.zeros(batch_size, block_size, dtype=torch.long), torch.zeros(
            batch_size, block_size, dtype=torch.long
        )
    return bref.get_batch(data, block_size, batch_size, generator)


def _batch_global_rng(data, block_size, batch_size, generator=None):
    return bref.get_batch(data, block_size, batch_size)  # ignores the generator


def _batch_same_offset(data, block_size, batch_size, generator=None):
    x, y = bref.get_batch(data, block_size, 1, generator)
    return x.repeat(batch_size, 1), y.repeat(batch_size, 1)


MISTAKES = {
    "2.1": [
        ("misses the last pair", _counts_missing_last, "the last pair"),
        ("skips overlapping pairs", _counts_step_two, "overlaps included"),
        (
            "records presence, not counts",
            lambda ids: {p: 1 for p in zip(ids, ids[1:], strict=False)},
            "not only whether it occurs",
        ),
        ("crashes on short lists", _counts_crash_short, "fewer than two ids"),
        ("pops from the list it counts", _counts_popping, "count without changing the list"),
        ("skips overlaps as merge does", _counts_like_merge, "overlaps included: (5, 5) occurs"),
        ("pairs right to left", _counts_reversed, "keep the order of each pair"),
        ("wraps around", _counts_cyclic, "one pair per adjacent position: len(ids) - 1"),
        (
            "list keys",
            lambda ids: {str(p): c for p, c in ref.get_pair_counts(ids).items()},
            "tuple of two ints",
        ),
    ],
    "2.2": [
        ("does not skip the merged pair", _merge_overlapping, "skip both ids"),
        ("overlapping merges", _merge_every_position, "must not overlap"),
        ("drops the last id", _merge_drops_last, "the last id is missing"),
        ("right to left", _merge_right_to_left, "scan left to right"),
        ("modifies its input", _merge_in_place, "leave ids unchanged"),
        ("merges only the first occurrence", _merge_first_only, "not only the first"),
        ("returns a tuple", lambda ids, p, n: tuple(ref.merge(ids, p, n)), "should be a list"),
        ("reads past the end", _merge_reads_past_the_end, "only while i + 1 < len(ids)"),
        ("compares a list slice with the tuple", _merge_list_vs_tuple, "nothing was merged"),
        ("merges (b, a) too", _merge_either_order, "emit new_id for each (a, b) found"),
    ],
    "2.3": [
        ("misses the final merge", _trainer(n_merges=lambda v: v - 257), "final merge is missing"),
        ("one merge too many", _trainer(n_merges=lambda v: v - 255), "one merge too many"),
        (
            "ties go to the first pair seen",
            _trainer(tie="first"),
            "ties: when several pairs are equally frequent",
        ),
        ("new ids start at 257", _trainer(first_id=257), "start at 256"),
        ("code points instead of bytes", _trainer(code_points=True), "start from the UTF-8 bytes"),
        ("never merges the ids", _trainer(apply=False), "before counting again"),
        ("accepts empty text", _trainer_accepts_empty, "empty text has nothing to learn from"),
        ("merges sorted by pair", _trainer(sort=True), "in the order they were learned"),
        ("takes the least frequent pair", _trainer(tie="least"), "each step: count pairs"),
        ("no type check", _trainer(check_type=False), "check isinstance(text, str) first"),
        ("no vocab_size check", _trainer(check_vocab=False), "vocab_size must be > 256"),
        ("never stops early", _trainer(stop_early=False), "stop early when no pair is left"),
        ("counts with a plain dict", _trainer_counts_with_plain_dict, "count, pick, merge"),
    ],
    "2.4": [
        (
            "last window never sampled",
            lambda *a, **k: _batch(*a, **k, high=-1),
            "the last window is never sampled",
        ),
        ("offsets out of range", lambda *a, **k: _batch(*a, **k, high=1), "valid offsets"),
        ("unshifted targets", lambda *a, **k: _batch(*a, **k, shift=0), "unshifted targets teach"),
        (
            "targets shifted by two",
            lambda *a, **k: _batch(*a, **k, shift=2, high=-1),
            "y is x shifted by one: y = data[i + 1 : i + 1 + block_size]",
        ),
        ("one random token per position", _batch_scattered, "one contiguous window"),
        ("offsets aligned to whole blocks", _batch_aligned, "uniformly over every valid start"),
        (
            "int32 ids",
            lambda *a, **k: _batch(*a, **k, dtype=torch.int32),
            "token ids must be int64",
        ),
        (
            "(block_size, batch_size) shape",
            lambda d, T, B, generator=None: tuple(
                t.T.contiguous() for t in bref.get_batch(d, T, B, generator)
            ),
            "shape (batch_size, block_size)",
        ),
        ("no error for a too-short corpus", _batch_unchecked, "block_size >= len(data)"),
        ("ignores the generator", _batch_global_rng, "pass generator=generator to torch.randint"),
        ("one offset per batch", _batch_same_offset, "fresh, independent offset"),
    ],
}
