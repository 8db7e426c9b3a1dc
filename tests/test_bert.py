"""Chapter 9's BERT against Hugging Face's BertForPreTraining and chapter 1's count, and the
pre-training batches it learns from."""

from __future__ import annotations

import random

import pytest
import torch

from lmkit.bert import BERT, IGNORE_INDEX, BertConfig, mask_tokens, mlm_loss, nsp_batch
from lmkit.config import PRESETS
from solutions.scale import count_parameters

transformers = pytest.importorskip("transformers")
TINY = BertConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32, d_ff=64)


# The model runs on the reference exercises here (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")


def _hf(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    return transformers.BertForPreTraining(config).eval()


def test_outputs_match_huggingface_bert():
    hf = _hf()
    model = BERT.from_hf(hf).eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(50, (3, 12), generator=g)
    segments = torch.randint(2, (3, 12), generator=g)
    padding = torch.ones(3, 12, dtype=torch.bool)
    padding[1, 7:] = False
    want = hf(input_ids=idx, token_type_ids=segments, attention_mask=padding.long())
    mlm, nsp = model(idx, segments, padding)
    # Padded positions' outputs are never used (HF still computes them differently).
    assert torch.allclose(mlm[padding], want.prediction_logits[padding], atol=1e-5)
    assert torch.allclose(nsp, want.seq_relationship_logits, atol=1e-5)
    assert model.num_parameters() == hf.num_parameters()


def test_padding_does_not_change_real_tokens():
    model = BERT(TINY).eval()
    idx = torch.randint(50, (1, 8))
    padded = torch.cat([idx, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.tensor([[True] * 8 + [False] * 5])
    short = model.encode(idx)
    long = model.encode(padded, padding_mask=mask)
    assert torch.allclose(short, long[:, :8], atol=1e-5)


def test_every_token_sees_the_future():
    model = BERT(TINY).eval()
    idx = torch.randint(50, (1, 10))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 50
    # An encoder: changing the last token changes the first token's vector (not in a GPT).
    assert not torch.allclose(model.encode(idx)[0, 0], model.encode(changed)[0, 0])


@pytest.mark.parametrize("name", ["bert-base", "bert-large"])
def test_encoder_size_is_chapter_1s_count(name):
    config = BertConfig.preset(name)
    with torch.device("meta"):
        model = BERT(config)
    assert model.num_parameters(heads=False) == count_parameters(PRESETS[name])


def test_mlm_head_is_tied_to_the_input_embedding():
    model = BERT(TINY)
    model.embed.tok.weight.data.zero_()
    mlm, _ = model(torch.randint(50, (1, 4)))
    assert torch.allclose(mlm, model.mlm.bias.expand_as(mlm))


def test_nsp_batch_structure():
    sentences = [[10 + i] * (1 + i % 5) for i in range(40)]
    batch = nsp_batch(sentences, 64, 12, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(0))
    idx, seg, pad, special = (batch[k] for k in ("idx", "segments", "padding_mask", "special_mask"))
    assert idx.shape == seg.shape == pad.shape == special.shape == (64, 12)
    assert 20 < int(batch["is_next"].sum()) < 44, "about half the pairs are random"
    for b in range(64):
        n = int(pad[b].sum())
        row = idx[b, :n].tolist()
        assert row[0] == 1 and row[-1] == 2 and row.count(2) == 2
        sep = row.index(2)
        a, c = row[1:sep], row[sep + 1 : -1]
        assert seg[b, : sep + 1].eq(0).all() and seg[b, sep + 1 : n].eq(1).all()
        assert special[b].tolist() == [t in (0, 1, 2) for t in idx[b].tolist()]
        assert idx[b, n:].eq(0).all()
        i = a[0] - 10
        follows = c[0] - 10 == i + 1
        assert follows == (batch["is_next"][b] == 0), "label 0 means B follows A"
        assert c[0] - 10 != i, "a random B is never A itself"


def test_nsp_batch_truncates_the_longer_sentence():
    sentences = [[5] * 20, [6] * 3, [7] * 4]
    batch = nsp_batch(sentences, 8, 10, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(1))
    assert batch["padding_mask"].all(), "long pairs fill the block"
    with pytest.raises(ValueError):
        nsp_batch(sentences[:2], 1, 10, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(0))


def test_one_pretraining_step_lowers_the_loss():
    torch.manual_seed(0)
    model = BERT(TINY.with_(dropout=0.0))
    sentences = [[3 + (i * 7 + j) % 40 for j in range(5)] for i in range(30)]
    batch = nsp_batch(sentences, 16, 16, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(0))
    inputs, labels = mask_tokens(
        batch["idx"],
        mask_id=3,
        vocab_size=50,
        special_mask=batch["special_mask"],
        generator=torch.Generator().manual_seed(0),
    )
    assert (labels != IGNORE_INDEX).any()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        mlm, nsp = model(inputs, batch["segments"], batch["padding_mask"])
        loss = mlm_loss(mlm, labels) + torch.nn.functional.cross_entropy(nsp, batch["is_next"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_compiles_to_one_graph():
    torch._dynamo.reset()
    model = BERT(TINY.with_(fast_attention=True))
    idx = torch.randint(50, (2, 16))
    explained = torch._dynamo.explain(model)(idx, torch.zeros_like(idx), idx > 0)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
