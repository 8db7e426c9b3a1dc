"""Checks of chapter 9: mask_tokens, mlm_loss, BertEmbeddings.forward.

The judges: for :func:`~lmkit.bert.mask_tokens`, its contract measured on large seeded
batches (which positions are selected, what their labels are, how they are corrupted, and
how often) — a learner may draw the random numbers in another order, so no exact tensor
is expected; for :func:`~lmkit.bert.mlm_loss`, PyTorch's
``F.cross_entropy(..., ignore_index=-100)``; for :meth:`~lmkit.bert.BertEmbeddings.forward`,
Hugging Face's ``BertEmbeddings`` loaded with the same weights. A wrong answer is compared
with the mistakes learners really make, to name the likely one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from lmkit.bert import IGNORE_INDEX, BertEmbeddings
from lmkit.checks import (
    binomial_tol,
    call,
    check_mean_cross_entropy,
    close,
    compare,
    expect_differentiable,
    expect_finite,
    expect_type,
    expect_unchanged,
    expect_value_error,
)
from lmkit.grading import checks

# ------------------------------------------------------------------------ 9.1 mask_tokens

#: The vocabulary of the 9.1 cases: [PAD] = 0, [CLS] = 1, [SEP] = 2, [MASK] = 3, and ordinary
#: tokens 4 … 999. The ids never contain [MASK], so a selected position that shows
#: [MASK] was masked, one that shows its own id was kept, any other id is a random one.
V, PAD, CLS, SEP, MASK = 1000, 0, 1, 2, 3

HINT_GENERATOR = (
    "draw every random number from the generator argument — torch.rand(ids.shape, "
    "generator=generator), torch.randint(vocab_size, ids.shape, generator=generator) — "
    "not from torch's global random state (or Python's random / numpy)"
)
HINT_ANY_SHAPE = (
    "ids may have any shape (1-D, 3-D, …): work elementwise with ids.shape — "
    "torch.rand(ids.shape, generator=generator) — and never unpack B, T = ids.shape"
)


def _batch(shape: tuple[int, ...], seed: int, specials: bool = True):
    """Ordinary ids of ``shape`` and, with ``specials``, rows ``[CLS] A [SEP] B [SEP] [PAD]…``
    (the last dimension is the sequence) with their special mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(MASK + 1, V, shape, generator=g)
    if not specials:
        return ids, None
    T = shape[-1]
    length = torch.randint(T // 2, T + 1, shape[:-1], generator=g)[..., None]
    sep = torch.randint(2, T // 2 - 1, shape[:-1], generator=g)[..., None]
    col = torch.arange(T)
    padding = col >= length
    separators = (col == sep) | (col == length - 1)
    ids[..., 0] = CLS
    ids[separators] = SEP
    ids[padding] = PAD
    return ids, padding | separators | (col == 0)


_tol = binomial_tol


def _mask_call(
    case: str,
    impl: Callable,
    ids: torch.Tensor,
    special: torch.Tensor | None,
    p: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call ``impl`` on a copy of ``ids``; check the result's form and that ``ids`` is intact."""
    given = ids.clone()
    kwargs: dict[str, Any] = {"mask_id": MASK, "vocab_size": V, "mask_prob": p}
    if special is not None:
        kwargs["special_mask"] = special.clone()
    if generator is not None:
        kwargs["generator"] = generator
    out = call(case, impl, given, **kwargs, hint=HINT_ANY_SHAPE if ids.dim() != 2 else None)
    if not isinstance(out, tuple) or len(out) != 2:
        raise AssertionError(
            f"{case} should return a tuple (inputs, labels), got "
            f"{type(out).__name__}{f' of length {len(out)}' if isinstance(out, tuple) else ''}"
        )
    for name, t in zip(("inputs", "labels"), out, strict=True):
        expect_type(t, torch.Tensor, f"{name} of {case}")
        if t.shape != ids.shape:
            raise AssertionError(
                f"{name} of {case} should have the shape of ids {tuple(ids.shape)}, got "
                f"{tuple(t.shape)}"
                + (f"\nHint: {HINT_ANY_SHAPE}" if t.numel() == ids.numel() else "")
            )
        if t.dtype != torch.int64:
            raise AssertionError(
                f"{name} of {case} should be int64 (token ids, and the targets of "
                f"F.cross_entropy), got {t.dtype}.\nHint: build them from ids "
                "(ids.clone(), torch.full_like(ids, -100), torch.where(...)) to keep its dtype"
            )
    expect_unchanged(
        given,
        ids,
        f"{case}: ids",
        "corrupt a copy, inputs = ids.clone(): the caller keeps its ids (and the labels must "
        "be the original tokens)",
    )
    return out


def _check_contract(
    case: str,
    ids: torch.Tensor,
    special: torch.Tensor | None,
    p: float,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    statistics: bool = True,
) -> None:
    """Everything that must hold whatever the order of the random draws."""
    if special is None:
        special = torch.zeros_like(ids, dtype=torch.bool)
    selected = labels != IGNORE_INDEX
    # Labels: -100, or the original id.
    if p < 1 and not (labels == IGNORE_INDEX).any():
        if torch.equal(labels, ids):
            hint = (
                "labels are -100 (IGNORE_INDEX) at the positions that were not selected, "
                "so that the loss ignores them: you labelled every position with its id"
            )
        elif (labels[inputs == ids] == 0).float().mean() > 0.5:
            hint = (
                "positions that are not selected are labelled -100 (IGNORE_INDEX), not 0 "
                "(0 is a real token id: [PAD])"
            )
        else:
            hint = "labels are -100 at non-selected positions, the original id at selected ones"
        raise AssertionError(
            f"{case}: no label is -100, but with mask_prob={p} most positions are not "
            f"selected.\nHint: {hint}"
        )
    wrong = selected & (labels != ids)
    if wrong.any():
        if torch.equal(labels[wrong], inputs[wrong]):
            hint = (
                "selected positions must keep their original id as the label, not the "
                "corrupted one: take the labels from ids (before corrupting), not from inputs"
            )
        else:
            hint = "labels are -100 at non-selected positions, the original id at selected ones"
        i = tuple(int(k) for k in wrong.nonzero()[0])
        raise AssertionError(
            f"{case}: labels{list(i)} = {int(labels[i])}, but ids{list(i)} = {int(ids[i])} "
            f"(a label is either -100 or the original id).\nHint: {hint}"
        )
    # Only selected positions are corrupted.
    changed = ~selected & (inputs != ids)
    if changed.any():
        n = int(changed.sum())
        if (inputs[selected] == MASK).all() and not (inputs[changed] == MASK).all():
            hint = (
                "every selected position is labelled, whatever it becomes: the ones given a "
                "random id and the ones kept unchanged too, not only those that became [MASK]"
            )
        elif (inputs[changed] == MASK).all():
            hint = (
                "the positions you replace by [MASK] must be the selected ones (those with a "
                "label): draw the selection once and use it for both labels and inputs"
            )
        else:
            hint = (
                "only the selected positions are corrupted (80% [MASK], 10% random, 10% kept, "
                "all among the selected): every position labelled -100 keeps its id in inputs. "
                "Did you draw the random replacements over all positions?"
            )
        raise AssertionError(
            f"{case}: {n} position(s) labelled -100 (not selected) were changed in inputs.\n"
            f"Hint: {hint}"
        )
    # Special positions are never selected.
    if (selected & special).any():
        n, total = int((selected & special).sum()), int(special.sum())
        raise AssertionError(
            f"{case}: {n} of the {total} special positions ([CLS], [SEP], padding) were "
            "selected.\nHint: never select positions where special_mask is True "
            "(selected &= ~special_mask)"
        )
    # Values of inputs.
    if ((inputs < 0) | (inputs >= V)).any():
        bad = inputs[(inputs < 0) | (inputs >= V)]
        raise AssertionError(
            f"{case}: inputs contains the id {int(bad[0])}, outside the vocabulary 0 … {V - 1}."
            "\nHint: random ids must be drawn from 0 … vocab_size-1: torch.randint(vocab_size, "
            "ids.shape, generator=generator) (the upper bound is exclusive)"
        )
    free = ~special
    n_free = int(free.sum())
    got_p = float(selected[free].float().mean()) if n_free else 0.0
    if p in (0.0, 1.0):
        want = free if p == 1.0 else torch.zeros_like(free)
        if not torch.equal(selected, want):
            raise AssertionError(
                f"{case}: {int(selected.sum())} of the {n_free} non-special positions were "
                f"selected, expected {int(want.sum())}.\nHint: select a position when a uniform "
                "number in [0, 1) is < mask_prob: mask_prob=0 selects none, mask_prob=1 every "
                "non-special position"
            )
    elif abs(got_p - p) > _tol(p, n_free):
        hint = f"select each non-special position independently with probability mask_prob = {p}"
        if abs(got_p - (1 - p)) <= _tol(p, n_free):
            hint = (
                "the selection is inverted: a position is selected when its uniform number is "
                "< mask_prob (so about mask_prob of them are), not >="
            )
        elif abs(got_p - 0.15) <= _tol(0.15, n_free):
            hint = "use the mask_prob argument, not a fixed 0.15"
        elif abs(got_p - 0.8 * p) <= _tol(0.8 * p, n_free):
            hint = (
                "every selected position is labelled, whatever it becomes: the ones given a "
                "random id and the ones kept unchanged too, not only those that became [MASK]"
            )
        raise AssertionError(
            f"{case}: {got_p:.2%} of the {n_free} non-special positions were selected "
            f"(have a label), expected about {p:.0%}.\nHint: {hint}"
        )
    if not statistics:
        return
    _check_split(case, ids, selected, inputs)


def _check_split(
    case: str, ids: torch.Tensor, selected: torch.Tensor, inputs: torch.Tensor
) -> None:
    """Among the selected positions: ~80% [MASK], ~10% a random id, ~10% unchanged."""
    n = int(selected.sum())
    new, old = inputs[selected], ids[selected]
    masked = float((new == MASK).float().mean())
    kept = float((new == old).float().mean())
    swapped = new[(new != old) & (new != MASK)]
    rand = swapped.numel() / n
    # A random id may itself be [MASK] or the original id (1/V each).
    want_m, want_r, want_k = 0.8 + 0.1 / V, 0.1 * (V - 2) / V, 0.1 + 0.1 / V
    ok = all(
        abs(g - w) <= _tol(w, n) for g, w in ((masked, want_m), (rand, want_r), (kept, want_k))
    )
    if not ok:
        if masked > 0.97:
            hint = (
                "of the selected positions about 80% become [MASK], 10% a random id, 10% stay: "
                "you replaced all of them with [MASK]"
            )
        elif rand < 0.01:
            hint = (
                "10% of the selected positions get a random id from 0 … vocab_size-1 "
                "(torch.randint(vocab_size, ...)): none of yours did"
            )
        elif kept < 0.01 + 0.1 / V:
            hint = (
                "10% of the selected positions keep their original id (so the model cannot "
                "assume that a visible token is always right): none of yours did"
            )
        elif abs(rand - 0.02) <= _tol(0.02, n):
            hint = (
                "of the 20% of selected positions that are not masked, half get a random id: "
                "if you draw again for them, the probability is 0.5, not 0.1 (or split one "
                "uniform draw: [0, 0.8) mask, [0.8, 0.9) random, [0.9, 1) keep)"
            )
        else:
            hint = (
                "split the selected positions independently: [MASK] with probability 0.8, a "
                "random id with 0.1, unchanged with 0.1 (e.g. one uniform u: u < 0.8 mask, "
                "0.8 <= u < 0.9 random)"
            )
        raise AssertionError(
            f"{case}: of the {n} selected positions {masked:.1%} became [MASK], {rand:.1%} "
            f"another id and {kept:.1%} kept theirs; expected about 80% / 10% / 10%.\n"
            f"Hint: {hint}"
        )
    # The random ids are spread over the whole vocabulary.
    if swapped.numel() >= 100:
        m = swapped.numel()
        distinct = swapped.unique().numel()
        expected = V * (1 - math.exp(-m / V))
        low, high = int(swapped.min()), int(swapped.max())
        if distinct < 0.6 * expected or low > V // 4 or high < 3 * V // 4:
            raise AssertionError(
                f"{case}: the {m} random replacements take {distinct} distinct values between "
                f"{low} and {high}; uniform draws from 0 … {V - 1} would take about "
                f"{expected:.0f} spread over the whole vocabulary.\nHint: draw one random id "
                "per position, uniformly over the vocabulary: torch.randint(vocab_size, "
                "ids.shape, generator=generator), then use it where a position is swapped"
            )


@checks("9.1")
def check_mask_tokens(impl: Callable) -> None:
    ids, special = _batch((64, 512), seed=91)
    with torch.random.fork_rng(devices=[]):  # a learner who ignores `generator` stays seeded
        torch.manual_seed(901)
        for p, seed in [(0.15, 0), (0.4, 1), (0.0, 2), (1.0, 3)]:
            case = (
                f"mask_tokens(ids (64, 512) with [CLS]/[SEP]/padding, mask_id={MASK}, "
                f"vocab_size={V}, special_mask, mask_prob={p}, generator seeded {seed})"
            )
            g = torch.Generator().manual_seed(seed)
            inputs, labels = _mask_call(case, impl, ids, special, p, g)
            _check_contract(case, ids, special, p, inputs, labels, statistics=p > 0)

        # Any shape, with or without a special mask.
        for shape, specials, seed in [((32768,), False, 4), ((4, 16, 512), True, 5)]:
            x, s = _batch(shape, seed=92 + seed, specials=specials)
            case = (
                f"mask_tokens(ids {tuple(shape)}{', special_mask' if specials else ''}, "
                f"mask_id={MASK}, vocab_size={V}, mask_prob=0.15, generator seeded {seed})"
            )
            out = _mask_call(case, impl, x, s, 0.15, torch.Generator().manual_seed(seed))
            _check_contract(case, x, s, 0.15, *out)

        # generator=None: torch's global random state (seeded here) is used.
        case = f"mask_tokens(ids (64, 512), mask_id={MASK}, vocab_size={V}) without a generator"
        torch.manual_seed(6)
        out = _mask_call(case, impl, ids, special, 0.15, None)
        _check_contract(case, ids, special, 0.15, *out)

        # The generator is the only source of randomness: same seed, same result.
        base = f"mask_tokens(ids (64, 512), mask_id={MASK}, vocab_size={V}, mask_prob=0.15"
        results = []
        for global_seed, seed in [(7, 10), (8, 10), (7, 11)]:
            torch.manual_seed(global_seed)
            g = torch.Generator().manual_seed(seed)
            results.append(
                _mask_call(f"{base}, generator seeded {seed})", impl, ids, special, 0.15, g)
            )
        (a_in, a_lab), (b_in, b_lab), (c_in, c_lab) = results
        if not (torch.equal(a_in, b_in) and torch.equal(a_lab, b_lab)):
            what = "labels" if not torch.equal(a_lab, b_lab) else "inputs (the random ids?)"
            raise AssertionError(
                f"{base}): two calls with generators seeded alike (10) gave different {what}, "
                f"after torch.manual_seed changed in between.\nHint: {HINT_GENERATOR}"
            )
        if torch.equal(a_lab, c_lab):
            raise AssertionError(
                f"{base}): generators seeded 10 and 11 gave the same selection.\nHint: the "
                "generator is ignored (or reseeded): use the one you are given, as it is, for "
                "every draw"
            )


# --------------------------------------------------------------------------- 9.2 mlm_loss


def _mlm_case(seed: int, B: int, T: int, V: int, keep: float, scale: float = 1.0):
    """Logits and labels with about ``keep`` of the positions selected (-100 elsewhere)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * scale
    targets = torch.randint(V, (B, T), generator=g)
    chosen = torch.rand(B, T, generator=g) < keep
    chosen.view(-1)[seed % (B * T)] = True  # at least one selected position
    return logits, torch.where(chosen, targets, torch.full_like(targets, IGNORE_INDEX))


HINT_NO_CLASS = (
    "the labels contain -100 at the positions that are not predicted, which is no class: "
    "leave them out — F.cross_entropy(..., ignore_index=-100), or index the selected "
    "positions (labels != -100) before gathering"
)
HINT_DENOMINATOR = (
    "average over the selected positions only: positions labelled -100 must not count in "
    "the denominator (F.cross_entropy(..., ignore_index=-100) does that)"
)


def _mlm_suspects(
    logits: torch.Tensor, labels: torch.Tensor
) -> list[tuple[Callable[[], float], str]]:
    B, T, V = logits.shape
    sel = labels != IGNORE_INDEX
    logp = torch.log_softmax(logits.double(), dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    nll = -(picked * sel)

    def per_row() -> float:
        counts = sel.sum(1)
        rows = counts > 0
        return float((nll.sum(1)[rows] / counts[rows]).mean())

    return [
        (lambda: float(nll.sum() / (B * T)), HINT_DENOMINATOR),
        (lambda: float(nll.sum()), "the mean over the selected positions, not the sum"),
        (
            lambda: float(-picked.mean()),
            "positions labelled -100 are not predicted: leave them out entirely "
            "(F.cross_entropy(..., ignore_index=-100)), do not score them as some token",
        ),
        (
            lambda: per_row(),
            "average over all the selected positions of the batch together, not per "
            "sequence and then over the sequences (sequences have different numbers of "
            "selected positions)",
        ),
        (
            lambda: F.cross_entropy(
                logits.softmax(-1).flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX
            ).item(),
            "pass the raw logits: cross-entropy applies log-softmax itself (you applied "
            "softmax twice)",
        ),
        (
            lambda: float(nll.sum() / sel.sum()) / math.log(2),
            "use the natural logarithm (nats), not bits",
        ),
    ]


@checks("9.2")
def check_mlm_loss(impl: Callable) -> None:
    cases = [
        ("B=2, T=6, V=11, about a third of the positions selected", _mlm_case(0, 2, 6, 11, 0.35)),
        ("B=3, T=5, V=7, every position selected", _mlm_case(1, 3, 5, 7, 1.0)),
        ("B=2, T=8, V=5, a single position selected", _mlm_case(2, 2, 8, 5, 0.0)),
        ("B=4, T=16, V=13, 15% selected, logits of size ~1e4", _mlm_case(3, 4, 16, 13, 0.15, 1e4)),
        ("B=2, T=12, V=30522 (BERT's vocabulary), 15% selected", _mlm_case(4, 2, 12, 30522, 0.15)),
    ]
    check_mean_cross_entropy(
        "mlm_loss",
        impl,
        [(desc, logits, labels) for desc, (logits, labels) in cases],
        lambda logits, labels: F.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX
        ),
        _mlm_suspects,
        targets_name="labels",
        explain=lambda labels: (
            f"the mean cross-entropy over the {int((labels != IGNORE_INDEX).sum())} selected "
            "positions"
        ),
        on_error=lambda err: HINT_NO_CLASS if isinstance(err, (IndexError, RuntimeError)) else None,
    )

    # No selected position: 0.0, differentiable, not NaN.
    logits, labels = _mlm_case(5, 2, 4, 9, 0.0)
    labels = torch.full_like(labels, IGNORE_INDEX)
    case = "mlm_loss(B=2, T=4, V=9) with every label -100 (nothing selected)"
    x = logits.clone().requires_grad_(True)
    got = call(case, impl, x, labels)
    expect_type(got, torch.Tensor, case)
    zero_hint = (
        "a batch without any selected position gives 0.0, not the 0/0 = NaN of "
        "F.cross_entropy's mean: check (labels != -100).any() and return logits.sum() * 0.0 "
        "(zero, but still connected to the graph)"
    )
    if got.dim() != 0 or not math.isfinite(got.item()) or got.item() != 0.0:
        value = got.item() if got.numel() == 1 else tuple(got.shape)
        raise AssertionError(f"{case}: got {value}, expected 0.0.\nHint: {zero_hint}")
    expect_differentiable(got, f"{case}: 0.0", zero_hint)
    try:
        got.backward()
    except RuntimeError as err:
        raise AssertionError(f"{case}: loss.backward() failed ({err}).") from err
    if x.grad is not None:
        expect_finite(x.grad, f"{case}: the gradient of the 0.0 loss (through a 0/0?)", zero_hint)


# ---------------------------------------------------------------- 9.3 BertEmbeddings.forward

EMB = dict(vocab_size=13, block_size=16, n_segments=2, n_embd=8)
HINT_EMB = "output = self.drop(self.ln(self.tok(idx) + self.pos(0..T-1) + self.seg(segments)))"
HINT_SEG_NONE = (
    "segments=None means all zeros (segment A): add self.seg(torch.zeros_like(idx)), "
    "the segment-A vector, to every position"
)


def _bert_embeddings(dropout: float = 0.0) -> BertEmbeddings:
    """Seeded weights, with a non-trivial LayerNorm (so that a missing one shows)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(93)
        m = BertEmbeddings(**EMB, eps=1e-12, dropout=dropout)
        m.ln.weight.copy_(1 + 0.3 * torch.randn(EMB["n_embd"]))
        m.ln.bias.copy_(0.2 * torch.randn(EMB["n_embd"]))
    return m.eval()


def _judge(m: BertEmbeddings) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """Hugging Face's BertEmbeddings with ``m``'s weights; torch's own ops without it."""
    try:
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import BertEmbeddings as HFEmbeddings
    except ImportError:  # pragma: no cover - the course installs transformers

        def plain(idx: torch.Tensor, segments: torch.Tensor | None) -> torch.Tensor:
            seg = torch.zeros_like(idx) if segments is None else segments
            T = idx.shape[1]
            x = F.embedding(idx, m.tok.weight) + m.pos.weight[:T] + F.embedding(seg, m.seg.weight)
            return F.layer_norm(x, (m.n_embd,), m.ln.weight, m.ln.bias, m.ln.eps).detach()

        return plain
    config = BertConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.n_embd,
        max_position_embeddings=m.block_size,
        type_vocab_size=m.seg.num_embeddings,
        layer_norm_eps=m.ln.eps,
        hidden_dropout_prob=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        hf = HFEmbeddings(config).eval()
    hf.load_state_dict(
        {
            "word_embeddings.weight": m.tok.weight,
            "position_embeddings.weight": m.pos.weight,
            "token_type_embeddings.weight": m.seg.weight,
            "LayerNorm.weight": m.ln.weight,
            "LayerNorm.bias": m.ln.bias,
        },
        strict=False,  # the position_ids / token_type_ids buffers are HF's own
    )

    def run(idx: torch.Tensor, segments: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return hf(input_ids=idx, token_type_ids=segments)

    return run


def _emb_suspects(m: BertEmbeddings, idx: torch.Tensor, segments: torch.Tensor | None):
    T = idx.shape[1]
    tok, pos, seg = m.tok.weight.detach(), m.pos.weight.detach(), m.seg.weight.detach()
    w, b, eps = m.ln.weight.detach(), m.ln.bias.detach(), m.ln.eps

    def ln(x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (m.n_embd,), w, b, eps)

    s = seg[torch.zeros_like(idx) if segments is None else segments]
    t, p = tok[idx], pos[:T]
    suspects: list[tuple[Callable[[], torch.Tensor], str]] = []
    if segments is None:
        suspects += [
            (lambda: ln(t + p), HINT_SEG_NONE),
            (lambda: ln(t + p + seg[1]), HINT_SEG_NONE),
        ]
    else:
        suspects += [
            (
                lambda: ln(t + p),
                "add the segment embeddings self.seg(segments): BERT tells sentence A from "
                "sentence B by them",
            ),
            (
                lambda: ln(t + p + seg[0]),
                "look the segment embeddings up by the segments argument, self.seg(segments), "
                "not always segment 0",
            ),
        ]
    suspects += [
        (
            lambda: t + p + s,
            "the LayerNorm is missing: BERT normalises the sum — LayerNorm after the sum, "
            "before dropout: self.drop(self.ln(tok + pos + seg))",
        ),
        (
            lambda: ln(t) + p + s,
            "the LayerNorm normalises the whole sum tok + pos + seg, not the token embeddings "
            "alone (add the position and segment embeddings before self.ln)",
        ),
        (
            lambda: ln(t + p) + s,
            "the LayerNorm normalises the whole sum tok + pos + seg: add the segment "
            "embeddings before self.ln, not after",
        ),
        (
            lambda: ln(t + pos[1 : T + 1] + s),
            "positions start at 0: use torch.arange(T), not 1..T",
        ),
        (
            lambda: ln(t + pos[idx] + s),
            "look the position embedding up by position t = 0..T-1 (torch.arange(T)), not by "
            "token id",
        ),
    ]
    return suspects


@checks("9.3")
def check_bert_embeddings_forward(impl: Callable) -> None:
    g = torch.Generator().manual_seed(39)
    module = _bert_embeddings()
    judge = _judge(module)
    desc = "BertEmbeddings(vocab_size=13, block_size=16, n_segments=2, n_embd=8)"
    for B, T, kind in [(2, 5, "random"), (3, 16, "pairs"), (1, 1, None), (2, 7, None)]:
        idx = torch.randint(EMB["vocab_size"], (B, T), generator=g)
        if kind == "random":
            segments = torch.randint(2, (B, T), generator=g)
        elif kind == "pairs":  # [CLS] A [SEP] | B [SEP]: 0 up to the first [SEP], then 1
            segments = (torch.arange(T) >= torch.tensor([6, 9, 12])[:, None]).long()
        else:
            segments = None
        case = f"{desc} on idx ({B}, {T})" + (
            ", segments=None" if segments is None else f", segments ({B}, {T})"
        )
        with torch.no_grad():
            if segments is None:
                got = call(case, impl, module, idx.clone())
            else:
                got = call(case, impl, module, idx.clone(), segments.clone())
        want = judge(idx, segments)
        expect_type(got, torch.Tensor, case)
        if tuple(got.shape) != (B, T, EMB["n_embd"]):
            raise AssertionError(
                f"{case}: the output should have shape {(B, T, EMB['n_embd'])}, got "
                f"{tuple(got.shape)}.\nHint: add the three embeddings (do not concatenate them)"
            )
        compare(case, got, want, _emb_suspects(module, idx, segments), HINT_EMB)

    # Dropout: off in eval mode; on, and last, in train mode.
    m = _bert_embeddings(dropout=0.5)
    judge = _judge(m)
    idx = torch.randint(EMB["vocab_size"], (4, 16), generator=g)
    segments = torch.randint(2, (4, 16), generator=g)
    clean = judge(idx, segments)
    case = f"{desc[:-1]}, dropout=0.5) in eval mode on idx (4, 16)"
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = call(case, impl, m, idx.clone(), segments.clone())
    expect_type(got, torch.Tensor, case)
    if not close(got, clean) and (got == 0).float().mean() > 0.2:
        raise AssertionError(
            f"{case}: {float((got == 0).float().mean()):.0%} of the output is zero.\nHint: "
            "dropout is on in eval mode: use self.drop (an nn.Dropout follows train()/eval()), "
            "not F.dropout(..., training=True)"
        )
    compare(case, got, clean, _emb_suspects(m, idx, segments), HINT_EMB)

    case = f"{desc[:-1]}, dropout=0.5) in train mode on idx (4, 16)"
    m.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = call(case, impl, m, idx.clone(), segments.clone())
    m.eval()
    expect_type(got, torch.Tensor, case)
    zeros = (got == 0).float().mean()
    if zeros == 0:
        if close(got, clean):
            hint = (
                "no output was dropped: apply self.drop to the output of self.ln (in train() "
                "mode it zeroes each value with probability p)"
            )
        else:
            hint = (
                "dropout goes last: LayerNorm after the sum, before dropout — "
                "self.drop(self.ln(x)); dropout before the LayerNorm leaves no zeros in "
                "the output"
            )
        raise AssertionError(f"{case}: no value of the output is zero.\nHint: {hint}")
    kept = got != 0
    if not (0.3 < zeros < 0.7) or not torch.allclose(
        got[kept], clean[kept] / 0.5, rtol=1e-4, atol=1e-5
    ):
        raise AssertionError(
            f"{case}: the output is not the normalised embeddings with dropout applied to "
            "them.\nHint: dropout goes last — LayerNorm after the sum, before dropout: "
            "self.drop(self.ln(x)); each value kept is scaled by 1 / (1 − p)"
        )

    # The errors the docstring promises.
    expect_value_error(
        f"{desc} on idx (1, 17)",
        lambda: impl(module, torch.zeros(1, 17, dtype=torch.long)),
        "there is no learned position vector past block_size: raise a ValueError naming T "
        "(17) and block_size (16)",
        mentions=(17, 16),
    )
    expect_value_error(
        f"{desc} on a 1-D idx (5,)",
        lambda: impl(module, torch.zeros(5, dtype=torch.long)),
        "idx must be 2-D (B, T): check idx.dim() == 2 and raise a ValueError otherwise",
    )
    expect_value_error(
        f"{desc} on idx (2, 6) with segments of shape (6,)",
        lambda: impl(module, torch.zeros(2, 6, dtype=torch.long), torch.zeros(6, dtype=torch.long)),
        "segments must have the shape of idx (one segment id per token): check "
        "segments.shape == idx.shape and raise a ValueError otherwise",
    )
