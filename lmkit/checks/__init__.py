"""Checks of the exercises, one module per chapter, and the helpers they share.

A check takes the implementation to test and raises ``AssertionError`` with a hint that
names the likely mistake. It is deterministic: fixed inputs, seeded randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def expect_type(value: Any, types: type | tuple[type, ...], what: str) -> None:
    """Fail with 'what should be a T, got U' (bool is not accepted as an int)."""
    names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise AssertionError(f"{what} should be a {names}, got a bool ({value!r})")
    if not isinstance(value, types):
        extra = ""
        if hasattr(value, "item") and hasattr(value, "numel"):
            extra = " — call .item() to turn a one-element tensor into a number"
        elif isinstance(value, float) and int in (types if isinstance(types, tuple) else ()):
            extra = " — counts are whole numbers: use integer arithmetic (// not /) or int()"
        raise AssertionError(
            f"{what} should be a {names}, got {type(value).__name__} ({value!r}){extra}"
        )


def diagnose(
    got: float, want: float, suspects: Iterable[tuple[Callable[[float, float], bool], str]]
) -> str | None:
    """The hint of the first suspect whose test ``(got, want)`` is true, if any."""
    for test, hint in suspects:
        try:
            if test(got, want):
                return hint
        except (ArithmeticError, TypeError):  # pragma: no cover - defensive
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

    msg = f"{case}: got {show(got)}, expected {show(want)}."
    if hint:
        msg += f"\nHint: {hint}"
    raise AssertionError(msg)


def expect_value_error(case: str, fn: Callable[[], Any], hint: str) -> None:
    """Fail unless ``fn()`` raises ValueError (a stub's NotImplementedError passes through)."""
    try:
        fn()
    except NotImplementedError:
        raise
    except ValueError:
        return
    except Exception as err:  # noqa: BLE001 - any other error is the wrong kind
        raise AssertionError(
            f"{case} raised {type(err).__name__} ({err}); raise a ValueError instead.\nHint: {hint}"
        ) from None
    raise AssertionError(f"{case} returned a result; it should raise a ValueError.\nHint: {hint}")
