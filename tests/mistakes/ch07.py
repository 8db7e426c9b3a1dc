"""Plausible wrong answers to chapter 7's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch

from solutions import optim as ref


def _lr(step, *, max_lr, min_lr, warmup_steps, max_steps, warm=None, decay=None):
    if step < 0 or max_steps < warmup_steps or min_lr > max_lr:
        raise ValueError("bad schedule")
    if step < warmup_steps:
        return warm(step, max_lr, warmup_steps) if warm else max_lr * (step + 1) / warmup_steps
    if decay:
        return decay(step, max_lr, min_lr, warmup_steps, max_steps)
    return ref.cosine_lr(
        step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps, max_steps=max_steps
    )


def _cos_to_zero(step, hi, lo, w, n):
    if step >= n:
        return lo
    return hi * 0.5 * (1 + math.cos(math.pi * (step - w) / (n - w)))


def _cos_whole_run(step, hi, lo, w, n):
    if step >= n:
        return lo
    return lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * step / n))


def _cos_forever(step, hi, lo, w, n):
    r = (step - w) / (n - w) if n > w else 1.0
    return lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * r))


def _linear(step, hi, lo, w, n):
    return lo if step >= n else hi - (hi - lo) * (step - w) / (n - w)


def _clip_after(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    ref.clip_grad_norm_(ps, max_norm)
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps]))


def _clip_each(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps]))
    for p in ps:
        n = p.grad.norm()
        if n > max_norm:
            p.grad.mul_(max_norm / (n + 1e-6))
    return total


def _clip_always(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps]))
    for p in ps:
        p.grad.mul_(max_norm / (total + 1e-6))
    return total


def _clip_copy(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps]))
    if total > max_norm:
        for p in ps:
            p.grad = p.grad * 1.0  # a new tensor: the caller's gradient is untouched
            g = p.grad
            g = g * (max_norm / (total + 1e-6))  # noqa: F841 (the mistake: not in place)
    return total


def _clip_squared(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = sum((p.grad**2).sum() for p in ps)  # the square root is missing
    if total > max_norm:
        for p in ps:
            p.grad.mul_(max_norm / (total + 1e-6))
    return total


def _clip_inverted_ratio(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps]))
    if total > max_norm:
        for p in ps:
            p.grad.mul_(total / max_norm)  # upside down
    return total


def _clip_sum_of_norms(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = sum(p.grad.norm() for p in ps)
    if total > max_norm:
        for p in ps:
            p.grad.mul_(max_norm / (total + 1e-6))
    return total


def _clip_no_none(parameters, max_norm):
    ps = list(parameters)
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps]))
    return ref.clip_grad_norm_(ps, max_norm) if total is not None else total


@torch.no_grad()
def _adam_l2(params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    b1, b2 = betas
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        g = g + weight_decay * p  # L2 in the gradient: Adam, not AdamW
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        p.addcdiv_(m / (1 - b1**step), (v / (1 - b2**step)).sqrt() + eps, value=-lr)


@torch.no_grad()
def _adamw_no_bias_correction(
    params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
):
    b1, b2 = betas
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        p.mul_(1 - lr * weight_decay)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        p.addcdiv_(m, v.sqrt() + eps, value=-lr)


@torch.no_grad()
def _adamw_eps_inside(
    params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
):
    b1, b2 = betas
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        p.mul_(1 - lr * weight_decay)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        p.addcdiv_(m / (1 - b1**step), (v / (1 - b2**step) + eps).sqrt(), value=-lr)


@torch.no_grad()
def _adamw_decay_without_lr(
    params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
):
    for p in params:
        p.mul_(1 - weight_decay)  # forgot to multiply by lr
    ref.adamw_step(params, grads, ms, vs, step, lr=lr, betas=betas, eps=eps, weight_decay=0.0)


@torch.no_grad()
def _adamw_m_rebound(
    params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
):
    b1, b2 = betas
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        p.mul_(1 - lr * weight_decay)
        m = b1 * m + (1 - b1) * g  # a new tensor: the caller's m stays zero
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        p.addcdiv_(m / (1 - b1**step), (v / (1 - b2**step)).sqrt() + eps, value=-lr)


@torch.no_grad()
def _adamw_v_of_m(
    params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
):
    b1, b2 = betas
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        p.mul_(1 - lr * weight_decay)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(m, m, value=1 - b2)  # the square of m, not of g
        p.addcdiv_(m / (1 - b1**step), (v / (1 - b2**step)).sqrt() + eps, value=-lr)


@torch.no_grad()
def _adamw_no_decay(params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, **_):
    ref.adamw_step(params, grads, ms, vs, step, lr=lr, betas=betas, eps=eps, weight_decay=0.0)


@torch.no_grad()
def _adamw_ascent(
    params, grads, ms, vs, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
):
    b1, b2 = betas
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        p.mul_(1 - lr * weight_decay)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        p.addcdiv_(m / (1 - b1**step), (v / (1 - b2**step)).sqrt() + eps, value=lr)  # + not −


def _clip_per_parameter_norms(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    norms = torch.stack([p.grad.norm() for p in ps])
    ref.clip_grad_norm_(ps, max_norm)
    return norms  # one norm per parameter, not the global one


def _adamw_returns_params(params, grads, ms, vs, step, **hp):
    ref.adamw_step(params, grads, ms, vs, step, **hp)
    return params


@torch.no_grad()
def _adamw_decay_after(params, grads, ms, vs, step, *, lr, weight_decay=0.01, **hp):
    ref.adamw_step(params, grads, ms, vs, step, lr=lr, weight_decay=0.0, **hp)
    for p in params:
        p.mul_(1 - lr * weight_decay)  # after the Adam update, not before


def _adamw_rebinding(params, grads, ms, vs, step, **hp):
    params = [p.clone() for p in params]  # updates a copy: the caller sees nothing
    ref.adamw_step(params, grads, ms, vs, step, **hp)


MISTAKES = {
    "7.1": [
        (
            "warmup from zero",
            lambda s, **k: _lr(s, **k, warm=lambda s, hi, w: hi * s / w),
            "step 0 must already train",
        ),
        (
            "decays to zero",
            lambda s, **k: _lr(s, **k, decay=_cos_to_zero),
            "decay to min_lr, not to 0",
        ),
        (
            "warmup divided by warmup_steps + 1",
            lambda s, **k: _lr(s, **k, warm=lambda s, hi, w: hi * (s + 1) / (w + 1)),
            "divide by warmup_steps, so that step warmup_steps − 1 reaches max_lr",
        ),
        (
            "a whole cosine period",
            lambda s, **k: _lr(
                s,
                **k,
                decay=lambda s, hi, lo, w, n: (
                    lo
                    if s >= n
                    else lo + (hi - lo) * 0.5 * (1 + math.cos(2 * math.pi * (s - w) / (n - w)))
                ),
            ),
            "use half a cosine period",
        ),
        (
            "cosine over the whole run",
            lambda s, **k: _lr(s, **k, decay=_cos_whole_run),
            "starts after warmup",
        ),
        (
            "cosine continues after max_steps",
            lambda s, **k: _lr(s, **k, decay=_cos_forever),
            "stays at min_lr",
        ),
        ("linear decay", lambda s, **k: _lr(s, **k, decay=_linear), "not a straight line"),
        (
            "no validation",
            lambda s, **k: ref.cosine_lr(
                max(s, 0),
                **{
                    **k,
                    "min_lr": min(k["min_lr"], k["max_lr"]),
                    "max_steps": max(k["max_steps"], k["warmup_steps"]),
                },
            ),
            "min_lr > max_lr is a mistake in the configuration",
        ),
        (
            "returns a tensor",
            lambda s, **k: torch.tensor(ref.cosine_lr(s, **k)),
            "should be a float",
        ),
    ],
    "7.2": [
        ("returns the norm after clipping", _clip_after, "before* clipping"),
        ("clips each parameter separately", _clip_each, "clip the *global* norm"),
        ("always rescales", _clip_always, "never scale gradients up"),
        ("not in place", _clip_copy, "modify the gradients in place (p.grad.mul_"),
        ("squared norm", _clip_squared, "take the square root"),
        ("per-parameter norms", _clip_per_parameter_norms, "should return one number (a 0-dim"),
        (
            "scales by norm / max_norm",
            _clip_inverted_ratio,
            "scale every gradient by max_norm / (norm",
        ),
        ("sum of norms", _clip_sum_of_norms, "not the sum of the per-parameter norms"),
        ("crashes on a missing grad", _clip_no_none, "skip parameters whose .grad is None"),
    ],
    "7.3": [
        ("Adam with L2 instead of AdamW", _adam_l2, "Adam with L2"),
        ("no bias correction", _adamw_no_bias_correction, "bias-correct"),
        ("eps inside the square root", _adamw_eps_inside, "after the square root"),
        ("decay not scaled by lr", _adamw_decay_without_lr, "scaled by the learning rate"),
        ("rebinds instead of updating in place", _adamw_rebinding, "the parameters did not change"),
        ("rebinds m", _adamw_m_rebound, "the first moment m is wrong or not updated in place"),
        ("v from m", _adamw_v_of_m, "of the raw gradient, not of m"),
        ("no weight decay", _adamw_no_decay, "the weight decay is missing"),
        (
            "weight decay after the update",
            _adamw_decay_after,
            "apply the weight decay before the Adam",
        ),
        (
            "returns the parameters",
            _adamw_returns_params,
            "update the tensors in place and return None",
        ),
        ("gradient ascent", _adamw_ascent, "compare your update with the four steps"),
    ],
}
