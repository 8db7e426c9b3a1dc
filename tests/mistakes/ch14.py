"""Plausible wrong answers to chapter 14's exercises, and the hint each check must give."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lmkit.vision import check_images
from solutions.vision import patchify as _patchify

# ------------------------------------------------------------------ 14.1 patchify


def _sizes(images, p, *, check=True):
    B, C, H, W = images.shape
    if check and (H % p or W % p):
        raise ValueError(f"patch size {p} must divide H={H} and W={W}")
    return B, C, H // p, W // p


def _column_major(images, patch_size):
    # "for every column of patches, go down": the grid axes in (column, row) order
    p = patch_size
    B, C, gh, gw = _sizes(images, p)
    x = images.reshape(B, C, gh, p, gw, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(B, gh * gw, C * p * p)


def _channels_last(images, patch_size):
    # (p, p, C) patches, as an image library would store them (height, width, channels)
    p = patch_size
    B, C, gh, gw = _sizes(images, p)
    x = images.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, gh * gw, C * p * p)


def _patch_transposed(images, patch_size):
    # the two inner axes swapped: each patch flattened column by column
    p = patch_size
    B, C, gh, gw = _sizes(images, p)
    x = images.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 1, 5, 3)
    return x.reshape(B, gh * gw, C * p * p)


def _plain_reshape(images, patch_size):
    # "N patches of C·p·p values": the right shape, but runs of pixels, not squares
    p = patch_size
    B, C, gh, gw = _sizes(images, p)
    return images.reshape(B, gh * gw, C * p * p)


def _unfold_not_transposed(images, patch_size):
    _sizes(images, patch_size)
    return F.unfold(images, patch_size, stride=patch_size)


def _unfold_via_numpy(images, patch_size):
    # the right numbers, computed in numpy: the projection's gradient cannot reach the image
    _sizes(images, patch_size)
    patches = F.unfold(images.detach(), patch_size, stride=patch_size).transpose(1, 2)
    return torch.from_numpy(np.ascontiguousarray(patches.numpy()))


def _truncating(images, patch_size):
    # drop the pixels that do not fill a patch, as a strided loop would
    p = patch_size
    B, C, H, W = images.shape
    return _patchify(images[:, :, : H // p * p, : W // p * p], p)


def _checks_height_only(images, patch_size):
    H = images.shape[2]
    if H % patch_size:
        raise ValueError(f"patch size {patch_size} does not divide the height {H}")
    W = images.shape[3]
    return _patchify(images[..., : W // patch_size * patch_size], patch_size)


def _vague_error(images, patch_size):
    try:
        return _patchify(images, patch_size)
    except ValueError:
        raise ValueError("the image size must be a multiple of the patch size") from None


# ------------------------------------------------------------------ 14.2 patch embedding


def _embed(self, images, *, check=True, cls_at="front", pos="all", expand=True, detach=False,
           patches=None):  # fmt: skip
    """A learner's PatchEmbedding.forward; the keywords switch one mistake on."""
    if check:
        check_images(images, self.in_channels, self.image_size, self.image_size)
    x = self.proj((patches or _patchify)(images, self.patch_size))
    B = x.shape[0]
    cls = self.cls.detach() if detach else self.cls
    if expand:
        cls = cls.expand(B, -1, -1)
    if pos == "patches":
        return torch.cat([cls, x + self.pos[:, 1:]], dim=1)
    x = torch.cat([cls, x] if cls_at == "front" else [x, cls], dim=1)
    return x + self.pos if pos == "all" else x


def _embed_no_positions(self, images):
    return _embed(self, images, pos="none")


def _embed_cls_last(self, images):
    return _embed(self, images, cls_at="back")


def _embed_positions_on_patches(self, images):
    return _embed(self, images, pos="patches")


def _embed_not_expanded(self, images):
    return _embed(self, images, expand=False)


def _embed_detached_cls(self, images):
    return _embed(self, images, detach=True)


def _embed_no_check(self, images):
    return _embed(self, images, check=False)


def _embed_column_major(self, images):
    return _embed(self, images, patches=_column_major)


def _embed_no_cls(self, images):
    check_images(images, self.in_channels, self.image_size, self.image_size)
    return self.proj(_patchify(images, self.patch_size)) + self.pos[:, 1:]


MISTAKES = {
    "14.1": [
        ("column-major patch order", _column_major, "patch 1 is to the right of patch 0"),
        ("channels last in a patch", _channels_last, "flatten each patch channel first"),
        ("each patch transposed", _patch_transposed, "keep the pixel rows before the columns"),
        ("a reshape, no permute", _plain_reshape, "a reshape alone does not cut squares"),
        ("F.unfold not transposed", _unfold_not_transposed, "transpose it to one row per patch"),
        ("through numpy", _unfold_via_numpy, "a round trip through numpy"),
        ("leftover pixels dropped", _truncating, "dropping the leftover pixels silently"),
        ("only H checked", _checks_height_only, "check H % p and W % p first"),
        ("error names no sizes", _vague_error, "name 28 and 5 in the message"),
    ],
    "14.2": [
        ("no positions", _embed_no_positions, "add the learned positions self.pos"),
        ("[CLS] appended at the end", _embed_cls_last, "the [CLS] token goes in front"),
        ("positions on patches only", _embed_positions_on_patches, "gets a position too"),
        ("[CLS] not expanded", _embed_not_expanded, "self.cls.expand(B, -1, -1)"),
        ("[CLS] detached", _embed_detached_cls, "no gradient reaches self.cls"),
        ("no input check", _embed_no_check, "call check_images(images, self.in_channels"),
        ("own column-major patches", _embed_column_major, "use patchify (exercise 14.1)"),
        ("no [CLS] token", _embed_no_cls, "put the [CLS] token in front of the N patch"),
    ],
}
