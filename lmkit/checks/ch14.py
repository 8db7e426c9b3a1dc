"""Checks of chapter 14: patchify, PatchEmbedding.forward.

Judges: ``torch.nn.functional.unfold(images, p, stride=p)`` transposed to ``(B, N, C·p·p)``
(its order: patches row-major, each flattened channel first), and a ``Conv2d`` with
``kernel_size = stride = p`` whose weight ``(D, C, p, p)`` flattened to ``(D, C·p·p)`` is a
Linear layer on the patches (14.1); the same convolution with the module's weights copied in,
then [CLS] in front and the positions added, in float64 (14.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.checks import (
    call,
    compare,
    expect_differentiable,
    expect_tensor,
    expect_value_error,
)
from lmkit.grading import checks
from lmkit.vision import PatchEmbedding


def _images(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ 14.1 patchify


def _grid(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, C, H/p, p, W/p, p)``: which patch, and where inside it."""
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``(B, a, b, c, d, e)`` → ``(B, a·b, c·d·e)``."""
    return t.reshape(t.shape[0], t.shape[1] * t.shape[2], -1)


HINT_ROW_MAJOR = (
    "patches must be taken row-major: patch 1 is to the right of patch 0, not below it "
    "(after splitting H and W, put the row index of the patch before its column index)"
)
HINT_CHANNEL_FIRST = (
    "flatten each patch channel first, (C, p, p), as F.unfold and a Conv2d weight do: entry "
    "c·p² + i·p + j is channel c, row i, column j; you put the channels last"
)
HINT_ROWS_INSIDE = (
    "inside a patch, keep the pixel rows before the columns (i·p + j): you transposed each patch"
)
HINT_RESHAPE_ONLY = (
    "a reshape alone does not cut squares: it takes runs of consecutive pixels along the "
    "rows. Split H and W into (H/p, p) and (W/p, p), permute the two patch-grid axes to the "
    "front, then reshape"
)


def _patch_suspects(x: torch.Tensor, p: int) -> list[tuple[Callable[[], torch.Tensor], str]]:
    g = _grid(x, p)
    return [
        (lambda: _flat(g.permute(0, 4, 2, 1, 3, 5)), HINT_ROW_MAJOR),
        (lambda: _flat(g.permute(0, 2, 4, 3, 5, 1)), HINT_CHANNEL_FIRST),
        (lambda: _flat(g.permute(0, 2, 4, 1, 5, 3)), HINT_ROWS_INSIDE),
        (lambda: _flat(g.permute(0, 4, 2, 3, 5, 1)), HINT_ROW_MAJOR + "; " + HINT_CHANNEL_FIRST),
        (lambda: x.reshape(x.shape[0], g.shape[2] * g.shape[4], -1), HINT_RESHAPE_ONLY),
    ]


PATCH_CASES = [
    ("patchify(images (2, 3, 8, 12), 4): a 2 × 3 grid of RGB patches", 0, (2, 3, 8, 12), 4),
    ("patchify(images (1, 1, 28, 28), 7): one Fashion-MNIST-sized image", 1, (1, 1, 28, 28), 7),
    ("patchify(images (3, 2, 6, 6), 3)", 2, (3, 2, 6, 6), 3),
    ("patchify(images (2, 2, 4, 4), 4): one patch per image", 3, (2, 2, 4, 4), 4),
]  # fmt: skip


def _expect_patch_shape(case: str, got: object, B: int, N: int, D: int) -> None:
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (B, D, N) and N != D:
        raise AssertionError(
            f"{case} should have shape {(B, N, D)} (B, N, C·p·p), got {tuple(got.shape)}"
            "\nHint: F.unfold returns (B, C·p·p, N): transpose it to one row per patch"
        )
    expect_tensor(got, (B, N, D), case)


@checks("14.1")
def check_patchify(impl: Callable) -> None:
    for desc, seed, shape, p in PATCH_CASES:
        x = _images(seed, *shape)
        B, C, H, W = shape
        N, D = (H // p) * (W // p), C * p * p
        got = call(desc, impl, x.clone(), p)
        _expect_patch_shape(desc, got, B, N, D)
        want = F.unfold(x, p, stride=p).transpose(1, 2)  # the judge: torch's own patches
        compare(desc, got, want, _patch_suspects(x, p))

    # A Linear layer on the patches is a Conv2d with kernel_size = stride = p, when the
    # Linear's weight is the Conv2d's (D, C, p, p) flattened in the same (C, p, p) order.
    desc = "patchify(images (2, 3, 12, 8), 4) @ W.T + b vs Conv2d(3, 5, kernel_size=4, stride=4)"
    x = _images(4, 2, 3, 12, 8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        conv = nn.Conv2d(3, 5, kernel_size=4, stride=4).double()
    got = call(desc, impl, x.clone().requires_grad_(True), 4)
    _expect_patch_shape(desc, got, 2, 6, 48)
    weight, bias = conv.weight.detach().flatten(1), conv.bias.detach()

    def project(patches: torch.Tensor) -> torch.Tensor:
        return patches.double() @ weight.T + bias

    with torch.no_grad():
        want = conv(x.double()).flatten(2).transpose(1, 2)  # (B, N, D): one row per patch
    suspects = [(lambda s=s: project(s()), h) for s, h in _patch_suspects(x, 4)]
    compare(desc, project(got.detach()), want, suspects)
    expect_differentiable(
        got,
        desc,
        "keep it torch operations on the tensor (reshape, permute): a round trip through "
        "numpy or a Python list cuts the gradient the patch projection needs",
    )

    hint = (
        "check H % p and W % p first and raise a ValueError naming H, W and p: dropping "
        "the leftover pixels silently loses part of every image"
    )
    expect_value_error(
        "patchify(images (1, 1, 28, 28), 5): 5 does not divide 28",
        lambda: impl(torch.zeros(1, 1, 28, 28), 5),
        hint,
        mentions=[28, 5],
    )
    expect_value_error(
        "patchify(images (1, 1, 8, 12), 8): 8 divides H = 8 but not W = 12",
        lambda: impl(torch.zeros(1, 1, 8, 12), 8),
        hint,
        mentions=[12, 8],
    )


# ------------------------------------------------------------------ 14.2 patch embedding


def _module(seed: int, image_size: int, patch_size: int, channels: int, d: int):
    """A PatchEmbedding with every parameter random (a zero [CLS] token would hide where it
    went), built without touching the learner's random state."""
    with torch.random.fork_rng(devices=[]):
        m = PatchEmbedding(image_size, patch_size, channels, d)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prm in m.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g) * 0.5)
    return m


