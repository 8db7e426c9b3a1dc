"""Chapter 2 — batches for next-token prediction.

Exercise 2.4 (:func:`get_batch`) lives here: random windows of a token stream, with
targets shifted by one, the way nanoGPT samples its training data.
"""

from __future__ import annotations

import torch

from lmkit.grading import exercise

__all__ = ["get_batch"]


@exercise("2.4")
def get_batch(
    data, block_size: int, batch_size: int, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of ``block_size`` tokens, and their targets.

    A window starts at an offset ``i`` drawn uniformly from every valid start,
    ``0 ≤ i ≤ len(data) - block_size - 1`` (the last one included): ``x`` is
    ``data[i : i + block_size]`` and ``y`` is ``data[i + 1 : i + block_size + 1]``, the
    same window shifted by one, so ``y[b, t]`` is the token that follows ``x[b, :t+1]``.
    Draw the offsets with one call of ``torch.randint(…, generator=generator)`` so that a
    seeded generator makes batches reproducible.

    Args:
        data: a 1-D sequence of token ids: a ``torch.Tensor``, a NumPy array (a
            ``uint16`` ``np.memmap`` of a ``.bin`` file included) or a list.
        block_size: tokens per window ``T``; needs ``len(data) >= block_size + 1``.
        batch_size: windows per batch ``B``.
        generator: an optional ``torch.Generator``.

    Returns:
        ``(x, y)``, two ``torch.int64`` tensors of shape ``(B, T)``.

    Raises:
        ValueError: ``block_size >= len(data)`` (no window has a target for its last
            token), or ``block_size``/``batch_size`` not positive.
    """
    raise NotImplementedError(
        "Exercise 2.4: draw batch_size offsets with torch.randint and the generator, then "
        "stack x = data[i:i+T] and y = data[i+1:i+1+T] as int64"
    )
