"""Plausible wrong answers to chapter 15's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import numpy as np
import torch

from solutions.scaling import fit_power_law as _ref


def _validated(x, y, c):
    if len(x) != len(y) or len(x) < 2 or min(x) <= 0 or min(y) <= c:
        raise ValueError(f"bad input: {len(x)} x, {len(y)} y, min x {min(x)}, c {c}")


def _line(u, v):
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    slope = sum((a - mu) * (b - mv) for a, b in zip(u, v, strict=True)) / sum(
        (a - mu) ** 2 for a in u
    )
    return slope, mv - slope * mu


def _slope_as_alpha(x, y, irreducible=0.0):
    # returns the slope itself: negative for a loss that falls
    _validated(x, y, irreducible)
    slope, intercept = _line([math.log(v) for v in x], [math.log(v - irreducible) for v in y])
    return math.exp(intercept), slope


def _log_a(x, y, irreducible=0.0):
    _validated(x, y, irreducible)
    slope, intercept = _line([math.log(v) for v in x], [math.log(v - irreducible) for v in y])
    return intercept, -slope


def _log10_then_exp(x, y, irreducible=0.0):
    # log10 for the fit, then e ** intercept to undo it
    _validated(x, y, irreducible)
    slope, intercept = _line([math.log10(v) for v in x], [math.log10(v - irreducible) for v in y])
    return math.exp(intercept), -slope


def _ignores_irreducible(x, y, irreducible=0.0):
    _validated(x, y, irreducible)
    slope, intercept = _line([math.log(v) for v in x], [math.log(v) for v in y])
    return math.exp(intercept), -slope


def _swapped_regression(x, y, irreducible=0.0):
    # np.polyfit(log y, log x): x regressed on y, then inverted
    _validated(x, y, irreducible)
    u = np.log(np.asarray(x, float))
    v = np.log(np.asarray(y, float) - irreducible)
    back, _ = np.polyfit(v, u, 1)  # u ≈ back · v + …
    slope = float(np.cov(u, v, bias=True)[0, 1] / np.var(v))
    assert math.isclose(back, slope, rel_tol=1e-9)
    return float(math.exp(v.mean() - slope * u.mean())), -slope


def _semilog(x, y, irreducible=0.0):
    _validated(x, y, irreducible)
    slope, intercept = _line(list(x), [math.log(v - irreducible) for v in y])
    return math.exp(intercept), -slope


def _tensors(x, y, irreducible=0.0):
    a, alpha = _ref(x, y, irreducible)
    return torch.tensor(a), torch.tensor(alpha)


def _nan_below_irreducible(x, y, irreducible=0.0):
    # numpy takes the log of a negative number with a warning and returns NaN
    if len(x) != len(y) or len(x) < 2 or min(x) <= 0:
        raise ValueError("bad x")
    with np.errstate(invalid="ignore", divide="ignore"):
        slope, intercept = np.polyfit(
            np.log(np.asarray(x, float)), np.log(np.asarray(y, float) - irreducible), 1
        )
    return float(math.exp(intercept)), float(-slope)


def _vague_error(x, y, irreducible=0.0):
    if len(x) != len(y) or len(x) < 2 or min(x) <= 0 or min(y) <= irreducible:
        raise ValueError("invalid input")
    return _ref(x, y, irreducible)


MISTAKES = {
    "15.1": [
        ("the slope returned as alpha", _slope_as_alpha, "alpha is minus the slope"),
        ("log a returned", _log_a, "return a itself, exp(intercept)"),
        ("log10, then exp", _log10_then_exp, "use one logarithm both ways"),
        ("irreducible loss ignored", _ignores_irreducible, "subtract the irreducible loss"),
        ("x regressed on y", _swapped_regression, "regress log y on log x"),
        ("log y against x (semi-log)", _semilog, "take the log of x too"),
        ("tensors, not floats", _tensors, "call .item() to turn a one-element tensor"),
        ("NaN instead of an error", _nan_below_irreducible, "validate first"),
        ("an error that names nothing", _vague_error, "validate first"),
    ],
}


# ------------------------------------------------------------------ 15.2 the logit lens


def _lens_head_only(model, idx):
    with torch.no_grad():
        x = model.embed(idx)
        read = [model.head(x)]
        for block in model.blocks:
            x = block(x)
            read.append(model.head(x))
    return torch.stack(read)


def _lens_normed_stream(model, idx):
    # normalises the stream itself, so the next block sees a normed input
    with torch.no_grad():
        x = model.norm(model.embed(idx))
        read = [model.head(x)]
        for block in model.blocks:
            x = model.norm(block(x))
            read.append(model.head(x))
    return torch.stack(read)


def _lens_double_residual(model, idx):
    with torch.no_grad():
        x = model.embed(idx)
        read = [model.head(model.norm(x))]
        for block in model.blocks:
            x = x + block(x)
            read.append(model.head(model.norm(x)))
    return torch.stack(read)


def _lens_blocks_only(model, idx):
    # forgets the embeddings' readout: n_layer entries
    with torch.no_grad():
        x, read = model.embed(idx), []
        for block in model.blocks:
            x = block(x)
            read.append(model.head(model.norm(x)))
    return torch.stack(read)


def _lens_probabilities(model, idx):
    from solutions.interpret import logit_lens

    return logit_lens(model, idx).softmax(-1)


def _lens_reversed(model, idx):
    from solutions.interpret import logit_lens

    return logit_lens(model, idx).flip(0)


def _lens_with_gradients(model, idx):
    # the reference without its torch.no_grad()
    from solutions.interpret import logit_lens

    return logit_lens.__wrapped__(model, idx)


MISTAKES["15.2"] = [
    ("head without the final norm", _lens_head_only, "read each layer through model.norm"),
    ("the stream normed in place", _lens_normed_stream, "the readout must not change the stream"),
    ("x + block(x)", _lens_double_residual, "x = block(x), not"),
    ("no embeddings readout", _lens_blocks_only, "n_layer + 1 readouts"),
    ("probabilities", _lens_probabilities, "return logits, not probabilities"),
    ("reversed order", _lens_reversed, "keep that order"),
    ("with gradients", _lens_with_gradients, "without gradients"),
]
