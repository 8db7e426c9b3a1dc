"""Plausible wrong answers to chapter 8's exercise, and the hint its check must give."""

from __future__ import annotations

import torch

from solutions.sampling import sample_next_token as ref


def _validate(temperature, top_k, top_p):
    if (
        temperature < 0
        or (top_k is not None and top_k < 1)
        or (top_p is not None and not 0 < top_p <= 1)
    ):
        raise ValueError("bad arguments")


def _multiply(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(-1)
    # logits · temperature instead of logits / temperature
    return ref(logits * temperature**2, temperature, top_k, top_p, generator)


def _topk_keeps_ties(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    if top_k is not None and top_p is None and temperature > 0:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
    return ref(logits, temperature, top_k, top_p, generator)


def _top_p_drops_crossing(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    if top_p is None or top_k is not None or temperature == 0:
        return ref(logits, temperature, top_k, top_p, generator)
    probs = torch.softmax(logits / temperature, -1)
    sorted_p, order = torch.sort(probs, descending=True, stable=True)
    keep = sorted_p.cumsum(-1) <= top_p
    keep[..., 0] = True
    mask = torch.zeros_like(keep).scatter(-1, order, keep)
    probs = probs.masked_fill(~mask, 0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _keeps_sample_dim(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return ref(logits, temperature, top_k, top_p, generator)[:, None]


def _greedy_via_sampling(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    t = max(temperature, 1e-2)  # "temperature 0 ≈ very small": ties become random
    return ref(logits, t, top_k, top_p, generator)


def _batch_topk(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    if top_k is not None and top_p is None and temperature > 0:
        flat = logits.flatten()
        kth = torch.sort(flat, descending=True, stable=True).values[top_k * logits.shape[0] - 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
        logits = logits.masked_fill(torch.isinf(logits).all(-1, keepdim=True), 0.0)
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
    return ref(logits, temperature, top_k, top_p, generator)


def _sigmoid(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.sigmoid(logits / temperature)  # sigmoid where softmax is meant
    if top_k is not None:
        kth = torch.sort(logits, dim=-1, descending=True, stable=True).indices[..., top_k:]
        probs = probs.scatter(-1, kth, 0.0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _temperature_capped(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    # "temperature goes from 0 to 1", as in some APIs: 2.0 is silently taken as 1.0
    return ref(logits, min(temperature, 1.0), top_k, top_p, generator)


def _top_p_below_one(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if top_p is not None and not 0 < top_p < 1:  # < 1, where the docstring says ≤ 1
        raise ValueError(f"top_p must be in (0, 1), got {top_p}")
    return ref(logits, temperature, top_k, top_p, generator)


def _top_p_on_all_tokens(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    _validate(temperature, top_k, top_p)
    if top_k is None or top_p is None or temperature == 0:
        return ref(logits, temperature, top_k, top_p, generator)
    # both filters on the full distribution: top_p does not see the renormalised survivors
    probs = torch.softmax(logits / temperature, -1)
    sorted_p, order = torch.sort(probs, descending=True, stable=True)
    keep = (sorted_p.cumsum(-1) - sorted_p) < top_p
    keep[..., top_k:] = False
    mask = torch.zeros_like(keep).scatter(-1, order, keep)
    probs = probs.masked_fill(~mask, 0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _as_list(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return ref(logits, temperature, top_k, top_p, generator).tolist()


def _no_validation(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    try:
        return ref(logits, temperature, top_k, top_p, generator)
    except ValueError:
        return logits.argmax(-1)


MISTAKES = {
    "8.1": [
        ("multiplies by the temperature", _multiply, "divide the logits"),
        ("top_k keeps every tie", _topk_keeps_ties, "top_k keeps exactly k tokens"),
        (
            "top_p drops the crossing token",
            _top_p_drops_crossing,
            "*including* the token that crosses it",
        ),
        ("returns (B, 1)", _keeps_sample_dim, "squeeze the sample dimension"),
        ("greedy by a tiny temperature", _greedy_via_sampling, "temperature=0 should be greedy"),
        ("top_k over the whole batch", _batch_topk, "filter each row on its own (dim=-1)"),
        ("no validation", _no_validation, "validate the arguments first: temperature ≥ 0"),
        ("returns a list", _as_list, "should return a tensor, got list"),
        ("sigmoid instead of softmax", _sigmoid, "sample from softmax(logits)"),
        ("temperature capped at 1", _temperature_capped, "2.0 makes the distribution flatter"),
        ("top_p = 1.0 refused", _top_p_below_one, "top_p=1.0 is allowed (0 < top_p ≤ 1)"),
        (
            "top_p on the full distribution",
            _top_p_on_all_tokens,
            "renormalised probabilities of the k",
        ),
    ],
}
