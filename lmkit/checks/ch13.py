"""Checks of chapter 13: span_loss, best_span (question answering), ROUGE-N
(summarisation), the ranking metric (recommendation).

Judges: ``F.cross_entropy`` of the start and of the end logits, averaged, with the
positions outside the context filled with ``−inf``, in float64 (13.1); an exhaustive
search over every pair ``(i, j)`` written as two Python loops (13.2); ``torch.topk`` for
scores without ties (the target's place among the ``k`` largest, in float64), and for scores
with ties a plain Python sort in which the target comes *after* every item with the same
score (the pessimistic convention of the docstring) (13.4). ROUGE-N is judged by Google's
``rouge-score`` package (``RougeScorer``, no stemming) on texts whose words it keeps as they
are (13.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmkit.checks import (
    call,
    diagnose,
    expect_differentiable,
    expect_finite,
    expect_tensor,
    expect_type,
    expect_unchanged,
    expect_value_error,
    fail,
    fmt,
    near,
)
from lmkit.grading import checks


def _logits(seed: int, B: int, T: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, generator=g) * scale, torch.randn(B, T, generator=g) * scale


def _context(B: int, T: int, question: int, lengths: list[int]) -> torch.Tensor:
    """``[CLS] question… [SEP]`` = the first ``question`` tokens, then the context up to each
    row's length (its last token a ``[SEP]``, not context), then padding."""
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, question : n - 1] = True
    return mask


# ------------------------------------------------------------------ 13.1 span_loss


def _ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, **kw):
    x = logits.double()
    if mask is not None:
        x = x.masked_fill(~mask, float("-inf"))
    return F.cross_entropy(x, target, **kw)


def _want_loss(s, e, start, end, mask) -> float:
    return float((_ce(s, start, mask) + _ce(e, end, mask)) / 2)


HINT_MEAN_OF_TWO = "the loss is the mean of the two cross-entropies: (loss_start + loss_end) / 2"
HINT_MASK = (
    "positions outside the context (question, [CLS], [SEP], padding) must get probability "
    "0: fill their logits with -inf before the softmax (masked_fill(~context_mask, -inf))"
)
HINT_MASK_ZERO = (
    "fill the logits outside the context with -inf, not 0: a logit of 0 still gets "
    "probability e^0 / Σ e^z"
)
HINT_POSITIONS = (
    "the softmax is over the T positions of each row (dim=1): F.cross_entropy(start_logits, "
    "start) with start_logits (B, T) does that; you normalised over the batch"
)
HINT_INCLUSIVE = "end is inclusive, the index of the answer's last token: do not shift it"
HINT_BOTH = "the loss has two parts: the start's cross-entropy and the end's"
HINT_SUM_BATCH = "average over the batch (F.cross_entropy's default reduction), do not sum"


def _loss_suspects(s, e, start, end, mask) -> list[tuple[Callable[[float, float], bool], str]]:
    B = s.shape[0]

    def value(f):
        return lambda g, w: near(g, float(f()))

    def over_batch(x, t):
        x = x.double().masked_fill(~mask, float("-inf"))
        return -torch.log_softmax(x, dim=0)[torch.arange(B), t].mean()

    return [
        (value(lambda: _ce(s, start, mask) + _ce(e, end, mask)), HINT_MEAN_OF_TWO),
        (value(lambda: (_ce(s, start, None) + _ce(e, end, None)) / 2), HINT_MASK),
        (
            value(
                lambda: (
                    (
                        _ce(s.masked_fill(~mask, 0.0), start, None)
                        + _ce(e.masked_fill(~mask, 0.0), end, None)
                    )
                    / 2
                )
            ),
            HINT_MASK_ZERO,
        ),
        (
            value(lambda: (over_batch(s, start) + over_batch(e, end)) / 2),
            HINT_POSITIONS,
        ),
        (value(lambda: (_ce(s, start, mask) + _ce(e, end - 1, mask)) / 2), HINT_INCLUSIVE),
        (value(lambda: (_ce(s, start, mask) + _ce(e, end + 1, mask)) / 2), HINT_INCLUSIVE),
        (value(lambda: _ce(s, start, mask)), HINT_BOTH),
        (value(lambda: _ce(s, start, mask) / 2), HINT_BOTH),
        (
            value(
                lambda: (
                    (_ce(s, start, mask, reduction="sum") + _ce(e, end, mask, reduction="sum")) / 2
                )
            ),
            HINT_SUM_BATCH,
        ),
    ]


