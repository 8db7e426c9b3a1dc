"""Chapter 10: the classifier, LoRA layers and their merge, the shipped pre-trained model and
the labelled reviews."""

from __future__ import annotations

import pytest
import torch

from lmkit import grading
from lmkit.bert import BERT, BertConfig
from lmkit.data import load_movie_reviews, normalise_review
from lmkit.finetune import (
    LoRALinear,
    SequenceClassifier,
    add_lora,
    count_trainable,
    load_reviews_gpt,
)
from lmkit.model import GPT, GPTConfig

TINY_GPT = GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(autouse=True)
def reference_solutions():
    grading.use_reference("all")
    yield
    grading.use_reference(None)


def test_lora_starts_as_the_base_layer_and_merges_exactly():
    torch.manual_seed(0)
    base = torch.nn.Linear(12, 7)
    layer = LoRALinear(base, r=3, alpha=6.0)
    x = torch.randn(4, 12)
    assert torch.equal(layer(x), base(x)), "B = 0: the adapted layer starts as the base"
    with torch.no_grad():
        layer.B.normal_()
    merged = layer.merged()
    assert torch.allclose(merged(x), layer(x), atol=1e-5)
    assert torch.allclose(merged.weight, base.weight + 2.0 * layer.B @ layer.A)
    assert not base.weight.requires_grad and layer.A.requires_grad and layer.B.requires_grad


def test_lora_follows_the_base_layers_dtype():
    layer = LoRALinear(torch.nn.Linear(8, 4).to(torch.bfloat16), r=2)
    assert layer.A.dtype == layer.B.dtype == torch.bfloat16
    assert layer(torch.randn(3, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16
    assert layer.merged().weight.dtype == torch.bfloat16


def test_add_lora_on_a_gpt_keeps_its_output_and_trains_only_a_and_b():
    torch.manual_seed(0)
    model = GPT(TINY_GPT).eval()
    idx = torch.randint(40, (2, 10))
    before = model(idx)[0]
    names = add_lora(model, ("attn.qkv", "ffn.fc"), r=2, alpha=4.0)
    assert names == ["blocks.0.attn.qkv", "blocks.0.ffn.fc", "blocks.1.attn.qkv", "blocks.1.ffn.fc"]
    assert torch.allclose(model(idx)[0], before)
    trainable, _ = count_trainable(model)
    assert trainable == 2 * (2 * (16 + 48) + 2 * (16 + 64))
    with pytest.raises(ValueError):
        add_lora(GPT(TINY_GPT), ("attn.kqv",))


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_gpt_classifier_ignores_padding_after_the_text(pooling):
    torch.manual_seed(0)
    clf = SequenceClassifier(GPT(TINY_GPT), 3, pooling=pooling).eval()
    idx = torch.randint(40, (1, 6))
    padded = torch.cat([idx, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.tensor([[True] * 6 + [False] * 4])
    assert torch.allclose(clf(idx), clf(padded, mask), atol=1e-6)
    if pooling == "last":
        h = clf.body.encode(idx)
        assert torch.allclose(clf.features(padded, mask), h[:, 5])


def test_bert_classifier_with_cls_pooling():
    torch.manual_seed(0)
    bert = BERT(BertConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16))
    clf = SequenceClassifier(bert, 2, pooling="cls").eval()
    assert clf(torch.randint(40, (3, 8))).shape == (3, 2)
    with pytest.raises(ValueError, match="no \\[CLS\\]"):
        SequenceClassifier(GPT(TINY_GPT), 2, pooling="cls")


def test_shipped_pretrained_model_loads_and_knows_reviews():
    model, tokenizer = load_reviews_gpt()
    assert not model.training and tokenizer.vocab_size == model.config.vocab_size
    ids = torch.tensor([tokenizer.encode("this is one of the best films of the year .")])
    _, loss = model(ids[:, :-1], ids[:, 1:])
    assert loss.item() < 5.0, "much better than chance (ln 1025 ≈ 6.9)"


def test_movie_reviews_are_balanced_and_normalised():
    rt = load_movie_reviews("rotten_tomatoes")
    imdb = load_movie_reviews("imdb")
    assert len(rt) == 8530 and len(imdb) == 25000
    assert sum(y for _, y in rt) == 4265 and sum(y for _, y in imdb) == 12500
    assert all("<br />" not in text for text, _ in imdb[:200])
    assert normalise_review('Great film, really! It\'s "the best".') == (
        'great film , really ! it\'s " the best " .'
    )
    for text, _ in rt[:200]:
        assert normalise_review(text) == normalise_review(normalise_review(text))
    with pytest.raises(ValueError, match="unknown source"):
        load_movie_reviews("yelp")
