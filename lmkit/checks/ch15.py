"""Checks of chapter 15: fit_power_law (15.1), logit_lens (15.2).

Judges: ``numpy.polyfit`` of degree 1 on ``(log x, log(y − irreducible))`` in float64, whose
slope is ``−alpha`` and whose intercept is ``log a``; on noise-free data the answer must also
be the law the data were made from (15.1). The residual stream captured by forward hooks on
the blocks of a small random ``Llama``, read out through its final norm and head, and the
model's own logits for the last entry (15.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from lmkit.checks import (
    call,
    compare,
    diagnose,
    expect_tensor,
    expect_type,
    expect_value_error,
    fmt,
    near,
)
from lmkit.grading import checks, references_for

HINT_SIGN = (
    "alpha is minus the slope: the fitted line is log(y - c) = log a - alpha * log x, so a "
    "loss that falls with x has a negative slope and a positive alpha"
)
HINT_LOG_A = "return a itself, exp(intercept), not the intercept log a"
HINT_BASE = (
    "use one logarithm both ways: with math.log (natural) the intercept is ln a and "
    "a = exp(intercept); with log10, a = 10 ** intercept"
)
HINT_IRREDUCIBLE = (
    "subtract the irreducible loss before the logarithm: fit log(y - irreducible), not log y"
)
HINT_SWAPPED = (
    "regress log y on log x (y is what is predicted): the slope is cov(u, v) / var(u) with "
    "u = log x, not cov / var(v)"
)
HINT_SEMILOG = (
    "take the log of x too: a power law is a straight line on log-log axes; log y against "
    "x itself is the fit of an exponential"
)
HINT_BAD_INPUT = (
    "validate first: a ValueError naming the offending value when y <= irreducible (its log "
    "does not exist), x <= 0, fewer than 2 points, or lengths that differ"
)


def _judge(x, y, c):
    slope, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float) - c), 1)
    return math.exp(intercept), -slope


def _suspects(x, y, c):
    u, v = np.log(np.asarray(x, float)), np.log(np.asarray(y, float) - c)
    slope, intercept = np.polyfit(u, v, 1)
    raw_slope, raw_intercept = np.polyfit(u, np.log(np.asarray(y, float)), 1)
    swapped = np.cov(u, v, bias=True)[0, 1] / np.var(v)
    ten_slope, ten_intercept = np.polyfit(
        np.log10(np.asarray(x, float)), np.log10(np.asarray(y, float) - c), 1
    )
    semi_slope, semi_intercept = np.polyfit(np.asarray(x, float), v, 1)
    return [
        ((math.exp(intercept), slope), HINT_SIGN),
        ((intercept, -slope), HINT_LOG_A),
        ((math.exp(ten_intercept), -ten_slope), HINT_BASE),
        ((math.exp(raw_intercept), -raw_slope), HINT_IRREDUCIBLE),
        ((math.exp(v.mean() - swapped * u.mean()), -swapped), HINT_SWAPPED),
        ((math.exp(semi_intercept), -semi_slope), HINT_SEMILOG),
    ]


def _cases():
    g = np.random.default_rng(15)
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    noisy = 40.0 * n**-0.2 + 1.1
    noisy = noisy * np.exp(g.normal(0, 0.01, n.shape))
    return [
        (
            "fit_power_law(x = 1e3 … 1e6, y = 5 · x^-0.3 exactly)",
            [1e3, 1e4, 1e5, 1e6],
            [5.0 * v**-0.3 for v in (1e3, 1e4, 1e5, 1e6)],
            0.0,
            (5.0, 0.3),
        ),
        (
            "fit_power_law(6 noisy losses of models with 1e4 … 3e6 parameters, irreducible=1.1)",
            n.tolist(),
            noisy.tolist(),
            1.1,
            None,
        ),
        (
            "fit_power_law(the same 6 noisy losses, irreducible=0)",
            n.tolist(),
            noisy.tolist(),
            0.0,
            None,
        ),
        (
            "fit_power_law(x = [2, 8], y = [3.5, 2.0], irreducible=1.5): two points",
            [2.0, 8.0],
            [3.5, 2.0],
            1.5,
            (4.0, 1.0),
        ),
    ]


@checks("15.1")
def check_fit_power_law(impl: Callable) -> None:
    for desc, x, y, c, exact in _cases():
        got = call(desc, impl, list(x), list(y), c)
        expect_type(got, tuple, desc)
        if len(got) != 2:
            raise AssertionError(f"{desc} should return 2 numbers (a, alpha), got {len(got)}")
        a, alpha = got
        expect_type(a, float, f"{desc}: a")
        expect_type(alpha, float, f"{desc}: alpha")
        want = exact or _judge(x, y, c)
        if near(a, want[0]) and near(alpha, want[1]):
            continue
        tests = [
            (lambda g, w, s=s: near(g[0], s[0]) and near(g[1], s[1]), h)
            for s, h in _suspects(x, y, c)
        ]
        hint = diagnose((a, alpha), want, tests)
        raise AssertionError(
            f"{desc}: got (a, alpha) = ({fmt(a)}, {fmt(alpha)}); expected "
            f"({fmt(want[0])}, {fmt(want[1])})." + (f"\nHint: {hint}" if hint else "")
        )
    for desc, x, y, c, mentions in [
        (
            "fit_power_law([1e3, 1e4], [2.0, 1.0], irreducible=1.5): a loss below the irreducible",
            [1e3, 1e4],
            [2.0, 1.0],
            1.5,
            [1.5],
        ),
        ("fit_power_law([0, 10], [3, 2])", [0.0, 10.0], [3.0, 2.0], 0.0, [0]),
        ("fit_power_law([10], [3])", [10.0], [3.0], 0.0, [1]),
        ("fit_power_law([1, 10, 100], [3, 2])", [1.0, 10.0, 100.0], [3.0, 2.0], 0.0, [3, 2]),
    ]:
        expect_value_error(desc, lambda x=x, y=y, c=c: impl(x, y, c), HINT_BAD_INPUT, mentions)


# ------------------------------------------------------------------ 15.2 the logit lens

HINT_LENS_SHAPE = (
    "n_layer + 1 readouts: one of the embeddings (before any block) and one after each "
    "block, stacked on a new first dimension"
)
HINT_LENS_NORM = (
    "read each layer through model.norm and then model.head, as the model reads its last "
    "layer: the head alone sees an unnormalised stream"
)
HINT_LENS_STREAM = (
    "the readout must not change the stream: norm a copy for the head, and pass the "
    "un-normed x on to the next block"
)
HINT_LENS_RESIDUAL = (
    "a block returns the stream with its update already added: x = block(x), not x + block(x)"
)
HINT_LENS_PROBS = "return logits, not probabilities: no softmax"
HINT_LENS_ORDER = "entry 0 is the embeddings and entry n_layer the last block: keep that order"
HINT_LENS_GRAD = "compute the readouts without gradients (torch.no_grad()): they are for reading"


def _lens_model():
    from lmkit.llama import Llama, LlamaConfig

    config = LlamaConfig(
        vocab_size=53, n_layer=3, d_model=32, n_head=4, n_kv_head=2, d_ff=64, block_size=16
    )
    torch.manual_seed(15)
    model = Llama(config).eval()
    with torch.no_grad():  # gains that are not all 1, so that a missing norm shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


def _streams(model, idx):
    """The residual stream after the embedding and after each block, from forward hooks."""
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o)) for b in model.blocks]
    try:
        with torch.no_grad():
            first = model.embed(idx)
            model(idx)
    finally:
        for h in hooks:
            h.remove()
    return [first, *seen]


def _lens_suspects(model, idx, streams):
    def read(xs, norm=True):
        return torch.stack([model.head(model.norm(x) if norm else x) for x in xs])

    def cumulative():
        x, out = model.embed(idx), []
        x = model.norm(x)
        out.append(model.head(x))
        for block in model.blocks:
            x = model.norm(block(x))
            out.append(model.head(x))
        return torch.stack(out)

    def doubled():
        x, out = model.embed(idx), []
        out.append(model.head(model.norm(x)))
        for block in model.blocks:
            x = x + block(x)
            out.append(model.head(model.norm(x)))
        return torch.stack(out)

    with torch.no_grad():
        right = read(streams)
        return [
            (read(streams, norm=False), HINT_LENS_NORM),
            (cumulative(), HINT_LENS_STREAM),
            (doubled(), HINT_LENS_RESIDUAL),
            (right.softmax(-1), HINT_LENS_PROBS),
            (right.flip(0), HINT_LENS_ORDER),
        ]


@checks("15.2")
def check_logit_lens(impl: Callable) -> None:
    # The test model's RMSNorm, SwiGLU and attention are chapter 11's exercises: run their
    # references, so that only the lens is judged.
    with references_for(["11"]):
        _check_logit_lens(impl)


def _check_logit_lens(impl: Callable) -> None:
    model = _lens_model()
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(53, (2, 9), generator=g)
    desc = "logit_lens(a random 3-block Llama, idx (2, 9))"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = call(desc, impl, model, idx.clone())
    L, (B, T), V = model.config.n_layer, idx.shape, model.config.vocab_size
    if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[0] != L + 1:
        raise AssertionError(
            f"{desc} should have shape {(L + 1, B, T, V)}, got {tuple(got.shape)}.\nHint: "
            + HINT_LENS_SHAPE
        )
    expect_tensor(got, (L + 1, B, T, V), desc)
    streams = _streams(model, idx)
    with torch.no_grad():
        want = torch.stack([model.head(model.norm(x)) for x in streams])
        last = model(idx)[0]
    compare(desc, got, want, _lens_suspects(model, idx, streams))
    compare(f"{desc}: the last entry against model(idx)[0]", got[-1], last)
    if got.requires_grad:
        raise AssertionError(f"{desc} is right but carries gradients.\nHint: {HINT_LENS_GRAD}")
    for name, value in model.state_dict().items():
        if not torch.equal(value, before[name]):
            raise AssertionError(f"{desc} changed the model's {name}: a lens only reads")
