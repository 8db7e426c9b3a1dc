"""The toolkit for writing checks; the checks themselves are ``chNN.py``, one per chapter.

A check (``@checks("N.M")`` from :mod:`lmkit.grading`) takes the implementation to test and
raises ``AssertionError`` with a message that names the case, what was expected, and a
**hint** naming the likely mistake. It is deterministic (fixed inputs, seeded randomness).
Every hint must be reached by a recorded mistake in ``tests/mistakes/chNN.py``
(``make hint-coverage`` lists those that are not). A check module imports this toolkit and
the ``lmkit`` module it checks, never another chapter's check module. Chapter 6
(``ch06.py``) is the model of a small check.

The toolkit, one line each:

- :func:`call` — run the learner's code; a crash becomes an ``AssertionError`` naming the case.
- :func:`expect_raises` — the code must raise this error (and name these numbers in it).
- :func:`expect_value_error` — :func:`expect_raises` for the common ``ValueError``.
- :func:`expect_type` — "what should be a T, got U" (a bool is not an int; tensors → ``.item()``).
- :func:`expect_tensor` — a tensor of this shape (and dtype).
- :func:`expect_finite` — no NaN or inf, or the hint (overflowing softmax, 0/0, …).
- :func:`expect_unchanged` — the input the learner was given was not modified in place.
- :func:`expect_differentiable` — a right value that autograd can still differentiate.
- :func:`close` / :func:`near` — the one tolerance policy below, for tensors / numbers.
- :func:`compare` — tensors equal within tolerance, else the hint of the first suspect matched.
- :func:`diagnose` — the hint of the first suspect predicate that holds (scalar answers).
- :func:`fail` — raise the message a learner sees: the case, both values, the hint.
- :func:`fmt` — a number as the messages print it (thousands separators, 6 digits).
- :func:`binomial_tol` — how far a sampled frequency may stray: six standard deviations.
- :func:`check_mean_cross_entropy` — the scaffold of a mean cross-entropy check (6.1, 9.2).

**The tolerance policy**, in one place: values are compared in float64 (both sides are
cast), and ``got`` matches ``want`` when ``|got − want| ≤ ATOL + RTOL · |want|`` with
``RTOL = 1e-4`` and ``ATOL = 1e-5``. That is loose enough for float32 rounding (about 1e-7
relative per operation, summed over a few thousand terms) and tight enough to tell every
recorded mistake from the answer. Suspects are matched with the same tolerance. A check may
pass a larger ``atol`` only with a comment saying why (inputs of size 1e4, a long chain of
float32 products), or compare tighter where its judge runs the same float32 operations and
a mistake is smaller than the policy (AdamW's eps, in 7.3; the loss scaffold below), again
saying why. References are computed in float64 where the judge allows it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

RTOL = 1e-4
ATOL = 1e-5

__all__ = [
    "ATOL",
    "RTOL",
    "binomial_tol",
    "call",
    "check_mean_cross_entropy",
    "close",
    "compare",
    "diagnose",
    "expect_differentiable",
    "expect_finite",
    "expect_raises",
    "expect_tensor",
    "expect_type",
    "expect_unchanged",
    "expect_value_error",
    "fail",
    "fmt",
    "near",
]

Hint = str | Callable[[BaseException], str | None] | None


def _hint(text: str | None) -> str:
    return f"\nHint: {text}" if text else ""


# ------------------------------------------------------------------ calling the learner


def call(case: str, fn: Callable, *args: Any, hint: Hint = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a crash becomes an ``AssertionError`` that names the case.

    ``hint`` is added to that message: a string, or a function of the exception that
    returns one (or None). ``NotImplementedError`` passes through: ``check`` turns it into
    "not implemented yet" (of this exercise or of one it uses).
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as err:
        text = hint(err) if callable(hint) else hint
        raise AssertionError(
            f"{case}: your code raised {type(err).__name__}: {err}{_hint(text)}"
        ) from err


def expect_raises(
    case: str,
    fn: Callable[[], Any],
    errors: type[BaseException] | tuple[type[BaseException], ...] = ValueError,
    hint: str | None = None,
    mentions: Sequence[object] = (),
) -> None:
    """Fail unless ``fn()`` raises one of ``errors`` whose message names every ``mentions``.

    A clear error, not a wrong answer or a crash elsewhere; a stub's ``NotImplementedError``
    passes through.
    """
    kinds = errors if isinstance(errors, tuple) else (errors,)
    names = " or ".join(e.__name__ for e in kinds)
    try:
        fn()
    except NotImplementedError:
        raise
    except kinds as err:
        missing = [str(m) for m in mentions if str(m) not in str(err)]
        if missing:
            raise AssertionError(
                f"{case} raised {type(err).__name__}({str(err)!r}); name "
                f"{' and '.join(str(m) for m in mentions)} in the message{_hint(hint)}"
            ) from None
        return
    except Exception as err:  # noqa: BLE001 - any other error is the wrong kind
        raise AssertionError(
            f"{case} raised {type(err).__name__} ({err}); it should raise {names}{_hint(hint)}"
        ) from None
    raise AssertionError(f"{case} returned a result; it should raise {names}{_hint(hint)}")


def expect_value_error(
    case: str, fn: Callable[[], Any], hint: str | None = None, mentions: Sequence[object] = ()
) -> None:
    """:func:`expect_raises` with ``ValueError``, the error the docstrings promise most."""
    expect_raises(case, fn, ValueError, hint, mentions)


# ---------------------------------------------------------------------- what came back


def expect_type(value: Any, types: type | tuple[type, ...], what: str) -> None:
    """Fail with 'what should be a T, got U' (bool is not accepted as an int)."""
    kinds = types if isinstance(types, tuple) else (types,)
    names = " or ".join(t.__name__ for t in kinds)
    if isinstance(value, bool) and bool not in kinds:
        raise AssertionError(f"{what} should be a {names}, got a bool ({value!r})")
    if not isinstance(value, types):
        extra = ""
        if hasattr(value, "item") and hasattr(value, "numel"):
            extra = " — call .item() to turn a one-element tensor into a number"
        elif isinstance(value, float) and int in kinds:
            extra = " — counts are whole numbers: use integer arithmetic (// not /) or int()"
        raise AssertionError(
            f"{what} should be a {names}, got {type(value).__name__} ({value!r}){extra}"
        )


def expect_tensor(
    got: Any, shape: tuple[int, ...], what: str, dtype: torch.dtype | None = None
) -> None:
    """Fail unless ``got`` is a tensor of this shape (and dtype)."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what} should be a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(shape):
        raise AssertionError(f"{what} should have shape {tuple(shape)}, got {tuple(got.shape)}")
    if dtype is not None and got.dtype != dtype:
        raise AssertionError(f"{what} should have dtype {dtype}, got {got.dtype}")


