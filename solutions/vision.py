"""Reference solutions of chapter 14 (lmkit.vision)."""

from __future__ import annotations

import torch

import lmkit.vision
from lmkit.vision import check_images


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images should be (B, C, H, W), got {got}")
    B, C, H, W = images.shape
    p = patch_size
    if p <= 0 or H % p or W % p:
        raise ValueError(
            f"patch_size {p} must divide the image height H={H} and width W={W}: crop or pad "
            "the images, or choose another patch size"
        )
    gh, gw = H // p, W // p
    # (B, C, gh, p, gw, p): split each axis into (which patch, where inside it) ...
    x = images.reshape(B, C, gh, p, gw, p)
    # ... then put the patch grid first (row, then column: row-major) and each patch's
    # (C, p, p) last, so that one reshape flattens it channel first, as F.unfold does.
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, gh * gw, C * p * p)


class PatchEmbedding(lmkit.vision.PatchEmbedding):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.in_channels, self.image_size, self.image_size)
        x = self.proj(patchify(images, self.patch_size))  # (B, N, d_model)
        cls = self.cls.expand(x.shape[0], -1, -1)  # one [CLS] per image, shared weights
        x = torch.cat([cls, x], dim=1)  # (B, N + 1, d_model), [CLS] at position 0
        return x + self.pos  # positions for [CLS] and every patch