def _conv_tokens(m: PatchEmbedding, x: torch.Tensor, row_major: bool = True) -> torch.Tensor:
    """The patch tokens ``(B, N, D)`` as a Conv2d with the module's weights computes them,
    in float64."""
    p, C, D = m.patch_size, m.in_channels, m.d_model
    w = m.proj.weight.detach().double().reshape(D, C, p, p)
    maps = F.conv2d(x.double(), w, m.proj.bias.detach().double(), stride=p)  # (B, D, gh, gw)
    if not row_major:
        maps = maps.transpose(2, 3)
    return maps.flatten(2).transpose(1, 2)


def _embedding_suspects(m: PatchEmbedding, x: torch.Tensor):
    B = x.shape[0]
    tokens = _conv_tokens(m, x)
    cls = m.cls.detach().double().expand(B, -1, -1)
    pos = m.pos.detach().double()
    return [
        (
            lambda: torch.cat([cls, tokens], 1),
            "add the learned positions self.pos to the tokens: without them the encoder "
            "sees a bag of patches and cannot tell where each one was",
        ),
        (
            lambda: torch.cat([tokens, cls], 1) + pos,
            "the [CLS] token goes in front, at position 0 (the classifier reads position "
            "0): torch.cat([cls, patches], dim=1)",
        ),
        (
            lambda: torch.cat([cls, tokens + pos[:, 1:]], 1),
            "the [CLS] token gets a position too: concatenate first, then add self.pos to "
            "all N + 1 tokens",
        ),
        (
            lambda: torch.cat([cls, _conv_tokens(m, x, row_major=False)], 1) + pos,
            "use patchify (exercise 14.1) for the patches: they must be row-major, patch 1 to "
            "the right of patch 0",
        ),
    ]


EMBED_CASES = [
    ("PatchEmbedding(28, 7, 1, 16) on images (3, 1, 28, 28)", 0, 28, 7, 1, 16, 3),
    ("PatchEmbedding(8, 4, 3, 12) on RGB images (2, 3, 8, 8)", 1, 8, 4, 3, 12, 2),
    ("PatchEmbedding(6, 2, 2, 8) on one image (1, 2, 6, 6)", 2, 6, 2, 2, 8, 1),
]  # fmt: skip

HINT_EXPAND = (
    "self.cls is (1, 1, d_model), one token for the whole batch: expand it to (B, 1, "
    "d_model) (self.cls.expand(B, -1, -1)) before concatenating"
)


def _embedding_hint(err: BaseException) -> str | None:
    if isinstance(err, RuntimeError) and "Sizes of tensors must match" in str(err):
        return HINT_EXPAND
    return None


@checks("14.2")
def check_patch_embedding(impl: Callable) -> None:
    for desc, seed, size, p, C, D, B in EMBED_CASES:
        m = _module(seed, size, p, C, D)
        x = _images(10 + seed, B, C, size, size)
        got = call(desc, impl, m, x.clone(), hint=_embedding_hint)
        N = (size // p) ** 2
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (B, N, D):
            raise AssertionError(
                f"{desc} should have shape {(B, N + 1, D)} (N + 1 tokens), got "
                f"{tuple(got.shape)}\nHint: put the [CLS] token in front of the N patch "
                "tokens: torch.cat([cls, patches], dim=1)"
            )
        expect_tensor(got, (B, N + 1, D), desc)
        tokens = _conv_tokens(m, x)
        cls = m.cls.detach().double().expand(B, -1, -1)
        want = torch.cat([cls, tokens], 1) + m.pos.detach().double()
        compare(desc, got, want, _embedding_suspects(m, x))

        if got.requires_grad:  # else (no_grad, detached) the message below says so
            got.double().square().sum().backward()
        if m.cls.grad is None or not m.cls.grad.abs().sum() > 0:
            raise AssertionError(
                f"{desc}: right values, but no gradient reaches self.cls.\nHint: the [CLS] "
                "token is a parameter to learn: use self.cls itself (expand keeps the "
                "gradient), not a copy, .data or .detach()"
            )

    m = _module(3, 28, 7, 1, 16)
    hint = (
        "call check_images(images, self.in_channels, self.image_size, self.image_size) "
        "first: an image of another size or channel count must be a ValueError that names "
        "the expected shape, not a crash deep inside"
    )
    expect_value_error(
        "PatchEmbedding(28, 7, 1, 16) on images (2, 1, 35, 35) (35 = 5 · 7 patches a side)",
        lambda: impl(m, torch.zeros(2, 1, 35, 35)),
        hint,
        mentions=[28],
    )
    expect_value_error(
        "PatchEmbedding(28, 7, 1, 16) on RGB images (2, 3, 28, 28)",
        lambda: impl(m, torch.zeros(2, 3, 28, 28)),
        hint,
        mentions=[28],
    )