def expect_finite(got: torch.Tensor, what: str, hint: str | None = None) -> None:
    """Fail if ``got`` holds a NaN or an infinity."""
    bad = ~torch.isfinite(got.detach())
    if bad.any():
        raise AssertionError(
            f"{what} contains {int(bad.sum())} NaN or infinite value(s){_hint(hint)}"
        )


def expect_unchanged(given: torch.Tensor, original: torch.Tensor, what: str, hint: str) -> None:
    """Fail if the tensor passed to the learner (``given``) no longer equals ``original``."""
    if not torch.equal(given, original):
        raise AssertionError(f"{what} was modified in place.{_hint(hint)}")


def expect_differentiable(got: torch.Tensor, what: str, hint: str) -> None:
    """Fail if a result that should carry a gradient does not (``.item()``, numpy, detach)."""
    if not got.requires_grad:
        raise AssertionError(f"{what} is right but not differentiable.{_hint(hint)}")


# ------------------------------------------------------------------------ comparisons


def close(got: Any, want: torch.Tensor, atol: float = ATOL, equal_nan: bool = False) -> bool:
    """``got`` is a tensor of ``want``'s shape, equal within the tolerance policy (float64);
    NaN matches only NaN, and only with ``equal_nan``."""
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return False
    g, w = got.detach().double(), want.detach().double()
    return bool(torch.allclose(g, w, atol=atol, rtol=RTOL, equal_nan=equal_nan))


