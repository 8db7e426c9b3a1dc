"""Chapter 10: the classifier, LoRA layers and their merge, the shipped pre-trained model and
the labelled reviews."""

from __future__ import annotations

import pytest
import torch

from lmkit.bert import BERT, BertConfig
from lmkit.data import load_movie_reviews, normalise_review
from lmkit.finetune import (
    BagOfWords,
    LoRALinear,
    SequenceClassifier,
    add_lora,
    count_trainable,
    encode_sentences,
    fine_tune,
    fit_logistic_regression,
    load_reviews_gpt,
    predict,
    sentence_lm_loss,
    standard_error,
    train_lm,
)
from lmkit.model import GPT, GPTConfig

TINY_GPT = GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16)


# The model runs on the reference exercises here (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")


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


def test_bag_of_words_vocabulary_comes_from_the_training_texts_only():
    bow = BagOfWords(["A good film .", "a bad film, really"], min_count=1)
    assert list(bow.vocab) == sorted({"a", "good", "film", ".", "bad", ",", "really"})
    x = bow(["Good, good film!", "unseen words only"])
    assert x.shape == (2, len(bow)) and x.dtype == torch.float32
    assert x[0].sum() == 3 and x[0, bow.vocab["good"]] == 1, "binary: 'good' twice counts once"
    assert x[1].sum() == 0, "words outside the training vocabulary are ignored"
    assert list(BagOfWords(["a good film", "a bad film"], min_count=2).vocab) == ["a", "film"]


def test_logistic_regression_reaches_the_penalised_optimum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] - 2 * x[:, 1] + 0.3 * torch.randn(200, generator=g) > 0).long()
    layer = fit_logistic_regression(x, y, weight_decay=0.01)
    w, b = layer.weight.clone().requires_grad_(), layer.bias.clone().requires_grad_()
    loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 0.005 * w.square().sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4, "a stationary point"
    assert ((layer(x).argmax(-1) == y).float().mean() > 0.9).item()
    strong = fit_logistic_regression(x, y, weight_decay=10.0)
    assert strong.weight.norm() < 0.2 * layer.weight.norm(), "weight decay shrinks the weights"


def test_standard_error():
    assert standard_error(0.5, 2000) == pytest.approx(0.01118, abs=1e-5)
    assert standard_error(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        standard_error(1.2, 10)


def _tiny_sentences(n, seed=0):
    """Token sentences whose label is whether token 5 occurs: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(6, 40, (n, 12), generator=g)
    y = torch.randint(2, (n,), generator=g)
    idx[y == 1, 3] = 5
    lengths = torch.randint(6, 13, (n,), generator=g)
    mask = torch.arange(12) < lengths[:, None]
    return idx.masked_fill(~mask, 0), mask, y


def test_encode_sentences_pads_at_the_end():
    _, tokenizer = load_reviews_gpt()
    idx, mask, y = encode_sentences(tokenizer, [("A fine film.", 1), ("x " * 100, 0)], 16)
    assert idx.shape == mask.shape == (2, 16) and y.tolist() == [1, 0]
    n = int(mask[0].sum())
    assert idx[0, :n].tolist() == tokenizer.encode("a fine film .")
    assert (idx[0, n:] == tokenizer.special_tokens["<|pad|>"]).all() and mask[1].all()


def test_predict_and_lm_loss_ignore_the_trimmed_padding():
    torch.manual_seed(0)
    model = GPT(TINY_GPT).eval()
    idx, mask, _ = _tiny_sentences(9)
    clf = SequenceClassifier(model, 2).eval()
    with torch.no_grad():
        want = clf(idx, mask)
    assert torch.allclose(predict(clf, idx, mask, batch_size=4), want, atol=1e-5)
    logits = model(idx[:, :-1])[0]
    targets = idx[:, 1:].masked_fill(~mask[:, 1:], -100)
    direct = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert sentence_lm_loss(model, idx, mask, batch_size=4) == pytest.approx(direct.item(), 1e-5)


def test_fine_tune_learns_stops_early_and_keeps_the_best_weights():
    torch.manual_seed(0)
    clf = SequenceClassifier(GPT(TINY_GPT), 2)
    train, val = _tiny_sentences(64, seed=1), _tiny_sentences(64, seed=2)
    run = fine_tune(clf, train, val, lr=3e-3, max_steps=200, eval_every=10, patience=3)
    assert run["val_accuracy"] > 0.75, run  # chance is 0.5
    assert run["best_step"] == min(run["history"], key=lambda h: h[1])[0]
    steps = [h[0] for h in run["history"]]
    assert steps == list(range(10, run["steps_run"] + 1, 10))
    if run["steps_run"] < 200:  # stopped: the last 3 evaluations did not improve
        assert run["steps_run"] == run["best_step"] + 30
    logits = predict(clf, *val[:2])
    loss = torch.nn.functional.cross_entropy(logits, val[2]).item()
    assert loss == pytest.approx(run["val_loss"], abs=1e-5), "the best weights are back"


def test_train_lm_is_offered_a_budget_and_keeps_its_best_evaluation():
    torch.manual_seed(0)
    model = GPT(TINY_GPT)
    ids = torch.arange(6, 26).repeat(30)  # a cycle: easy to learn
    val = (ids[:96].view(6, 16), torch.ones(6, 16, dtype=torch.bool))
    run = train_lm(model, ids, val, lr=3e-3, max_steps=60, eval_every=20, patience=2)
    assert [h[0] for h in run["history"]] == [0, 20, 40, 60]
    assert run["val_loss"] < run["history"][0][1] - 1.0
    assert sentence_lm_loss(model, *val) == pytest.approx(run["val_loss"], abs=1e-5)


def test_train_lm_min_delta_says_what_counts_as_progress():
    torch.manual_seed(0)
    model = GPT(TINY_GPT)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.arange(6, 26).repeat(30)
    val = (ids[:96].view(6, 16), torch.ones(6, 16, dtype=torch.bool))
    run = train_lm(
        model, ids, val, lr=3e-3, max_steps=100, eval_every=10, patience=2, min_delta=100.0
    )
    assert [h[0] for h in run["history"]] == [0, 10, 20], "no decrease of 100 nats: stop"
    assert run["best_step"] == 0 and run["steps_run"] == 20
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), (
        "the best evaluation was before training: those weights are back"
    )