# B = 4 rows of T = 10 tokens: 3 question tokens, contexts of different lengths.
LOSS_CASES = [
    ("4 rows, with context_mask", 0, 4, 10, [10, 9, 7, 8], [3, 4, 3, 5], [3, 6, 5, 6], True),
    ("4 rows, no context_mask", 1, 4, 10, [10, 10, 10, 10], [0, 4, 9, 2], [1, 4, 9, 7], False),
    ("1 row, a one-token answer", 2, 1, 6, [6], [3], [3], True),
]  # fmt: skip


@checks("13.1")
def check_span_loss(impl: Callable) -> None:
    for desc, seed, B, T, lengths, starts, ends, masked in LOSS_CASES:
        case = f"span_loss({desc})"
        s, e = _logits(seed, B, T)
        start, end = torch.tensor(starts), torch.tensor(ends)
        mask = _context(B, T, 3, lengths) if masked else None
        s_in, e_in = s.clone().requires_grad_(True), e.clone().requires_grad_(True)
        got = call(case, impl, s_in, e_in, start.clone(), end.clone(), mask)
        expect_tensor(got, (), case)
        expect_unchanged(
            s_in.detach(), s, case + ": start_logits", "use masked_fill, not masked_fill_"
        )
        want = _want_loss(s, e, start, end, mask)
        g = float(got.detach())
        if not near(g, want):
            fill = mask if mask is not None else torch.ones(B, T, dtype=torch.bool)
            hint = diagnose(g, want, _loss_suspects(s, e, start, end, fill))
            fail(case, g, want, hint)
        expect_differentiable(
            got, case, "keep it torch operations (no .item(), no numpy) so backward() works"
        )

    # Large logits: a softmax written by hand overflows.
    case = "span_loss(logits of size 1e4, with context_mask)"
    s, e = _logits(3, 2, 8, scale=1e4)
    start, end, mask = torch.tensor([3, 5]), torch.tensor([4, 6]), _context(2, 8, 3, [8, 8])
    got = call(case, impl, s, e, start, end, mask)
    expect_tensor(got, (), case)
    expect_finite(got, case, "use F.cross_entropy (or log_softmax): softmax(...).log() overflows")
    if not near(float(got.detach()), _want_loss(s, e, start, end, mask)):
        fail(case, float(got.detach()), _want_loss(s, e, start, end, mask), None)

    s, e = _logits(4, 2, 8)
    mask = _context(2, 8, 3, [8, 6])
    hint_check = (
        "validate the labels before computing: a label outside the context would silently "
        "give an infinite loss, or a wrong one"
    )
    expect_value_error(
        "span_loss with end 3 < start 5",
        lambda: impl(s, e, torch.tensor([5, 4]), torch.tensor([3, 4]), mask),
        "an answer cannot end before it starts: raise a ValueError when end < start",
    )
    expect_value_error(
        "span_loss with end 8 for T = 8 positions",
        lambda: impl(s, e, torch.tensor([4, 4]), torch.tensor([8, 4]), mask),
        hint_check,
    )
    expect_value_error(
        "span_loss with an answer in the question (start 1, where context_mask is False)",
        lambda: impl(s, e, torch.tensor([1, 4]), torch.tensor([4, 4]), mask),
        hint_check,
    )
    expect_value_error(
        "span_loss with an answer ending in the padding (row 1 has 6 tokens; end 7)",
        lambda: impl(s, e, torch.tensor([3, 4]), torch.tensor([4, 7]), mask),
        hint_check,
    )
    expect_value_error(
        "span_loss with end_logits (2, 7) for start_logits (2, 8)",
        lambda: impl(s, e[:, :7], torch.tensor([3, 3]), torch.tensor([4, 4]), None),
        "check that start_logits and end_logits are both (B, T) (check_span_logits does)",
    )