def near(got: float, want: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Two numbers equal within the tolerance policy (a scalar :func:`close`)."""
    return math.isclose(got, want, rel_tol=rtol, abs_tol=atol)


Suspects = Iterable[tuple[Callable[[], torch.Tensor] | torch.Tensor, str]]


def compare(
    case: str,
    got: torch.Tensor,
    want: torch.Tensor,
    suspects: Suspects = (),
    default_hint: str | None = None,
    atol: float = ATOL,
) -> None:
    """Fail unless ``got ≈ want``; the hint is that of the first suspect ``got`` matches.

    A suspect is a tensor (or a function computing one) that a typical mistake produces; a
    suspect that cannot be formed for this case is skipped. The message names the first
    wrong entry and counts NaNs.
    """
    if close(got, want, atol):
        return
    hint = None
    for suspect, text in suspects:
        try:
            value = suspect() if callable(suspect) else suspect
        except Exception:  # a suspect that cannot be formed here is not the culprit
            continue
        if close(got, value, atol, equal_nan=True):
            hint = text
            break
    g, w = got.detach().double(), want.detach().double()
    bad = ~torch.isclose(g, w, atol=atol, rtol=RTOL)
    where = tuple(int(i) for i in bad.nonzero()[0]) if bad.any() else ()
    detail = (
        f"first wrong entry at index {where}: got {g[where].item():.6g}, expected "
        f"{w[where].item():.6g}"
        if where
        else "the values differ"
    )
    if torch.isnan(g).any():
        detail += f"; your result has {int(torch.isnan(g).sum())} NaN entries"
    raise AssertionError(f"{case}: wrong values — {detail}.{_hint(hint or default_hint)}")


def diagnose(
    got: float, want: float, suspects: Iterable[tuple[Callable[[float, float], bool], str]]
) -> str | None:
    """The hint of the first suspect whose test ``(got, want)`` is true, if any."""
    for test, hint in suspects:
        try:
            if test(got, want):
                return hint
        except (ArithmeticError, TypeError):  # a suspect that does not apply to this case
            continue
    return None


def fmt(n: float) -> str:
    """Thousands separators for ints, 6 significant digits otherwise."""
    if isinstance(n, int) or (isinstance(n, float) and n.is_integer() and abs(n) < 1e18):
        return f"{int(n):,}"
    return f"{n:.6g}"


def fail(case: str, got: Any, want: Any, hint: str | None) -> None:
    """Raise the AssertionError a learner sees: the case, both values, and a hint."""

    def show(v: Any) -> str:
        return fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)

    raise AssertionError(f"{case}: got {show(got)}, expected {show(want)}.{_hint(hint)}")


def binomial_tol(p: float, n: int, sigmas: float = 6.0, slack: float = 1e-3) -> float:
    """How far a frequency measured on ``n`` draws of probability ``p`` may stray.

    Six binomial standard deviations (plus ``slack``): a correct implementation passes with
    any order of random draws, a systematic error of a few percent does not.
    """
    return sigmas * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)) + slack


# ------------------------------------------------------------ shared check scaffolds

HINT_LOG_SOFTMAX = (
    "softmax(...).log() overflows or underflows for large logits; use torch.log_softmax "
    "(or F.cross_entropy), which subtracts the maximum first"
)
HINT_DIFFERENTIABLE = "keep it a torch computation (no .item(), no numpy) so loss.backward() works"


def check_mean_cross_entropy(
    name: str,
    impl: Callable,
    cases: Iterable[tuple[str, torch.Tensor, torch.Tensor]],
    want: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    suspects: Callable[[torch.Tensor, torch.Tensor], list[tuple[Callable[[], float], str]]],
    *,
    targets_name: str = "targets",
    explain: Callable[[torch.Tensor], str] | None = None,
    on_error: Hint = None,
) -> None:
    """The scaffold of a check of a mean cross-entropy of ``(B, T, V)`` logits.

    For each ``(description, logits, targets)``: ``impl`` runs on a copy of the logits that
    requires a gradient; the result must be a 0-dim tensor, finite for logits of size 1e4,
    equal to ``want(logits, targets)`` (else the hint of the first suspect value matched;
    ``explain(targets)`` says what the expected number is) and differentiable. Then
    targets that do not fit the logits, and 2-D logits, must raise a ``ValueError``.
    """
    for desc, logits, targets in cases:
        case = f"{name}({desc})"
        x = logits.clone().requires_grad_(True)
        got = call(case, impl, x, targets.clone(), hint=on_error)
        expect_type(got, torch.Tensor, case)
        if got.dim() != 0:
            raise AssertionError(
                f"{case} should return a 0-dim tensor (one number, the mean), got shape "
                f"{tuple(got.shape)}"
                + _hint("average over batch *and* time" if got.numel() > 1 else None)
            )
        g, w = got.item(), want(logits, targets).item()
        if not math.isfinite(g):
            raise AssertionError(f"{case} is {g}.{_hint(HINT_LOG_SOFTMAX)}")
        # Tighter than the policy: F.cross_entropy on the same float32 logits is the judge.
        if near(g, w, rtol=1e-5, atol=1e-6):
            expect_differentiable(got, case, HINT_DIFFERENTIABLE)
            continue
        tests = [
            (lambda g, w, s=s: near(g, s(), 1e-5, 1e-6), t) for s, t in suspects(logits, targets)
        ]
        extra = f" ({explain(targets)})" if explain else ""
        raise AssertionError(
            f"{case}: got {fmt(g)}, expected {fmt(w)}{extra}.{_hint(diagnose(g, w, tests))}"
        )
    for bad, what in [
        (
            (torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long)),
            f"{targets_name} (2, 4) for logits (2, 3, 5)",
        ),
        ((torch.zeros(6, 5), torch.zeros(6, dtype=torch.long)), "2-D logits (6, 5)"),
    ]:
        expect_value_error(
            f"{name} with {what}",
            lambda bad=bad: impl(*bad),
            "check the shapes first and raise a ValueError naming the expected ones, "
            "(B, T, V) and (B, T), before computing anything",
        )
