"""Checks of chapter 2: get_pair_counts, merge, train_bpe, get_batch.

The judges are independent of the reference solutions: ``collections.Counter`` over
``itertools.pairwise`` for pair counts, a deliberately plain loop for merging, a
recount-everything trainer for BPE, and the windows of ``torch.arange`` for batches.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from lmkit.checks import call, expect_raises, expect_type, fail
from lmkit.grading import checks


def _expect_pair_dict(got, case: str) -> None:
    expect_type(got, dict, case)
    for key, value in got.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(type(t) is int for t in key)):
            raise AssertionError(
                f"{case}: key {key!r} should be a tuple of two ints (a, b).\nHint: use "
                "tuples as keys — (ids[i], ids[i + 1]) — not lists, strings or numpy ints"
            )
        expect_type(value, int, f"{case}[{key!r}]")


# ------------------------------------------------------------------- 2.1 get_pair_counts

PAIR_CASES: list[list[int]] = [
    [1, 2, 1, 2, 1, 2],
    [1, 2, 3, 1, 2],
    [5, 5, 5],
    [7, 8],
    [9],
    [],
    [300, 1, 300, 1, 300],
    list(b"aaabdaaabac"),
]


@checks("2.1")
def check_get_pair_counts(impl: Callable) -> None:
    for ids in PAIR_CASES:
        case = f"get_pair_counts({ids})"
        given = list(ids)
        got = call(
            case,
            impl,
            given,
            hint=lambda err: (
                "a list with fewer than two ids has no pairs: return {} (loop over "
                "range(len(ids) - 1))"
                if isinstance(err, (IndexError, ValueError))
                else None
            ),
        )
        want = dict(Counter(itertools.pairwise(ids)))
        _expect_pair_dict(got, case)
        if given != ids:
            fail(case, given, ids, "count without changing the list you were given")
        if dict(got) == want:
            continue
        n_pairs = sum(got.values())
        if {(b, a): c for (a, b), c in got.items()} == want:
            hint = "keep the order of each pair: (ids[i], ids[i + 1]), left then right"
        elif ids == [5, 5, 5] and got.get((5, 5)) == 1:
            hint = (
                "count every adjacent position, overlaps included: (5, 5) occurs at "
                "positions 0 and 1 of [5, 5, 5]; only merging skips overlaps"
            )
        elif len(ids) >= 2 and dict(Counter(itertools.pairwise(ids[:-1]))) == got:
            hint = "the last pair (ids[-2], ids[-1]) is missing: loop over range(len(ids) - 1)"
        elif set(got) == set(want) and all(v == 1 for v in got.values()):
            hint = "count how many times each pair occurs, not only whether it occurs"
        elif n_pairs == len(ids) // 2 and n_pairs < len(ids) - 1:
            hint = (
                "step by one, not by two: pairs at positions 0-1, 1-2, 2-3, … all count, "
                "overlaps included"
            )
        else:
            hint = "there is one pair per adjacent position: len(ids) - 1 in all"
        fail(case, got, want, hint)


# ---------------------------------------------------------------------------- 2.2 merge


def _plain_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if tuple(ids[i : i + 2]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


MERGE_CASES: list[tuple[list[int], tuple[int, int], int]] = [
    ([5, 6, 6, 7, 9, 1], (6, 7), 99),
    ([1, 2, 3, 1, 2], (1, 2), 256),
    ([7, 7, 7], (7, 7), 99),
    ([7, 7, 7, 7], (7, 7), 99),
    ([7, 7, 7, 7, 7], (7, 7), 300),
    ([1, 2, 1, 2, 1], (2, 1), 256),
    ([3, 4, 5], (4, 5), 256),
    ([3, 4, 5], (5, 3), 256),
    ([4], (4, 4), 256),
    ([], (1, 2), 256),
]


@checks("2.2")
def check_merge(impl: Callable) -> None:
    for ids, pair, new_id in MERGE_CASES:
        case = f"merge({ids}, {pair}, {new_id})"
        given = list(ids)
        got = call(
            case,
            impl,
            given,
            pair,
            new_id,
            hint=lambda err: (
                "look at ids[i + 1] only while i + 1 < len(ids); the last id may have no "
                "right neighbour"
                if isinstance(err, IndexError)
                else None
            ),
        )
        want = _plain_merge(ids, pair, new_id)
        expect_type(got, list, case)
        if given != ids:
            fail(
                f"{case} changed its input to",
                given,
                ids,
                "return a new list and leave ids unchanged: the caller may still need it",
            )
        if got == want:
            continue
        a, b = pair
        if got == ids:
            hint = f"nothing was merged: replace each adjacent {pair} by {new_id}"
        elif len(got) == len(want) - 1 and got == want[:-1]:
            hint = (
                "the last id is missing: when the loop stops at len(ids) - 1, "
                "append the final id if it was not part of a merged pair"
            )
        elif len(got) > len(want) and got.count(new_id) >= want.count(new_id) > 0:
            hint = (
                "skip both ids of a merged pair — after merging ids[i] and ids[i + 1], "
                "jump to i + 2; occurrences must not overlap, so [7, 7, 7] gives [X, 7]"
            )
        elif a == b and got == _plain_merge(ids[::-1], pair, new_id)[::-1]:
            hint = "scan left to right: [7, 7, 7] merging (7, 7) gives [X, 7], not [7, X]"
        elif a == b and got.count(new_id) > want.count(new_id):
            hint = "occurrences must not overlap: skip both ids of a merged pair"
        elif got.count(new_id) < want.count(new_id) and len(got) > len(want):
            hint = "merge every occurrence of the pair, not only the first"
        else:
            hint = "emit new_id for each (a, b) found and copy every other id, in order"
        fail(case, got, want, hint)


# ------------------------------------------------------------------------ 2.3 train_bpe


def _recount_trainer(text: str, vocab_size: int, tie: str = "smallest") -> dict:
    """Recount every pair for every merge: slow and obviously right (the judge)."""
    ids = list(text.encode("utf-8"))
    merges: dict[tuple[int, int], int] = {}
    for new_id in range(256, vocab_size):
        counts = Counter(itertools.pairwise(ids))
        if not counts:
            break
        if tie == "smallest":
            pair = min(counts, key=lambda p: (-counts[p], p))
        elif tie == "largest":
            pair = max(counts, key=lambda p: (counts[p], p))
        else:  # first seen, what max(counts, key=counts.get) does
            pair = max(counts, key=counts.get)
        merges[pair] = new_id
        ids = _plain_merge(ids, pair, new_id)
    return merges


BPE_CASES: list[tuple[str, int]] = [
    ("aaabdaaabac", 259),  # the worked example; its second merge is a tie
    ("abcdcdab", 258),  # a tie on the first merge: (97, 98) vs (99, 100)
    ("aaaaaaa", 260),  # runs: overlapping occurrences while training
    ("hello world", 258),
    ("low lower lowest newer wider " * 4, 280),
    ("naïve café — 你好，你好！🙂🙂🙂", 270),  # multi-byte UTF-8
    ("ab", 300),  # runs out of pairs after one merge: stop early
]


@checks("2.3")
def check_train_bpe(impl: Callable) -> None:
    for text, vocab_size in BPE_CASES:
        case = f"train_bpe({text!r}, {vocab_size})"
        if text == "ab":
            crash_hint = "stop early when no pair is left: after one merge 'ab' is a single token"
        else:
            crash_hint = "count, pick, merge: each step must work on the ids merged so far"
        got = call(
            case,
            impl,
            text,
            vocab_size,
            hint=lambda err, h=crash_hint: (
                h if isinstance(err, (ValueError, KeyError, IndexError)) else None
            ),
        )
        _expect_pair_dict(got, case)
        want = _recount_trainer(text, vocab_size)
        if list(got.items()) == list(want.items()):
            continue
        values = list(got.values())
        expect_keys = list(want)
        if values and values[0] != 256:
            hint = "new ids start at 256, right after the 256 byte values (0–255)"
        elif list(got.items()) == list(want.items())[:-1]:
            hint = (
                "the final merge is missing: vocab_size - 256 merges, "
                "for new_id in range(256, vocab_size)"
            )
        elif len(got) > len(want) and list(got.items())[: len(want)] == list(want.items()):
            hint = (
                f"one merge too many: a vocabulary of {vocab_size} ids holds the 256 bytes and "
                f"at most {vocab_size - 256} merges (fewer if the text becomes a single token)"
            )
        elif dict(got) == dict(want):
            hint = (
                "return the merges in the order they were learned (insert into the dict in order)"
            )
        elif _uses_unassigned_ids(got):
            hint = (
                'start from the UTF-8 bytes, list(text.encode("utf-8")): ord(c) of a '
                "non-ASCII character is larger than 255"
            )
        elif list(got.items()) in (
            list(_recount_trainer(text, vocab_size, "first").items()),
            list(_recount_trainer(text, vocab_size, "largest").items()),
        ):
            hint = (
                "ties: when several pairs are equally frequent take the smallest (a, b) — "
                "min(counts, key=lambda p: (-counts[p], p)); max(counts, key=counts.get) "
                "takes the first one seen instead"
            )
        elif list(got)[:1] == expect_keys[:1] and len(set(got)) == len(got):
            hint = (
                "merge the chosen pair in the ids (merge(ids, pair, new_id)) before "
                "counting again: later merges build on earlier ones"
            )
        else:
            hint = (
                "each step: count pairs, take the most frequent (smallest on ties), give it "
                "the next id, merge it everywhere"
            )
        fail(case, got, want, hint)

    bad_inputs = [
        ("train_bpe(b'bytes', 300)", lambda: impl(b"bytes", 300), (TypeError,), "a str"),
        ("train_bpe(None, 300)", lambda: impl(None, 300), (TypeError,), "a str"),
        ("train_bpe('', 300)", lambda: impl("", 300), (ValueError,), "empty"),
        ("train_bpe('abc', 256)", lambda: impl("abc", 256), (ValueError,), "256"),
        ("train_bpe('abc', 100)", lambda: impl("abc", 100), (ValueError,), "256"),
    ]
    hints = {
        "a str": "check isinstance(text, str) first and raise TypeError otherwise",
        "empty": "empty text has nothing to learn from: raise ValueError",
        "256": "vocab_size must be > 256 (the bytes come first): raise ValueError otherwise",
    }
    for case, run, errors, key in bad_inputs:
        expect_raises(case, run, errors, hints[key])


def _uses_unassigned_ids(merges: dict) -> bool:
    """A merge of an id > 255 that no earlier merge created: code points, not bytes."""
    assigned: set[int] = set()
    for pair, new_id in merges.items():
        if any(t > 255 and t not in assigned for t in pair):
            return True
        assigned.add(new_id)
    return False


# ------------------------------------------------------------------------ 2.4 get_batch


def _call_batch(impl: Callable, data, block_size: int, batch_size: int, gen, case: str):
    return call(
        case,
        impl,
        data,
        block_size,
        batch_size,
        generator=gen,
        hint=lambda err: (
            "valid offsets are 0 … len(data) - block_size - 1, so use "
            "torch.randint(len(data) - block_size, (batch_size,)): y needs one more token "
            "than x; a window must fit entirely"
            if isinstance(err, (RuntimeError, IndexError, ValueError))
            else None
        ),
    )


def _check_shape_dtype(x, y, batch_size: int, block_size: int, case: str) -> None:
    expect_type(x, torch.Tensor, f"x of {case}")
    expect_type(y, torch.Tensor, f"y of {case}")
    for name, t in (("x", x), ("y", y)):
        if tuple(t.shape) != (batch_size, block_size):
            fail(
                f"{name}.shape of {case}",
                tuple(t.shape),
                (batch_size, block_size),
                "stack batch_size windows of block_size tokens: shape (batch_size, block_size)",
            )
        if t.dtype != torch.int64:
            fail(
                f"{name}.dtype of {case}",
                str(t.dtype),
                "torch.int64",
                "token ids must be int64 (torch.long) for nn.Embedding and cross_entropy: "
                "convert with .long() or astype(np.int64)",
            )


@checks("2.4")
def check_get_batch(impl: Callable) -> None:
    n, T, B, draws = 40, 8, 64, 25
    data = torch.arange(n, dtype=torch.int64)  # the token at offset i is i: windows show
    offsets: Counter = Counter()
    with torch.random.fork_rng(devices=[]):  # a learner who ignores `generator` stays seeded
        torch.manual_seed(1234)
        gen = torch.Generator().manual_seed(0)
        case = f"get_batch(torch.arange({n}), block_size={T}, batch_size={B})"
        for _ in range(draws):
            x, y = _call_batch(impl, data, T, B, gen, case)
            _check_shape_dtype(x, y, B, T, case)
            for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
                start = row_x[0]
                if row_x != list(range(start, start + T)):
                    fail(
                        f"a row of x in {case}",
                        row_x,
                        list(range(start, start + T)),
                        "each row must be one contiguous window data[i : i + block_size]",
                    )
                if row_y == row_x:
                    fail(
                        f"y for the row x = {row_x}",
                        row_y,
                        [t + 1 for t in row_x],
                        "y is x shifted by one: y = data[i + 1 : i + 1 + block_size], the "
                        "next token at every position (unshifted targets teach copying)",
                    )
                if row_y != [t + 1 for t in row_x]:
                    fail(
                        f"y for the row x = {row_x}",
                        row_y,
                        [t + 1 for t in row_x],
                        "y is x shifted by one: y = data[i + 1 : i + 1 + block_size]",
                    )
                offsets[start] += 1
            if len(set(x[:, 0].tolist())) == 1:
                fail(
                    f"the offsets of one batch of {case}",
                    x[:, 0].tolist()[:5] + ["…"],
                    "independent uniform offsets",
                    "draw a fresh, independent offset for every row: "
                    "torch.randint(…, (batch_size,), generator=generator)",
                )
        # (An offset past len(data) - block_size - 1 cannot get here: its y does not fit,
        # and _call_batch names the valid range when torch.stack fails.)
        valid = range(n - T)
        missing = [i for i in valid if offsets[i] == 0]
        if missing:
            hint = (
                "the last window is never sampled: torch.randint's upper bound is exclusive, "
                "use torch.randint(len(data) - block_size, …), not len(data) - block_size - 1"
                if missing == [n - T - 1]
                else "draw offsets uniformly over every valid start 0 … len(data) - block_size - 1"
            )
            fail(f"offsets never drawn in {B * draws} windows of {case}", missing, [], hint)
        # Reproducible with a seeded generator, different with another seed.
        same = [impl(data, T, B, generator=torch.Generator().manual_seed(7))[0] for _ in range(2)]
        other = impl(data, T, B, generator=torch.Generator().manual_seed(8))[0]
        if not torch.equal(same[0], same[1]) or torch.equal(same[0], other):
            raise AssertionError(
                f"{case}: two generators seeded alike gave different batches (or different "
                "seeds gave the same one).\nHint: pass generator=generator to torch.randint"
            )

        # Other containers: a uint16 NumPy array (what read_bin returns) and a list.
        arr = np.arange(n, dtype=np.uint16)
        for container, label in ((arr, "a uint16 NumPy array"), (list(range(n)), "a list")):
            c = f"get_batch({label}, block_size={T}, batch_size=4)"
            x, y = _call_batch(impl, container, T, 4, torch.Generator().manual_seed(1), c)
            _check_shape_dtype(x, y, 4, T, c)
            if not torch.equal(y, x + 1) or not torch.equal(x[:, 1:], x[:, :-1] + 1):
                fail(c, (x.tolist(), y.tolist()), "windows of data and y = x shifted by one", None)

        # The smallest corpus that works: one valid window, offset 0 (any other offset's y
        # would not fit, so a result of the right shape is the right one).
        c = f"get_batch(torch.arange({T + 1}), block_size={T}, batch_size=3)"
        x, y = _call_batch(impl, torch.arange(T + 1), T, 3, torch.Generator().manual_seed(0), c)
        _check_shape_dtype(x, y, 3, T, c)

    for bad_T, label in ((n, "len(data)"), (n + 5, "more than len(data)")):
        expect_raises(
            f"get_batch(torch.arange({n}), block_size={bad_T} = {label}, batch_size=2)",
            lambda: impl(data, bad_T, 2),
            ValueError,
            "a window needs block_size + 1 tokens: raise ValueError when block_size >= len(data)",
        )