# ------------------------------------------------------------------ 13.2 best_span


def _brute_force(s, e, mask, L: int) -> tuple[list[int], list[int]]:
    """Every pair (i, j) tried in order; a strictly higher score wins (earliest on ties)."""
    starts, ends = [], []
    for b in range(s.shape[0]):
        best, where = None, None
        for i in range(s.shape[1]):
            for j in range(i, min(i + L, s.shape[1])):
                if mask is not None and not (mask[b, i] and mask[b, j]):
                    continue
                score = float(s[b, i]) + float(e[b, j])
                if best is None or score > best:
                    best, where = score, (i, j)
        starts.append(where[0])
        ends.append(where[1])
    return starts, ends


def _independent(s, e, mask):
    if mask is not None:
        s, e = s.masked_fill(~mask, float("-inf")), e.masked_fill(~mask, float("-inf"))
    return s.argmax(1).tolist(), e.argmax(1).tolist()


HINT_PAIRS = (
    "do not take the best start and the best end separately (the end can come before the "
    "start, or the span run across the whole page): search over pairs i <= j"
)
HINT_MAX_LENGTH = "only spans of at most max_length tokens are allowed: j - i + 1 <= max_length"
HINT_OFF_BY_ONE = (
    "max_length counts tokens, both ends included: j <= i + max_length - 1 "
    "(torch.tril(ones, diagonal=max_length - 1))"
)
HINT_CONTEXT = (
    "both the start and the end must be context tokens: mask the pairs where "
    "context_mask is False at i or at j"
)
HINT_SPAN_TIES = (
    "on equal scores take the earliest start, then the earliest end: the first maximum "
    "of the flattened (i, j) table, as argmax returns it"
)
HINT_UNRAVEL = "a flat index f of the (T, T) table is start = f // T, end = f % T"


