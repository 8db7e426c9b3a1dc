"""Chapter 14 (lmkit.vision, Fashion-MNIST in lmkit.data): the references against
``F.unfold`` and ``nn.Conv2d``, the ViT built from chapter 5's encoder block, its bad-input
errors, the missing-positions pitfall, the training helpers, and the data (shapes, counts,
classes, checksums, the IDX reader, the offline error). Tests that read the real images skip
when neither the Debian package nor the cache has them."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmkit import data
from lmkit.block import Block
from lmkit.data import CorpusUnavailable, load_fashion_mnist, read_idx
from lmkit.vision import (
    PIXEL_MEAN,
    PIXEL_STD,
    PatchEmbedding,
    ViT,
    ViTConfig,
    evaluate,
    fit,
    logistic_regression,
    patchify,
    prepare_images,
    shuffle_patches,
    small_cnn,
)

pytestmark = pytest.mark.usefixtures("reference_solutions")


def _have_fashion_mnist() -> bool:
    try:
        for split in ("train", "test"):
            for kind in ("images", "labels"):
                data.fashion_mnist_path(split, kind, download_if_missing=False)
    except CorpusUnavailable:
        return False
    return True


needs_data = pytest.mark.skipif(
    not _have_fashion_mnist(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist) nor cached",
)


# ------------------------------------------------------------------ patches


@pytest.mark.parametrize(
    "shape, p", [((2, 3, 8, 12), 4), ((1, 1, 28, 28), 7), ((3, 2, 6, 6), 1), ((1, 1, 28, 28), 28)]
)
def test_patchify_is_unfold_transposed(shape, p):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    got = patchify(x, p)
    assert torch.equal(got, F.unfold(x, p, stride=p).transpose(1, 2))


def test_patchify_is_row_major():
    # A 4 × 4 image of 2 × 2 patches numbered by hand, row by row.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert patchify(x, 2)[0].tolist() == [
        [0, 1, 4, 5],
        [2, 3, 6, 7],  # patch 1: to the right of patch 0
        [8, 9, 12, 13],  # patch 2: the first of the second row
        [10, 11, 14, 15],
    ]


def test_linear_on_patches_equals_strided_conv():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 12, 8, generator=g)
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4)
    with torch.no_grad():
        want = conv(x).flatten(2).transpose(1, 2)
        got = patchify(x, 4) @ conv.weight.flatten(1).T + conv.bias
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("shape, p, names", [((1, 1, 28, 28), 5, ("28", "5")),
                                             ((2, 1, 8, 12), 8, ("12", "8"))])  # fmt: skip
def test_patchify_refuses_sizes_it_cannot_cut(shape, p, names):
    with pytest.raises(ValueError) as info:
        patchify(torch.zeros(shape), p)
    assert all(n in str(info.value) for n in names)


def test_patch_embedding_equals_conv_reference():
    torch.manual_seed(0)
    m = PatchEmbedding(28, 7, 1, 16)
    with torch.no_grad():
        m.cls.normal_()
    x = torch.randn(3, 1, 28, 28)
    conv = nn.Conv2d(1, 16, 7, stride=7)
    with torch.no_grad():
        conv.weight.copy_(m.proj.weight.view(16, 1, 7, 7))
        conv.bias.copy_(m.proj.bias)
        tokens = conv(x).flatten(2).transpose(1, 2)
        want = torch.cat([m.cls.expand(3, -1, -1), tokens], 1) + m.pos
        torch.testing.assert_close(m(x), want)


def test_shuffle_patches_moves_whole_patches():
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    moved = patchify(shuffle_patches(x, 7, seed=3), 7)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(moved, patchify(x, 7)[:, perm])
    assert not torch.equal(moved, patchify(x, 7))


# ------------------------------------------------------------------ the model


def test_vit_is_chapter_5_encoder_blocks():
    model = ViT(ViTConfig(n_layer=2))
    assert all(type(b) is Block and not b.causal and b.norm_first for b in model.blocks)
    assert model.patch.pos.shape == (1, 17, 64)


def test_fresh_vit_predicts_uniform():
    torch.manual_seed(0)
    model = ViT(ViTConfig(n_layer=2))
    logits = model(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 10)
    loss = F.cross_entropy(logits, torch.tensor([0, 3, 5, 9]))
    assert math.isclose(loss.item(), math.log(10), rel_tol=1e-6)


@pytest.mark.parametrize(
    "images, words",
    [
        (torch.zeros(2, 1, 32, 32), ("(B, 1, 28, 28)", "(2, 1, 32, 32)")),
        (torch.zeros(2, 3, 28, 28), ("(B, 1, 28, 28)", "1-channel")),
        (torch.zeros(1, 28, 28), ("(B, 1, 28, 28)", "images[None]")),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), ("prepare_images",)),
        (np.zeros((2, 1, 28, 28), dtype=np.float32), ("tensor",)),
    ],
)
def test_vit_bad_images_are_clear_value_errors(images, words):
    model = ViT(ViTConfig(n_layer=1))
    with pytest.raises(ValueError) as info:
        model(images)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_without_positions_the_vit_is_blind_to_patch_order():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    shuffled = shuffle_patches(x, 7, seed=1)
    blind = ViT(ViTConfig(n_layer=2, positions=False)).eval()
    seeing = ViT(ViTConfig(n_layer=2)).eval()
    for model in (blind, seeing):  # a random head, so the logits are not all zero
        nn.init.normal_(model.head.weight)
    with torch.no_grad():
        torch.testing.assert_close(blind(shuffled), blind(x), atol=1e-5, rtol=1e-5)
        assert (seeing(shuffled) - seeing(x)).abs().max() > 1e-3
    assert not blind.patch.pos.requires_grad and not blind.patch.pos.any()


def test_cls_attention_is_the_slow_paths_weights():
    torch.manual_seed(0)
    model = ViT(ViTConfig(n_layer=2))
    x = torch.randn(2, 1, 28, 28)
    maps = model.cls_attention(x)
    assert maps.shape == (2, 2, 16)
    assert (maps >= 0).all() and (maps.sum(-1) <= 1 + 1e-6).all()
    assert all(b.attn.fast for b in model.blocks)  # put back
    with torch.no_grad():  # the slow path computes the same model
        fast = model(x)
        for b in model.blocks:
            b.attn.fast = False
        torch.testing.assert_close(model(x), fast, atol=1e-5, rtol=1e-5)


def test_baselines_have_the_right_shapes():
    x = torch.randn(5, 1, 28, 28)
    assert logistic_regression()(x).shape == (5, 10)
    assert small_cnn()(x).shape == (5, 10)
    assert sum(p.numel() for p in logistic_regression().parameters()) == 7850


def test_fit_learns_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    # Two classes told apart by the brightness of the top half.
    labels = torch.randint(2, (512,), generator=g)
    images = torch.randn(512, 1, 28, 28, generator=g) * 0.5
    images[:, :, :14] += (labels * 2 - 1).float()[:, None, None, None]
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = logistic_regression(n_classes=2)
        result = fit(model, images, labels, steps=40, batch_size=64, lr=1e-2, log_every=20)
        runs.append((result["losses"], evaluate(model, images, labels)))
    assert runs[0] == runs[1]
    assert runs[0][1] > 0.95 and runs[0][0][-1] < runs[0][0][0]


def test_fit_refuses_mismatched_data():
    with pytest.raises(ValueError, match="labels"):
        fit(logistic_regression(), torch.zeros(10, 1, 28, 28), torch.zeros(9), steps=1)


# ------------------------------------------------------------------ the data


def _idx(path, array: np.ndarray) -> None:
    header = struct.pack(f">HBB{array.ndim}I", 0, 8, array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip_and_errors(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(struct.pack(">HBBII", 0, 8, 2, 3, 3) + bytes(5))
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short.gz")
    with gzip.open(tmp_path / "float.gz", "wb") as f:
        f.write(struct.pack(">HBBI", 0, 0x0D, 1, 1) + bytes(4))
    with pytest.raises(ValueError, match="unsigned bytes"):
        read_idx(tmp_path / "float.gz")


def test_offline_error_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "cache"))

    def offline(url, dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(CorpusUnavailable) as info:
        data.fashion_mnist_path("test", "labels")
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert not list((tmp_path / "cache").rglob("*.gz"))  # nothing half-downloaded kept


def test_download_route_checks_the_sha256(tmp_path, monkeypatch):
    # A "download" of the wrong bytes is refused; the right bytes are cached and then used.
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "cache"))
    labels = np.array([3, 1, 4], dtype=np.uint8)
    _idx(tmp_path / "good.gz", labels)
    good = (tmp_path / "good.gz").read_bytes()
    monkeypatch.setitem(
        data.FASHION_MNIST_FILES, ("test", "labels"), ("t.gz", data.sha256_of(tmp_path / "good.gz"))
    )
    served = {"bytes": b"not the file"}
    monkeypatch.setattr(data, "_fetch", lambda url, dest: dest.write(served["bytes"]))
    with pytest.raises(CorpusUnavailable, match="corrupted"):
        data.fashion_mnist_path("test", "labels")
    served["bytes"] = good
    path = data.fashion_mnist_path("test", "labels")
    assert path == tmp_path / "cache" / "fashion-mnist" / "t.gz"
    assert np.array_equal(read_idx(path), labels)


def test_unknown_split_is_a_value_error():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("validation")


@needs_data
def test_fashion_mnist_shapes_counts_and_balance():
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = load_fashion_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.max() == 9
        assert np.bincount(labels).tolist() == [n // 10] * 10  # 6,000 / 1,000 per class
    assert len(data.FASHION_MNIST_CLASSES) == 10


@needs_data
def test_pixel_statistics_are_the_training_sets():
    images, _ = load_fashion_mnist("train")
    scaled = images.astype(np.float64) / 255
    assert abs(scaled.mean() - PIXEL_MEAN) < 5e-4 and abs(scaled.std() - PIXEL_STD) < 5e-4
    x = prepare_images(images[:1000])
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
