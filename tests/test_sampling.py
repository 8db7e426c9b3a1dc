"""The reference sampler against hand-computed distributions."""

import math

import pytest
import torch

from solutions.sampling import sample_next_token


def _freqs(logits, n=40_000, **kw):
    g = torch.Generator().manual_seed(0)
    out = sample_next_token(logits.repeat(n, 1), generator=g, **kw)
    return torch.bincount(out, minlength=logits.shape[-1]).double() / n


def test_temperature_and_filters_give_the_documented_distribution():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]])
    assert torch.allclose(_freqs(logits), torch.tensor([0.5, 0.3, 0.15, 0.05]).double(), atol=0.01)
    # top_p=0.6 keeps {0, 1} renormalised: 0.625, 0.375.
    assert torch.allclose(
        _freqs(logits, top_p=0.6), torch.tensor([0.625, 0.375, 0, 0]).double(), atol=0.01
    )
    # top_p=0.5 is reached exactly by token 0 alone.
    assert torch.equal(_freqs(logits, top_p=0.5), torch.tensor([1.0, 0, 0, 0]).double())
    # temperature 0.5 squares the probabilities (then renormalises).
    sq = torch.tensor([0.25, 0.09, 0.0225, 0.0025]).double()
    assert torch.allclose(_freqs(logits, temperature=0.5), sq / sq.sum(), atol=0.01)


def test_top_k_ties_and_greedy():
    logits = torch.tensor([[1.0, 2.0, 2.0, 2.0]])
    assert set(_freqs(logits, top_k=2).nonzero().flatten().tolist()) == {1, 2}
    assert sample_next_token(logits, temperature=0).tolist() == [1]
    assert sample_next_token(logits, top_k=1).tolist() == [1]


@pytest.mark.parametrize("kw", [{"temperature": -0.1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 2}])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        sample_next_token(torch.zeros(1, 3), **kw)


def test_stored_shakespeare_model_loads_and_has_its_recorded_loss():
    from lmkit import grading
    from lmkit.data import CorpusUnavailable
    from lmkit.sampling import load_shakespeare_gpt, shakespeare_gpt_info
    from lmkit.train import estimate_loss, prepare_data, preset

    grading.use_reference("all")  # the GPT runs on the reference blocks (reset by conftest)
    model, tokenizer = load_shakespeare_gpt()
    info = shakespeare_gpt_info()
    cpu = preset("cpu")
    assert model.config == cpu.model and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.head.weight is model.embed.tok.weight, "the tied head survives the round trip"
    assert tokenizer.vocab_size == 65 and tokenizer.decode(tokenizer.encode("ROMEO:")) == "ROMEO:"
    assert info["steps"] == cpu.max_steps and info["val_loss"] < 1.9
    assert abs(info["val_loss_float16"] - info["val_loss"]) < 2e-3, "float16 costs nothing"
    logits, _ = model(torch.tensor([tokenizer.encode("ROMEO:\n")]))
    assert logits.shape == (1, 7, 65)
    try:
        stored_tokenizer, _, val_ids = prepare_data("tinyshakespeare")
    except CorpusUnavailable as err:
        pytest.skip(f"tiny-shakespeare is not available offline: {err}")
    assert stored_tokenizer.chars == tokenizer.chars == list(info["chars"])
    # The same validation batches (20 × 12 × 64 characters) the stored loss was measured on.
    loss = estimate_loss(model, val_ids, **info["evaluation"], device="cpu")
    assert abs(loss - info["val_loss_float16"]) < 0.01, (loss, info["val_loss_float16"])
    assert loss < 1.9, "a trained model: chance is ln 65 ≈ 4.17"
