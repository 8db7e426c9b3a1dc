"""Plausible wrong answers to chapter 9's exercises (mask_tokens, mlm_loss,
BertEmbeddings.forward), and the hint each check must give.

They are built from plain torch and the reference pieces (never the lmkit stubs: chapter
5's ``self.ln`` would call Exercise 5.1), so each one is wrong in exactly one way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from solutions.bert import mask_tokens as ref_mask_tokens
from solutions.bert import mlm_loss as ref_mlm_loss
from solutions.block import layer_norm

# ------------------------------------------------------------------------ 9.1 mask_tokens


def _mask(
    ids,
    *,
    mask_id,
    vocab_size,
    special_mask=None,
    mask_prob=0.15,
    generator=None,
    all_mask=False,
    labels_from_inputs=False,
    label_everything=False,
    ignore_special=False,
    global_random_ids=False,
    in_place=False,
    random_everywhere=False,
    fixed_prob=None,
    inverted=False,
    one_random_id=False,
    random_given_rest=None,
    unpack_bt=False,
    zero_labels=False,
    label_only_masked=False,
    float_labels=False,
    fill=-100,
    flag_labels=False,
    independent_mask=False,
    randint_high=None,
    at_least_one=False,
    span2=False,
    no_random=False,
    no_keep=False,
    swap_thresholds=False,
):
    """The 80/10/10 corruption with one of the usual mistakes switched on."""
    if unpack_bt:
        B, T = ids.shape  # fails on 1-D and 3-D ids
    p = mask_prob if fixed_prob is None else fixed_prob
    u = torch.rand(ids.shape, generator=generator)
    selected = (u >= p) if inverted else (u < p)
    if span2:  # span masking: each selected position takes its right neighbour along
        selected = selected | torch.roll(selected, 1, dims=-1)
    if special_mask is not None and not ignore_special:
        selected &= ~special_mask
    if at_least_one:  # "every sequence must have a prediction": force one when none is drawn
        free = torch.ones_like(ids, dtype=torch.bool) if special_mask is None else ~special_mask
        first = torch.zeros_like(selected)
        first.view(-1, ids.shape[-1])[:, :].scatter_(
            -1, free.view(-1, ids.shape[-1]).float().argmax(-1, keepdim=True), True
        )
        empty = ~selected.any(-1, keepdim=True)
        selected = selected | (first & empty)
    inputs = ids if in_place else ids.clone()
    original = ids.clone()
    v = torch.rand(ids.shape, generator=generator)
    if one_random_id:
        random_ids = torch.randint(vocab_size, (1,), generator=generator).expand(ids.shape)
    elif global_random_ids:
        random_ids = torch.randint(vocab_size, ids.shape)
    elif randint_high is not None:
        random_ids = torch.randint(1, randint_high(vocab_size), ids.shape, generator=generator)
    else:
        random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    masked = selected if all_mask else selected & (v < (0.1 if swap_thresholds else 0.8))
    if independent_mask:  # a second, independent draw decides [MASK]: not within the selection
        masked = torch.rand(ids.shape, generator=generator) < 0.8 * p
    if no_random:
        swap = torch.zeros_like(selected)
    elif no_keep:
        swap = selected & ~masked
    elif swap_thresholds:
        swap = selected & (v >= 0.1) & (v < 0.9)
    elif random_given_rest is not None:  # a second draw for the positions not masked
        w = torch.rand(ids.shape, generator=generator)
        swap = selected & ~masked & (w < random_given_rest)
    elif random_everywhere:
        swap = ~masked & (v >= 0.8) & (v < 0.9)
    else:
        swap = selected & ~masked & (v < 0.9)
    inputs[masked] = mask_id
    inputs[swap] = random_ids[swap]
    fill = 0 if zero_labels else fill
    if float_labels:
        labels = torch.full(ids.shape, -100.0)  # float32
        labels[selected] = original[selected].float()
    elif flag_labels:  # 1 = "this position was selected", as in replaced-token detection
        labels = torch.where(selected, 1, -100)
    elif label_everything:
        labels = original.clone()
    elif label_only_masked:
        labels = torch.where(masked, original, torch.full_like(ids, fill))
    else:
        source = inputs if labels_from_inputs else original
        labels = torch.where(selected, source, torch.full_like(ids, fill))
    return inputs, labels


def _variant(**flags):
    def impl(ids, *, mask_id, vocab_size, special_mask=None, mask_prob=0.15, generator=None):
        return _mask(
            ids,
            mask_id=mask_id,
            vocab_size=vocab_size,
            special_mask=special_mask,
            mask_prob=mask_prob,
            generator=generator,
            **flags,
        )

    return impl


def _flat(ids, *, mask_id, vocab_size, special_mask=None, mask_prob=0.15, generator=None):
    special = None if special_mask is None else special_mask.flatten()
    return ref_mask_tokens(  # works on the flattened ids and forgets to reshape back
        ids.flatten(),
        mask_id=mask_id,
        vocab_size=vocab_size,
        special_mask=special,
        mask_prob=mask_prob,
        generator=generator,
    )


def _as_dict(ids, *, mask_id, vocab_size, special_mask=None, mask_prob=0.15, generator=None):
    inputs, labels = ref_mask_tokens(
        ids,
        mask_id=mask_id,
        vocab_size=vocab_size,
        special_mask=special_mask,
        mask_prob=mask_prob,
        generator=generator,
    )
    return {"input_ids": inputs, "labels": labels}  # as a Hugging Face collator does


def _vague_error(self, idx, segments=None):
    if idx.dim() == 2 and idx.shape[1] > self.block_size:
        raise ValueError("sequence too long")
    t, p, s = _parts(self, idx, segments)
    return self.drop(_ln(self, t + p + s))


def _reseeds(ids, *, mask_id, vocab_size, special_mask=None, mask_prob=0.15, generator=None):
    generator = torch.Generator().manual_seed(0)  # "for reproducibility"
    return ref_mask_tokens(
        ids,
        mask_id=mask_id,
        vocab_size=vocab_size,
        special_mask=special_mask,
        mask_prob=mask_prob,
        generator=generator,
    )


# --------------------------------------------------------------------------- 9.2 mlm_loss


def _shapes(logits, labels):
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError("expected (B, T, V) and (B, T)")


def _mean_over_all(logits, labels):
    _shapes(logits, labels)
    per = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # 0 where -100
    return per.mean()


def _sum(logits, labels):
    _shapes(logits, labels)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")


def _nan_when_empty(logits, labels):
    _shapes(logits, labels)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def _where_after_dividing(logits, labels):
    _shapes(logits, labels)
    sel = labels != -100
    logp = torch.log_softmax(logits, dim=-1)
    total = -(logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * sel).sum()
    count = sel.sum()
    # 0.0 when nothing is selected, but the 0/0 of the other branch is still in the graph
    return torch.where(count > 0, total / count, total * 0.0)


def _float_zero_when_empty(logits, labels):
    _shapes(logits, labels)
    if not (labels != -100).any():
        return torch.tensor(0.0)
    return ref_mlm_loss(logits, labels)


def _detached(logits, labels):
    return torch.tensor(ref_mlm_loss(logits, labels).item())


def _per_sequence(logits, labels):
    _shapes(logits, labels)
    per = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    counts = (labels != -100).sum(1)
    rows = counts > 0
    if not rows.any():
        return logits.sum() * 0.0
    return (per.sum(1)[rows] / counts[rows]).mean()


def _manual_gather(logits, labels):
    _shapes(logits, labels)
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # -100 is no index
    keep = labels != -100
    return -(picked * keep).sum() / keep.sum().clamp(min=1)


def _clamped_labels(logits, labels):
    _shapes(logits, labels)
    return F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten())


def _double_softmax(logits, labels):
    _shapes(logits, labels)
    probs = logits.softmax(-1)  # cross_entropy applies log-softmax again
    return F.cross_entropy(probs.flatten(0, 1), labels.flatten(), ignore_index=-100)


def _bits(logits, labels):
    return ref_mlm_loss(logits, labels) / math.log(2)


def _no_checks(logits, labels):
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1)[: logits.reshape(-1, logits.shape[-1]).shape[0]],
    )


# ---------------------------------------------------------------- 9.3 BertEmbeddings.forward


def _parts(self, idx, segments=None, *, none_is_one=False):
    if idx.dim() != 2:
        raise ValueError("idx should be (B, T)")
    T = idx.shape[1]
    if T > self.block_size:
        raise ValueError(f"T={T} > block_size={self.block_size}")
    if segments is None:
        segments = torch.full_like(idx, 1 if none_is_one else 0)
    elif segments.shape != idx.shape:
        raise ValueError("segments must have the shape of idx")
    return self.tok(idx), self.pos(torch.arange(T)), self.seg(segments)


def _ln(self, x):
    return layer_norm(x, self.ln.weight, self.ln.bias, self.ln.eps)


def _no_layer_norm(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return self.drop(t + p + s)


def _ln_on_tokens_only(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return self.drop(_ln(self, t) + p + s)


def _no_segments(self, idx, segments=None):
    t, p, _ = _parts(self, idx, segments)
    return self.drop(_ln(self, t + p))


def _none_is_one(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments, none_is_one=True)
    return self.drop(_ln(self, t + p + s))


def _none_adds_nothing(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return self.drop(_ln(self, t + p + (0 if segments is None else s)))


def _dropout_first(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return _ln(self, self.drop(t + p + s))


def _dropout_always_on(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return F.dropout(_ln(self, t + p + s), self.drop.p, training=True)


def _no_dropout(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return _ln(self, t + p + s)


def _no_length_check(self, idx, segments=None):
    T = idx.shape[1]
    segments = torch.zeros_like(idx) if segments is None else segments
    x = self.tok(idx) + self.pos(torch.arange(T)) + self.seg(segments)  # IndexError past 16
    return self.drop(_ln(self, x))


def _no_segment_shape_check(self, idx, segments=None):
    if idx.dim() != 2 or idx.shape[1] > self.block_size:
        raise ValueError(f"idx {tuple(idx.shape)}, block_size={self.block_size}")
    segments = torch.zeros_like(idx) if segments is None else segments  # (T,) broadcasts
    x = self.tok(idx) + self.pos(torch.arange(idx.shape[1])) + self.seg(segments)
    return self.drop(_ln(self, x))


def _always_segment_zero(self, idx, segments=None):
    t, p, _ = _parts(self, idx, segments)
    return self.drop(_ln(self, t + p + self.seg(torch.zeros_like(idx))))


def _segments_after_ln(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return self.drop(_ln(self, t + p) + s)


def _concatenates(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return self.drop(torch.cat((t, p.expand_as(t), s), dim=-1))


def _ln_without_affine(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    return self.drop(F.layer_norm(t + p + s, (self.n_embd,), eps=self.ln.eps))


def _dropout_unscaled(self, idx, segments=None):
    t, p, s = _parts(self, idx, segments)
    x = _ln(self, t + p + s)
    if self.training:  # zeroes values but forgets to scale the rest by 1 / (1 - p)
        x = x * (torch.rand_like(x) >= self.drop.p)
    return x


def _no_dim_check(self, idx, segments=None):
    T = idx.shape[-1]
    if T > self.block_size:
        raise ValueError(f"T={T} > block_size={self.block_size}")
    segments = torch.zeros_like(idx) if segments is None else segments
    if segments.shape != idx.shape:
        raise ValueError("segments must have the shape of idx")
    return self.drop(_ln(self, self.tok(idx) + self.pos(torch.arange(T)) + self.seg(segments)))


def _positions_by_token(self, idx, segments=None):
    t, _, s = _parts(self, idx, segments)
    return self.drop(_ln(self, t + self.pos(idx) + s))  # the token ids as positions


def _positions_from_one(self, idx, segments=None):
    t, _, s = _parts(self, idx, segments)
    T = idx.shape[1]
    return self.drop(_ln(self, t + self.pos(torch.arange(1, T + 1) % self.block_size) + s))


MISTAKES = {
    "9.1": [
        ("every selected position becomes [MASK]", _variant(all_mask=True), "replaced all of them"),
        (
            "labels from the corrupted inputs",
            _variant(labels_from_inputs=True),
            "not the corrupted",
        ),
        ("labels on every position", _variant(label_everything=True), "labelled every position"),
        (
            "non-selected positions labelled 0",
            _variant(zero_labels=True),
            "not 0 (0 is a real token id",
        ),
        ("special_mask ignored", _variant(ignore_special=True), "never select positions where"),
        (
            "random ids from the global RNG",
            _variant(global_random_ids=True),
            "draw every random number from the generator argument",
        ),
        ("generator replaced by a fresh seeded one", _reseeds, "generator is ignored"),
        ("modifies ids in place", _variant(in_place=True), "corrupt a copy, inputs = ids.clone()"),
        ("random ids drawn over all positions", _variant(random_everywhere=True), "all positions"),
        ("mask_prob ignored (always 0.15)", _variant(fixed_prob=0.15), "mask_prob argument"),
        (
            "selection inverted (u >= mask_prob)",
            _variant(inverted=True),
            "the selection is inverted",
        ),
        ("one random id for every swap", _variant(one_random_id=True), "one random id"),
        (
            "P(random | not masked) = 0.1",
            _variant(random_given_rest=0.1),
            "the probability is 0.5, not 0.1",
        ),
        ("labels only where [MASK]", _variant(label_only_masked=True), "not only those that"),
        ("assumes (B, T) ids", _variant(unpack_bt=True), "ids may have any shape"),
        ("returns flattened tensors", _flat, "never unpack B, T = ids.shape"),
        ("returns a dict", _as_dict, "should return a tuple (inputs, labels), got dict"),
        ("float labels", _variant(float_labels=True), "torch.full_like(ids, -100)"),
        ("-1 for positions not selected", _variant(fill=-1), "labels are -100 at non-selected"),
        (
            "labels say 'selected' (1)",
            _variant(flag_labels=True),
            "the original id at selected ones",
        ),
        (
            "[MASK] drawn apart from the selection",
            _variant(independent_mask=True),
            "must be the selected ones",
        ),
        (
            "random ids from 1 … vocab_size",
            _variant(randint_high=lambda v: v + 1),
            "the upper bound is exclusive",
        ),
        (
            "at least one position per sequence",
            _variant(at_least_one=True),
            "mask_prob=0 selects none",
        ),
        ("spans of two", _variant(span2=True), "select each non-special position independently"),
        (
            "labels only where [MASK], no random ids",
            _variant(label_only_masked=True, no_random=True),
            "not only those that became [MASK]",
        ),
        ("no random ids", _variant(no_random=True), "get a random id from 0 … vocab_size-1"),
        ("no position kept", _variant(no_keep=True), "keep their original id"),
        (
            "10% [MASK], 80% random",
            _variant(swap_thresholds=True),
            "split the selected positions independently",
        ),
    ],
    "9.2": [
        ("mean over all positions", _mean_over_all, "not count in the denominator"),
        ("sum instead of mean", _sum, "the mean over the selected positions, not the sum"),
        ("NaN when nothing is selected", _nan_when_empty, "0/0 = NaN of F.cross_entropy's mean"),
        (
            "torch.where after dividing by 0",
            _where_after_dividing,
            "the gradient of the 0.0 loss (through a 0/0?) contains",
        ),
        ("a constant 0.0 when nothing is selected", _float_zero_when_empty, "not differentiable"),
        ("returns a detached tensor", _detached, "not differentiable"),
        ("mean per sequence, then over sequences", _per_sequence, "not per sequence"),
        ("gathers at -100", _manual_gather, "which is no class"),
        ("-100 clamped to token 0", _clamped_labels, "do not score them"),
        ("no shape checks", _no_checks, "raise a ValueError naming the expected ones"),
        ("in bits", _bits, "natural logarithm (nats), not bits"),
        ("softmax before cross_entropy", _double_softmax, "you applied softmax twice"),
    ],
    "9.3": [
        ("no LayerNorm", _no_layer_norm, "the LayerNorm is missing"),
        ("LayerNorm on the token embeddings only", _ln_on_tokens_only, "not the token embeddings"),
        ("segments forgotten", _no_segments, "add the segment embeddings"),
        ("segments=None as segment 1", _none_is_one, "segments=None means all zeros"),
        ("segments=None adds nothing", _none_adds_nothing, "segments=None means all zeros"),
        ("dropout before the LayerNorm", _dropout_first, "dropout goes last"),
        ("dropout on in eval mode", _dropout_always_on, "dropout is on in eval mode"),
        ("no dropout", _no_dropout, "no output was dropped"),
        ("no ValueError past block_size", _no_length_check, "block_size (16)"),
        ("a ValueError naming no numbers", _vague_error, "name 17 and 16 in the message"),
        ("segments shape not checked", _no_segment_shape_check, "segments must have the shape"),
        ("positions from 1", _positions_from_one, "positions start at 0"),
        ("positions looked up by token id", _positions_by_token, "not by token id"),
        ("always segment 0", _always_segment_zero, "not always segment 0"),
        (
            "segments added after the LayerNorm",
            _segments_after_ln,
            "add the segment embeddings before self.ln",
        ),
        ("concatenates", _concatenates, "add the three embeddings (do not concatenate them)"),
        (
            "LayerNorm without its weight and bias",
            _ln_without_affine,
            "output = self.drop(self.ln(",
        ),
        (
            "dropout without rescaling",
            _dropout_unscaled,
            "each value kept is scaled by 1 / (1 − p)",
        ),
        ("no check that idx is 2-D", _no_dim_check, "idx must be 2-D (B, T)"),
    ],
}