def _unravelled_by(spans: tuple[list[int], list[int]], T: int, n: int):
    """The right spans' flat indices ``i·T + j`` unravelled with ``n`` instead of ``T``."""
    flat = [i * T + j for i, j in zip(*spans, strict=True)]
    return [f // n for f in flat], [f % n for f in flat]


def _span_suspects(s, e, mask, L, T):
    return [
        (lambda: _brute_force(s, e, mask, T), HINT_MAX_LENGTH),
        (lambda: _independent(s, e, mask), HINT_PAIRS),
        (lambda: _brute_force(s, e, mask, L + 1), HINT_OFF_BY_ONE),
        (lambda: _brute_force(s, e, None, L), HINT_CONTEXT),
    ]


SPAN_CASES = [
    ("3 rows of 12 tokens, max_length 4, with context_mask", 5, 3, 12, 4, [12, 10, 8]),
    ("2 rows of 9 tokens, max_length 30, no context_mask", 6, 2, 9, 30, None),
    ("4 rows of 16 tokens, max_length 3", 7, 4, 16, 3, [16, 16, 11, 14]),
]  # fmt: skip


def _expect_span_pair(case: str, got, B: int) -> tuple[list[int], list[int]]:
    if not (isinstance(got, tuple) and len(got) == 2):
        raise AssertionError(f"{case} should return a pair (start, end), got {type(got).__name__}")
    for name, t in zip(("start", "end"), got, strict=True):
        expect_tensor(t, (B,), f"{case}: {name}", dtype=torch.long)
    return got[0].tolist(), got[1].tolist()


def _judge_spans(case, got, want, suspects, T: int) -> None:
    if got == want:
        return
    hint = None
    unravel = [(lambda n=n: _unravelled_by(want, T, n), HINT_UNRAVEL) for n in (T - 1, T + 1)]
    for suspect, text in [*unravel, *suspects]:
        if got == suspect():
            hint = text
            break
    fail(case, f"starts {got[0]}, ends {got[1]}", f"starts {want[0]}, ends {want[1]}", hint)


@checks("13.2")
def check_best_span(impl: Callable) -> None:
    # Constructed: the best end (token 2) comes before the best start (token 5).
    case = "best_span(start best at 5, end best at 2: the best span is (5, 6))"
    s = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]])
    e = torch.tensor([[0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 2.0, 0.0]])
    got = _expect_span_pair(case, call(case, impl, s, e, None, 30), 1)
    _judge_spans(case, got, ([5], [6]), [(lambda: ([5], [2]), HINT_PAIRS)], 8)

    for desc, seed, B, T, L, lengths in SPAN_CASES:
        case = f"best_span({desc})"
        s, e = _logits(seed, B, T)
        mask = _context(B, T, 2, lengths) if lengths else None
        got = _expect_span_pair(case, call(case, impl, s.clone(), e.clone(), mask, L), B)
        want = _brute_force(s, e, mask, L)
        _judge_spans(case, got, want, _span_suspects(s, e, mask, L, T), T)

    # Constructed: a tie between spans (1, 2) and (1, 4) and (3, 4).
    case = "best_span(equal scores for spans (1, 2), (1, 4) and (3, 4))"
    s = torch.tensor([[0.0, 2.0, 0.0, 2.0, 0.0, 0.0]])
    e = torch.tensor([[0.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
    got = _expect_span_pair(case, call(case, impl, s, e, None, 30), 1)
    ties = [(lambda: ([1], [4]), HINT_SPAN_TIES), (lambda: ([3], [4]), HINT_SPAN_TIES)]
    _judge_spans(case, got, ([1], [2]), ties, 6)

    # Constructed: a short row, where a flat index unravelled with T ± 1 lands elsewhere.
    case = "best_span(one row of 5 tokens whose best span is (2, 3))"
    s = torch.tensor([[0.0, 0.0, 5.0, 0.0, 0.0]])
    e = torch.tensor([[0.0, 0.0, 0.0, 5.0, 0.0]])
    got = _expect_span_pair(case, call(case, impl, s, e, None, 30), 1)
    _judge_spans(case, got, ([2], [3]), [], 5)

    case = "best_span(max_length 1: every answer is one token)"
    s, e = _logits(8, 3, 7)
    got = _expect_span_pair(case, call(case, impl, s, e, None, 1), 3)
    if got[0] != got[1]:
        fail(case, f"starts {got[0]}, ends {got[1]}", "start == end in every row", HINT_OFF_BY_ONE)
    _judge_spans(case, got, _brute_force(s, e, None, 1), [], 7)

    s, e = _logits(9, 2, 6)
    expect_value_error(
        "best_span with max_length 0",
        lambda: impl(s, e, None, 0),
        "no span has 0 tokens: raise a ValueError for max_length < 1",
    )
    empty = torch.ones(2, 6, dtype=torch.bool)
    empty[1] = False
    expect_value_error(
        "best_span with a row whose context_mask is all False",
        lambda: impl(s, e, empty, 5),
        "a row without context has no span to choose: raise a ValueError, do not return (0, 0)",
    )
    expect_value_error(
        "best_span with end_logits (2, 5) for start_logits (2, 6)",
        lambda: impl(s, e[:, :5], None, 5),
        "check that start_logits and end_logits are both (B, T) (check_span_logits does)",
    )


# ------------------------------------------------------------------ 13.3 ROUGE-N


def _rouge_judge(candidate: list[str], reference: list[str], n: int) -> tuple[float, float, float]:
    """rouge-score's ROUGE-N. Its tokenizer keeps lower-case ASCII words as they are, so
    joining the tokens with spaces hands it exactly these lists."""
    from rouge_score import rouge_scorer

    score = rouge_scorer.RougeScorer([f"rouge{n}"]).score(" ".join(reference), " ".join(candidate))
    s = score[f"rouge{n}"]
    return s.precision, s.recall, s.fmeasure


def _ngram_counts(tokens: list[str], n: int, last: bool = True) -> dict[tuple, int]:
    counts: dict[tuple, int] = {}
    for i in range(len(tokens) - n + (1 if last else 0)):
        g = tuple(tokens[i : i + n])
        counts[g] = counts.get(g, 0) + 1
    return counts


def _rouge_variant(
    candidate: list[str],
    reference: list[str],
    n: int,
    *,
    overlap: str = "clipped",
    last: bool = True,
    swap: bool = False,
    mean: str = "harmonic",
    scale: float = 1.0,
) -> tuple[float, float, float]:
    """What a typical mistake computes: ROUGE-N with one step changed."""
    cand, ref = _ngram_counts(candidate, n, last), _ngram_counts(reference, n, last)
    n_cand, n_ref = sum(cand.values()), sum(ref.values())
    if overlap == "clipped":
        common = sum(min(c, ref.get(g, 0)) for g, c in cand.items())
    elif overlap == "unclipped":  # every candidate n-gram that occurs in the reference at all
        common = sum(c for g, c in cand.items() if g in ref)
    else:  # "sets": distinct n-grams only
        common = len(set(cand) & set(ref))
        if overlap == "sets-distinct":
            n_cand, n_ref = len(cand), len(ref)
    p, r = common / max(n_cand, 1), common / max(n_ref, 1)
    if swap:
        p, r = r, p
    if mean == "harmonic":
        f = 2 * p * r / (p + r) if p + r else 0.0
    else:
        f = (p + r) / 2
    return p * scale, r * scale, f * scale


HINT_ROUGE_CLIP = (
    "clip the overlap: an n-gram counts at most as often as it occurs in the reference, "
    "min(count in candidate, count in reference); otherwise repeating 'the' scores"
)
HINT_ROUGE_SETS = (
    "count repeated n-grams: the overlap of two multisets (Counter & Counter), and the "
    "totals with repeats, not the sizes of sets of distinct n-grams"
)
HINT_ROUGE_SWAP = (
    "precision divides the overlap by the candidate's number of n-grams (how much of what "
    "you wrote is right), recall by the reference's (how much of the answer you found)"
)
HINT_ROUGE_HARMONIC = "F1 is the harmonic mean 2·P·R / (P + R), not the average (P + R) / 2"
HINT_ROUGE_LAST = (
    "a list of L tokens has L − n + 1 n-grams (range(len(tokens) - n + 1)): the last one is missing"
)
HINT_ROUGE_N = "n is the n-gram length: ROUGE-2 compares pairs of consecutive tokens, not words"
HINT_ROUGE_PERCENT = "return fractions in [0, 1]; papers multiply by 100 only to print them"
HINT_ROUGE_EMPTY = (
    "a side with no n-grams (empty, or shorter than n) divides by zero: use max(total, 1) "
    "and return 0.0 for F1 when precision + recall is 0"
)
HINT_ROUGE_BAD_N = "check n first: raise a ValueError naming n when it is below 1"


def _rouge_suspects(candidate, reference, n):
    def v(**kw):
        return lambda: _rouge_variant(candidate, reference, n, **kw)

    return [
        (v(overlap="unclipped"), HINT_ROUGE_CLIP),
        (v(overlap="sets"), HINT_ROUGE_SETS),
        (v(overlap="sets-distinct"), HINT_ROUGE_SETS),
        (v(swap=True), HINT_ROUGE_SWAP),
        (v(mean="arithmetic"), HINT_ROUGE_HARMONIC),
        (v(last=False), HINT_ROUGE_LAST),
        (lambda: _rouge_variant(candidate, reference, 1), HINT_ROUGE_N),
        (v(scale=100.0), HINT_ROUGE_PERCENT),
    ]


def _rouge_cases() -> list[tuple[str, list[str], list[str], int]]:
    g = torch.Generator().manual_seed(13)
    vocab = "the a police said on in of man court city two was".split()

    def words(k: int) -> list[str]:
        return [vocab[i] for i in torch.randint(len(vocab), (k,), generator=g).tolist()]

    mat, cat = "the cat sat on the mat".split(), "the cat was on the mat".split()
    long_a, long_b = words(30), words(20)
    return [
        (
            "rouge_n('the cat sat on the mat with the dog', 'the cat sat on the mat', n=1)",
            "the cat sat on the mat with the dog".split(),
            mat,
            1,
        ),
        ("rouge_n('the cat was on the mat', 'the cat sat on the mat', n=1)", cat, mat, 1),
        (
            "rouge_n('the the the the cat', 'the cat sat on the mat', n=1)",
            "the the the the cat".split(),
            mat,
            1,
        ),
        ("rouge_n('the cat was on the mat', 'the cat sat on the mat', n=2)", cat, mat, 2),
        (
            "rouge_n('on the mat on the mat', 'the cat sat on the mat', n=2)",
            "on the mat on the mat".split(),
            mat,
            2,
        ),
        ("rouge_n(30 random words, 20 random words, n=1)", long_a, long_b, 1),
        ("rouge_n(30 random words, 20 random words, n=2)", long_a, long_b, 2),
        (
            "rouge_n('police said the man was in court', 'the man was in court', n=3)",
            "police said the man was in court".split(),
            "the man was in court".split(),
            3,
        ),
        (
            "rouge_n('court', 'the man was in court', n=2): a candidate shorter than n",
            ["court"],
            "the man was in court".split(),
            2,
        ),
        (
            "rouge_n([], 'the man was in court', n=1): an empty candidate",
            [],
            "the man was in court".split(),
            1,
        ),
    ]


def _zero_division(err: BaseException) -> str | None:
    return HINT_ROUGE_EMPTY if isinstance(err, ZeroDivisionError) else None


@checks("13.3")
def check_rouge_n(impl: Callable) -> None:
    for desc, candidate, reference, n in _rouge_cases():
        got = call(desc, impl, list(candidate), list(reference), n, hint=_zero_division)
        expect_type(got, tuple, desc)
        if len(got) != 3:
            raise AssertionError(
                f"{desc} should return 3 numbers (precision, recall, f1), got {len(got)}"
            )
        for value, name in zip(got, ("precision", "recall", "F1"), strict=True):
            expect_type(value, float, f"{desc}: the {name}")
        want = _rouge_judge(candidate, reference, n)
        if not all(math.isfinite(v) for v in got):
            hint = HINT_ROUGE_EMPTY
        elif all(near(a, b) for a, b in zip(got, want, strict=True)):
            continue
        else:
            tests = [
                (lambda g, w, s=s: all(near(a, b) for a, b in zip(g, s(), strict=True)), h)
                for s, h in _rouge_suspects(candidate, reference, n)
            ]
            hint = diagnose(got, want, tests)
        shown = ", ".join(fmt(v) for v in got)
        raise AssertionError(
            f"{desc}: got (precision, recall, F1) = ({shown}); expected "
            f"({', '.join(fmt(v) for v in want)})." + (f"\nHint: {hint}" if hint else "")
        )
    expect_value_error(
        "rouge_n(['a'], ['a'], n=0)", lambda: impl(["a"], ["a"], 0), HINT_ROUGE_BAD_N, [0]
    )


# ------------------------------------------------------------------ 13.4 HR@k and NDCG@k


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


@checks("13.4")
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
