"""Checks of chapter 7: cosine_lr, clip_grad_norm_, adamw_step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lmkit.checks import call, diagnose, expect_raises, expect_type, fail, near
from lmkit.grading import checks, reference

# ------------------------------------------------------------------------ 7.1 cosine_lr

SCHEDULES = [
    dict(max_lr=6e-4, min_lr=6e-5, warmup_steps=10, max_steps=100),
    dict(max_lr=1e-3, min_lr=0.0, warmup_steps=0, max_steps=50),
    dict(max_lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=4),
]


def _close(a: float, b: float) -> bool:
    """Closed-form learning rates in Python floats: equal to rounding, far tighter than the
    tensor policy (a schedule off by one step differs by about 1e-3 relative)."""
    return near(a, b, rtol=1e-9, atol=1e-15)


@checks("7.1")
def check_cosine_lr(impl: Callable) -> None:
    ref = reference("7.1")
    for kw in SCHEDULES:
        w, n, hi, lo = kw["warmup_steps"], kw["max_steps"], kw["max_lr"], kw["min_lr"]
        steps = sorted(
            {0, 1, w // 2, max(w - 1, 0), w, w + 1, (w + n) // 2, n - 1, n, n + 1, 2 * n + 7} - {-1}
        )
        for step in steps:
            got = impl(step, **kw)
            case = f"cosine_lr({step}, max_lr={hi}, min_lr={lo}, warmup_steps={w}, max_steps={n})"
            expect_type(got, (float, int), case)
            want = ref(step, **kw)
            if _close(float(got), want):
                continue
            r = (step - w) / (n - w) if n > w else 1.0
            hint = diagnose(
                float(got),
                want,
                [
                    (
                        lambda g, x: step < w and _close(g, hi * step / w),
                        "warmup is max_lr · (step + 1) / warmup_steps: step 0 must already train",
                    ),
                    (
                        lambda g, x: step < w and _close(g, hi * (step + 1) / (w + 1)),
                        "divide by warmup_steps, so that step warmup_steps − 1 reaches max_lr",
                    ),
                    (
                        lambda g, x: step > n and not _close(g, lo),
                        "after max_steps the rate stays at min_lr (the cosine must not come back up)",
                    ),
                    (
                        lambda g, x: (
                            step >= w
                            and step <= n
                            and _close(g, hi * 0.5 * (1 + math.cos(math.pi * r)))
                        ),
                        "decay to min_lr, not to 0: min_lr + (max_lr − min_lr) · (1 + cos(π r)) / 2",
                    ),
                    (
                        lambda g, x: (
                            step >= w
                            and step <= n
                            and n > 0
                            and _close(g, lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * step / n)))
                        ),
                        "the cosine starts after warmup: r = (step − warmup_steps) / "
                        "(max_steps − warmup_steps)",
                    ),
                    (
                        lambda g, x: (
                            step >= w
                            and step <= n
                            and _close(g, lo + (hi - lo) * 0.5 * (1 + math.cos(2 * math.pi * r)))
                        ),
                        "use half a cosine period, cos(π r), so the rate ends at min_lr",
                    ),
                    (
                        lambda g, x: step >= w and step <= n and _close(g, hi - (hi - lo) * r),
                        "the decay follows a half cosine, not a straight line",
                    ),
                ],
            )
            fail(case, got, want, hint)
    for bad in [dict(step=-1), dict(max_steps=5, warmup_steps=10), dict(min_lr=1.0, max_lr=0.1)]:
        kw = {**SCHEDULES[0], **bad}
        step = kw.pop("step", 0)
        expect_raises(
            f"cosine_lr({step}, **{kw})",
            lambda step=step, kw=kw: impl(step, **kw),
            ValueError,
            "a negative step, max_steps < warmup_steps or min_lr > max_lr is a mistake in the "
            "configuration: check them first",
        )


# ---------------------------------------------------------------- 7.2 clip_grad_norm_


def _params(seed: int, scale: float, with_none: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2, 2)] + ([(5,)] if with_none else [])
    params = []
    for i, shape in enumerate(shapes):
        p = torch.nn.Parameter(torch.randn(shape, generator=g))
        if not (with_none and i == len(shapes) - 1):
            p.grad = torch.randn(shape, generator=g) * scale
        params.append(p)
    return params


@checks("7.2")
def check_clip_grad_norm_(impl: Callable) -> None:
    cases = [
        ("gradients of global norm ≈ 26, max_norm=1.0", 0, 5.0, 1.0, False),
        ("gradients of global norm ≈ 0.5, max_norm=1.0 (no clipping)", 1, 0.1, 1.0, False),
        ("a parameter without .grad, max_norm=0.5", 2, 1.0, 0.5, True),
    ]
    for case, seed, scale, max_norm, with_none in cases:
        mine, theirs = _params(seed, scale, with_none), _params(seed, scale, with_none)
        before = [None if p.grad is None else p.grad.clone() for p in mine]
        got = call(
            f"clip_grad_norm_ ({case})",
            impl,
            mine,
            max_norm,
            hint=lambda err, with_none=with_none: (
                "skip parameters whose .grad is None (frozen or unused parameters have none)"
                if with_none and "NoneType" in str(err)
                else None
            ),
        )
        want = torch.nn.utils.clip_grad_norm_(theirs, max_norm)  # the real reference
        expect_type(got, torch.Tensor, f"clip_grad_norm_ ({case}) return value")
        if got.numel() != 1:
            raise AssertionError(
                f"clip_grad_norm_ ({case}) should return one number (a 0-dim tensor), "
                f"got shape {tuple(got.shape)}"
            )
        norms = [b.norm().item() for b in before if b is not None]
        total = math.sqrt(sum(n * n for n in norms))
        # Tighter than the policy: the judge is torch's clip_grad_norm_ on the same tensors.
        if not torch.allclose(got.float(), want, rtol=1e-5, atol=1e-7):
            hint = diagnose(
                got.item(),
                want.item(),
                [
                    (
                        lambda g, w: (
                            math.isclose(g, min(max_norm, w), rel_tol=1e-4) and w > max_norm
                        ),
                        "return the norm *before* clipping, not after",
                    ),
                    (
                        lambda g, w: math.isclose(g, sum(norms), rel_tol=1e-5),
                        "the global norm is sqrt(sum of squares of every gradient entry), not the "
                        "sum of the per-parameter norms",
                    ),
                    (
                        lambda g, w: math.isclose(g, total * total, rel_tol=1e-5),
                        "take the square root: the norm, not the squared norm",
                    ),
                ],
            )
            fail(f"clip_grad_norm_ ({case}) returned norm", got.item(), want.item(), hint)
        for p, q, b in zip(mine, theirs, before, strict=True):
            if q.grad is None:
                continue
            if torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7):
                continue
            if torch.equal(p.grad, b):
                hint = (
                    "modify the gradients in place (p.grad.mul_(…)); the caller's .grad "
                    "tensors must change"
                )
            elif total <= max_norm:
                hint = "only clip when the norm exceeds max_norm: never scale gradients up"
            elif (
                all(g.grad is None or g.grad.norm().item() <= max_norm * (1 + 1e-4) for g in mine)
                and len(norms) > 1
            ):
                hint = (
                    "clip the *global* norm: scale every gradient by the same factor "
                    "max_norm / (norm + 1e-6), not each parameter separately"
                )
            else:
                hint = "scale every gradient by max_norm / (norm + 1e-6)"
            raise AssertionError(
                f"clip_grad_norm_ ({case}): the gradients differ from "
                f"torch.nn.utils.clip_grad_norm_'s.\nHint: {hint}"
            )


# ---------------------------------------------------------------------- 7.3 adamw_step

ADAMW_CASES = [
    (
        "lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95)",
        dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
    ),
    ("lr=1e-3, weight_decay=0, default betas", dict(lr=1e-3, weight_decay=0.0)),
    ("lr=0.1, eps=1e-3, weight_decay=0.5", dict(lr=0.1, eps=1e-3, weight_decay=0.5)),
]


def _variant(
    p,
    grads,
    steps,
    *,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.01,
    l2=False,
    no_bias=False,
    eps_inside=False,
    decay_after=False,
    decay_no_lr=False,
    no_decay=False,
):
    """Where a plausible *wrong* AdamW would leave the parameter — to name the mistake."""
    b1, b2 = betas
    p = p.clone()
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for t, g in zip(range(1, steps + 1), grads, strict=False):
        if l2:
            g = g + weight_decay * p
        elif not decay_after and not no_decay:
            p = p * (1 - (1 if decay_no_lr else lr) * weight_decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = (m, v) if no_bias else (m / (1 - b1**t), v / (1 - b2**t))
        denom = (vh + eps).sqrt() if eps_inside else vh.sqrt() + eps
        p = p - lr * mh / denom
        if decay_after and not l2:
            p = p * (1 - lr * weight_decay)
    return p


#: (flag of _variant, hint): the AdamW mistakes 7.3 recognises by their result.
VARIANT_HINTS = [
    (
        "l2",
        "that is Adam with L2 regularisation (decay added to the gradient); "
        "AdamW decays the weights directly: p ← p·(1 − lr·weight_decay)",
    ),
    (
        "no_bias",
        "bias-correct the moments: m / (1 − β₁ᵗ) and v / (1 − β₂ᵗ), with t = step",
    ),
    ("eps_inside", "add eps after the square root: sqrt(v̂) + eps"),
    (
        "decay_after",
        "apply the weight decay before the Adam update, to the parameter as it was",
    ),
    (
        "decay_no_lr",
        "the decay factor is (1 − lr·weight_decay): it is scaled by the learning rate",
    ),
    (
        "no_decay",
        "the weight decay is missing: first p ← p·(1 − lr·weight_decay), then the Adam update",
    ),
]


@checks("7.3")
def check_adamw_step(impl: Callable) -> None:
    steps = 3
    for case, hp in ADAMW_CASES:
        gen = torch.Generator().manual_seed(7)
        shapes = [(5, 4), (4,)]
        start = [torch.randn(s, generator=gen) for s in shapes]
        grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(steps)]

        # The real reference: torch.optim.AdamW on the same gradients.
        theirs = [torch.nn.Parameter(x.clone()) for x in start]
        opt = torch.optim.AdamW(theirs, foreach=False, **hp)
        mine = [x.clone() for x in start]
        ms = [torch.zeros_like(x) for x in start]
        vs = [torch.zeros_like(x) for x in start]
        for t in range(1, steps + 1):
            for p, g in zip(theirs, grads[t - 1], strict=True):
                p.grad = g.clone()
            opt.step()
            result = impl(mine, [g.clone() for g in grads[t - 1]], ms, vs, t, **hp)
            if result is not None:
                raise AssertionError(
                    "adamw_step should update the tensors in place and return None, "
                    f"got a {type(result).__name__}"
                )
        # Tighter than the toolkit's policy: torch.optim.AdamW runs the same float32
        # operations, and eps-sized mistakes (eps inside the square root) differ by < 1e-4.
        for i, (p, q) in enumerate(zip(mine, theirs, strict=True)):
            state = opt.state[q]
            if (
                torch.allclose(p, q.detach(), rtol=1e-5, atol=1e-7)
                and torch.allclose(ms[i], state["exp_avg"], rtol=1e-5, atol=1e-8)
                and torch.allclose(vs[i], state["exp_avg_sq"], rtol=1e-5, atol=1e-9)
            ):
                continue
            hint = None
            if torch.equal(p, start[i]):
                hint = (
                    "the parameters did not change: update them in place (p.mul_, "
                    "p.addcdiv_ …), not by rebinding a local name"
                )
            for flag, text in VARIANT_HINTS:
                if hint is None and torch.allclose(
                    p,
                    _variant(start[i], [g[i] for g in grads], steps, **hp, **{flag: True}),
                    rtol=1e-5,
                    atol=1e-7,
                ):
                    hint = text
            if hint is None and not torch.allclose(ms[i], state["exp_avg"], rtol=1e-5, atol=1e-8):
                hint = (
                    "the first moment m is wrong or not updated in place: "
                    "m ← β₁·m + (1 − β₁)·g (m.mul_(β₁).add_(g, alpha=1 − β₁))"
                )
            if hint is None and not torch.allclose(
                vs[i], state["exp_avg_sq"], rtol=1e-5, atol=1e-9
            ):
                hint = (
                    "the second moment v is wrong or not updated in place: "
                    "v ← β₂·v + (1 − β₂)·g² (of the raw gradient, not of m)"
                )
            hint = hint or "compare your update with the four steps of the docstring"
            raise AssertionError(
                f"adamw_step ({case}): after {steps} steps parameter {i} (shape "
                f"{tuple(p.shape)}) differs from torch.optim.AdamW's.\nHint: {hint}"
            )
