"""get_batch (reference) against nanoGPT's sampling, on every container it accepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmkit.data import read_bin, write_bin
from solutions.batching import get_batch


def test_same_offsets_as_nanogpt():
    """nanoGPT: ix = torch.randint(len(data) - block_size, (batch_size,))."""
    data = torch.arange(1000) * 3 % 997
    x, y = get_batch(data, 16, 8, generator=torch.Generator().manual_seed(5))
    ix = torch.randint(len(data) - 16, (8,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, torch.stack([data[i : i + 16] for i in ix]))
    assert torch.equal(y, torch.stack([data[i + 1 : i + 17] for i in ix]))


@pytest.mark.parametrize("kind", ["tensor", "uint16", "memmap", "list"])
def test_containers(kind, tmp_path):
    ids = list(range(100, 160))
    data = {
        "tensor": torch.tensor(ids, dtype=torch.int32),
        "uint16": np.array(ids, dtype=np.uint16),
        "memmap": read_bin(write_bin(ids, tmp_path / "d.bin")),
        "list": ids,
    }[kind]
    x, y = get_batch(data, 10, 6, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 10) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)


def test_every_offset_including_the_last():
    data = torch.arange(20)
    g = torch.Generator().manual_seed(0)
    starts = {int(s) for _ in range(50) for s in get_batch(data, 5, 32, generator=g)[0][:, 0]}
    assert starts == set(range(15))


@pytest.mark.parametrize("block_size", [20, 21])
def test_too_short_data(block_size):
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(20), block_size, 2)


def test_bad_sizes():
    with pytest.raises(ValueError):
        get_batch(torch.arange(20), 0, 2)
    with pytest.raises(ValueError):
        get_batch(torch.arange(20), 4, 0)
    with pytest.raises(TypeError):
        get_batch(torch.arange(20), 4.0, 2)
