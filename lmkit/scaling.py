"""Chapter 15 — scaling laws, measured: fit the power law that relates loss to model size.

Kaplan et al. (2020) found that the test loss of a language model falls as a power of its
number of (non-embedding) parameters N, when data and compute are not the limit:

    L(N) = a · N^(−α) + c,

a straight line on log–log axes once the *irreducible* loss c (the entropy of the text,
which no model removes) is taken off. :func:`fit_power_law` (exercise 15.1) fits ``a`` and
``α`` for a given ``c`` by least squares in log space; :func:`fit_power_law_with_offset`
also chooses ``c``, by searching it with your fit inside (tests compare both with
``scipy.optimize.curve_fit``). :func:`train_scaled_gpt` trains one model of the sweep with
chapter 7's recipe; ``scripts/scaling_laws.py`` trains them all and stores their losses.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from lmkit.grading import exercise

__all__ = [
    "fit_power_law",
    "fit_power_law_with_offset",
    "non_embedding_parameters",
    "power_law",
    "train_scaled_gpt",
]


def power_law(x: float, a: float, alpha: float, irreducible: float = 0.0) -> float:
    """``a · x^(−alpha) + irreducible``."""
    return a * x ** (-alpha) + irreducible


@exercise("15.1")
def fit_power_law(
    x: Sequence[float], y: Sequence[float], irreducible: float = 0.0
) -> tuple[float, float]:
    """Fit ``y ≈ a · x^(−alpha) + irreducible`` by least squares in log space.

    Taking logs of ``y − irreducible = a · x^(−alpha)`` gives a straight line,

        log(y − irreducible) = log a − alpha · log x,

    so ordinary least squares of ``log(y − irreducible)`` on ``log x`` (natural logs) gives
    the slope ``−alpha`` and the intercept ``log a``.

    Args:
        x: at least two positive numbers (e.g. parameter counts), not all equal.
        y: as many values (e.g. losses), each larger than ``irreducible``.
        irreducible: the loss no model removes, subtracted before the logs.

    Returns:
        ``(a, alpha)`` as Python floats: alpha > 0 when y falls as x grows.
        ``ValueError`` for fewer than two points, lengths that differ, an ``x ≤ 0``, all
        ``x`` equal, or a ``y ≤ irreducible`` (whose logarithm does not exist).
    """
    raise NotImplementedError(
        "Exercise 15.1: u = log x, v = log(y - irreducible); slope = cov(u, v) / var(u), "
        "intercept = mean(v) - slope * mean(u); return (exp(intercept), -slope)"
    )


def fit_power_law_with_offset(
    x: Sequence[float], y: Sequence[float], steps: int = 400
) -> tuple[float, float, float]:
    """Fit ``y ≈ a · x^(−alpha) + c`` with ``c`` unknown too: ``(a, alpha, c)``.

    For each ``c`` on a grid of ``steps`` values in ``[0, min(y))`` (finer near ``min y``,
    where the fit changes fastest), :func:`fit_power_law` gives the best ``a`` and ``alpha``;
    the ``c`` kept is the one whose curve has the smallest squared error in
    ``log y`` (every point weighs the same, whatever its scale). With three unknowns, it
    needs at least four points to say anything; with few points and little curvature, ``c``
    is poorly determined, which the chapter shows.
    """
    if len(x) < 4:
        raise ValueError(f"need at least 4 points to fit three parameters, got {len(x)}")
    top = min(y)
    if top <= 0:
        raise ValueError(f"the losses must be positive, got a minimum of {top}")
    best: tuple[float, float, float, float] | None = None
    for i in range(steps):
        c = top * (1 - (1 - i / steps) ** 3)  # 0 … just below min(y), denser at the top
        a, alpha = fit_power_law(x, y, c)
        err = sum(
            (math.log(power_law(xi, a, alpha, c)) - math.log(yi)) ** 2
            for xi, yi in zip(x, y, strict=True)
        )
        if best is None or err < best[0]:
            best = (err, a, alpha, c)
    assert best is not None
    return float(best[1]), float(best[2]), float(best[3])


# ------------------------------------------------------------------ the models of the sweep


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the token and position embeddings (the head is tied to the token
    embedding, so it is not counted either): the N of Kaplan et al.'s law."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embed."))


def train_scaled_gpt(
    n_layer: int, n_embd: int, steps: int, train: torch.Tensor, val: torch.Tensor
) -> dict:
    """Train one character-level GPT with chapter 7's ``cpu`` recipe (context 64, batches
    of 12, AdamW, 5 % warmup then cosine decay to a tenth, clipping at 1, no dropout), with
    ``n_layer`` blocks of width ``n_embd`` and 16-wide heads, for ``steps`` steps.

    Returns a dict: the shape, ``parameters``, ``non_embedding_parameters`` (N), ``tokens``
    (D), ``compute_flops`` (6·N·D), the best ``val_loss`` of the five evaluations (100
    batches each, a fixed seed), ``curve`` (``[step, val loss, compute so far]`` per
    evaluation) and ``cpu_seconds``."""
    from lmkit.train import Trainer, preset

    base = preset("cpu")
    model = dataclasses.replace(
        base.model, n_layer=n_layer, n_embd=n_embd, n_head=max(1, n_embd // 16)
    )
    config = dataclasses.replace(
        base,
        model=model,
        max_steps=steps,
        warmup_steps=max(1, steps // 20),
        eval_interval=max(1, steps // 5),
        eval_iters=100,
        out_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"lmkit-scaling-{n_layer}x{n_embd}"),
    )
    torch.manual_seed(config.seed)
    trainer = Trainer(config, train, val, progress=False)
    start = time.process_time()
    history = trainer.fit()
    n = non_embedding_parameters(trainer.model)
    per_step = config.tokens_per_step
    evals = list(zip(history["eval_step"], history["val_loss"], strict=True))
    return {
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": model.n_head,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "non_embedding_parameters": n,
        "steps": steps,
        "tokens": steps * per_step,
        "compute_flops": 6 * n * steps * per_step,
        "val_loss": round(min(v for _, v in evals), 4),
        "curve": [[s, round(v, 4), 6 * n * s * per_step] for s, v in evals],
        "cpu_seconds": round(time.process_time() - start, 1),
    }
