"""The GPT of chapter 6 against chapter 1's count, Hugging Face GPT-2 and its own KV cache."""

from __future__ import annotations

import pytest
import torch

from lmkit import grading
from lmkit.model import GPT, GPTConfig, KVCache
from solutions.scale import count_parameters

transformers = pytest.importorskip("transformers")
TINY = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32)


# The model runs on the reference exercises here (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")


@pytest.mark.parametrize(
    "config",
    [TINY, TINY.with_(bias=False), TINY.with_(d_ff=40), GPTConfig.preset("shakespeare-char")],
)
def test_parameter_count_matches_chapter_1(config):
    assert GPT(config).num_parameters() == count_parameters(config)


def test_init_scales_residual_projections():
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("shakespeare-char"))
    std = model.blocks[0].attn.proj.weight.std().item()
    assert std == pytest.approx(0.02 / (2 * 6) ** 0.5, rel=0.05)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.head.weight is model.embed.tok.weight


def test_logits_match_huggingface_gpt2(tmp_path):
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        vocab_size=50,
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0,
        embd_pdrop=0,
        attn_pdrop=0,
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = GPT.from_hf(hf).eval()
    idx = torch.randint(50, (3, 16))
    want = hf(idx).logits
    got, _ = ours(idx)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)
    # The same through a checkpoint directory, as saved by transformers.
    hf.save_pretrained(tmp_path)
    again = GPT.from_pretrained(tmp_path).eval()
    assert torch.allclose(again(idx)[0], want, atol=1e-5, rtol=1e-4)


def test_from_pretrained_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("fast", [False, True])
def test_kv_cache_gives_the_same_logits(fast):
    torch.manual_seed(0)
    model = GPT(TINY.with_(fast_attention=fast)).eval()
    idx = torch.randint(50, (2, 12))
    full, _ = model(idx)
    cache = KVCache(TINY.n_layer)
    parts = [model.forward_cached(idx[:, :5], cache)]
    for t in range(5, 12):
        parts.append(model.forward_cached(idx[:, t : t + 1], cache))
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="block_size"):
        model.forward_cached(torch.zeros(2, 5, dtype=torch.long), cache)


def test_last_only_logits_are_the_last_row():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    idx = torch.randint(50, (2, 9))
    with torch.no_grad():
        full, _ = model(idx)
        last, loss = model(idx, last_only=True)
    assert last.shape == (2, 1, 50) and loss is None
    torch.testing.assert_close(last, full[:, -1:])
    cached = model.forward_cached(idx, KVCache(TINY.n_layer), last_only=True)
    torch.testing.assert_close(cached, full[:, -1:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="last_only computes no loss"):
        model(idx, idx, last_only=True)


def test_loss_is_lm_loss_and_near_log_vocab_at_init():
    torch.manual_seed(0)
    model = GPT(TINY)
    idx, targets = torch.randint(50, (2, 4, 16))
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(50.0)).item(), rel=0.05)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown GPT preset"):
        GPTConfig.preset("bert-base")
    with pytest.raises(ValueError, match="gelu"):
        GPTConfig(gelu="relu")
    assert GPTConfig.preset("gpt2").gelu == "tanh"


def test_generate_with_and_without_cache_agree_beyond_block_size():
    from lmkit.sampling import generate

    torch.manual_seed(0)
    model = GPT(TINY).eval()
    prompt = torch.randint(50, (2, 5))
    cached = generate(model, prompt, 20, temperature=0.0)  # 25 tokens > block_size 16
    plain = generate(model, prompt, 20, temperature=0.0, use_cache=False)
    assert cached.shape == (2, 25) and torch.equal(cached, plain)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = generate(model, prompt, 10, top_k=5, generator=g1)
    b = generate(model, prompt, 10, top_k=5, generator=g2, use_cache=False)
    assert torch.equal(a, b)


def test_generate_crops_a_long_prompt_and_rejects_bad_input():
    from lmkit.sampling import generate

    model = GPT(TINY).eval()
    long_prompt = torch.randint(50, (1, 40))
    out = generate(model, long_prompt, 3, temperature=0.0)
    assert out.shape == (1, 43) and torch.equal(out[:, :40], long_prompt)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, long_prompt, -1)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        generate(model, torch.zeros(3, dtype=torch.long), 1)


def test_generate_stops_once_every_row_has_its_stop_token():
    from lmkit.sampling import generate

    torch.manual_seed(0)
    model = GPT(TINY).eval()
    prompt = torch.randint(50, (2, 4))
    full = generate(model, prompt, 12, temperature=0.0)
    new = full[:, 4:]
    stop = int(new[0, 2])  # row 0's third token; row 1 makes it at some step too, or never
    first = [next((t for t in range(12) if new[r, t] == stop), None) for r in range(2)]
    stopped = generate(model, prompt, 12, temperature=0.0, stop_token=stop)
    last = 12 if None in first else max(first) + 1  # stops after the slower row's stop
    assert stopped.shape == (2, 4 + last) and torch.equal(stopped, full[:, : 4 + last])
    never = generate(model, prompt, 12, temperature=0.0, stop_token=999)  # not in the vocab
    assert torch.equal(never, full)


@pytest.mark.parametrize("mode", ["all", "missing"])
def test_compiles_to_one_graph(mode):
    """torch.compile must see the whole forward pass: a graph break (an import, say, in the
    exercise dispatch) would make the block loop run eagerly and cost the GPU its speed-up."""
    grading.use_reference(mode)
    torch._dynamo.reset()
    model = GPT(TINY.with_(fast_attention=True))
    idx = torch.randint(50, (2, 16))
    explained = torch._dynamo.explain(model)(idx, idx)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [
        r.reason for r in explained.break_reasons
    ]
