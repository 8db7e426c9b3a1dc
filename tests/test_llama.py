"""Chapter 11's Llama against Hugging Face's LlamaForCausalLM (random weights copied in the
llama.cpp GGUF layout), chapter 1's count extended, and the KV cache."""

from __future__ import annotations

import pytest
import torch

from lmkit.llama import (
    GroupedQueryAttention,
    Llama,
    LlamaConfig,
    count_llama_parameters,
    kv_cache_bytes,
    swiglu_hidden,
)
from lmkit.model import KVCache
from lmkit.sampling import generate
from solutions.llama import fused_rms_norm, rms_norm

transformers = pytest.importorskip("transformers")

# The model runs on the reference exercises here (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")

TINY = LlamaConfig(
    vocab_size=61,
    n_layer=2,
    d_model=48,
    n_head=6,
    n_kv_head=2,
    d_ff=80,
    block_size=32,
    rope_base=100000.0,
    rms_eps=1e-5,
    tie_embeddings=True,
)


def _hf_config(config: LlamaConfig):
    return transformers.LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_kv_head,
        max_position_embeddings=config.block_size,
        rope_theta=config.rope_base,
        rms_norm_eps=config.rms_eps,
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
    )


def _hf(config: LlamaConfig, seed: int = 0):
    torch.manual_seed(seed)
    hf = transformers.LlamaForCausalLM(_hf_config(config)).eval()
    with torch.no_grad():  # random norm gains too, so a swapped norm would show
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return hf


def _llama_cpp_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """convert_hf_to_gguf.py's permutation of q/k rows: halves (i, i + hd/2) of each head
    → interleaved pairs (2i, 2i + 1)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _gguf_tensors(hf, config: LlamaConfig) -> dict[str, torch.Tensor]:
    """HF's weights under GGUF names, with q/k rows permuted the way llama.cpp stores them."""
    sd = hf.state_dict()
    out = {
        "token_embd.weight": sd["model.embed_tokens.weight"],
        "output_norm.weight": sd["model.norm.weight"],
    }
    if not config.tie_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    names = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(config.n_layer):
        for theirs, ours in names.items():
            w = sd[f"model.layers.{i}.{theirs}.weight"]
            if ours == "attn_q":
                w = _llama_cpp_permute(w, config.n_head)
            elif ours == "attn_k":
                w = _llama_cpp_permute(w, config.n_kv_head)
            out[f"blk.{i}.{ours}.weight"] = w.clone()
    return out


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_count_matches_formula_and_huggingface(tied):
    config = LlamaConfig(**{**TINY.__dict__, "tie_embeddings": tied})
    model = Llama(config)
    hf = _hf(config)
    n = sum(p.numel() for p in model.parameters())
    assert n == count_llama_parameters(config) == model.num_parameters()
    assert n == sum(p.numel() for p in hf.parameters())


def test_smollm2_count_on_meta_device():
    config = LlamaConfig.smollm2_135m()
    with torch.device("meta"):
        model = Llama(config)
        hf = transformers.LlamaForCausalLM(_hf_config(config))
    assert count_llama_parameters(config) == model.num_parameters() == 134_515_008
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_huggingface_from_gguf_layout(tied):
    config = LlamaConfig(**{**TINY.__dict__, "tie_embeddings": tied})
    hf = _hf(config, seed=1)
    model = Llama.from_gguf_tensors(config, _gguf_tensors(hf, config))
    assert (model.head.weight is model.embed.weight) == tied
    idx = torch.randint(config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = hf(idx).logits
        got, loss = model(idx)
    assert loss is None
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fast_attention_matches():
    hf = _hf(TINY, seed=3)
    tensors = _gguf_tensors(hf, TINY)
    slow = Llama.from_gguf_tensors(TINY, tensors)
    fast = Llama.from_gguf_tensors(
        LlamaConfig(**{**TINY.__dict__, "fast_attention": True}), tensors
    )
    idx = torch.randint(TINY.vocab_size, (2, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(fast(idx)[0], slow(idx)[0], atol=1e-5, rtol=1e-5)


def test_kv_cache_gives_the_same_logits():
    torch.manual_seed(5)
    model = Llama(TINY).eval()
    idx = torch.randint(TINY.vocab_size, (2, 12), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        want = model(idx)[0]
    cache = KVCache(TINY.n_layer)
    parts = [model.forward_cached(idx[:, a:b], cache) for a, b in ((0, 5), (5, 6), (6, 12))]
    torch.testing.assert_close(torch.cat(parts, dim=1), want, atol=1e-5, rtol=1e-5)
    # GQA's saving: the cache holds n_kv_head heads, not n_head.
    assert cache.keys[1].shape == (2, TINY.n_kv_head, 12, TINY.head_dim)


def test_generate_with_and_without_cache():
    torch.manual_seed(7)
    model = Llama(TINY)
    idx = torch.tensor([[1, 2, 3]])
    a = generate(model, idx, 8, temperature=0.0, use_cache=True)
    b = generate(model, idx, 8, temperature=0.0, use_cache=False)
    assert a.shape == (1, 11)
    assert torch.equal(a, b)


def test_fused_rms_norm_matches_reference():
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    w = torch.rand(16, dtype=torch.float64, requires_grad=True)
    y1 = rms_norm(x, w, 1e-5)
    g1 = torch.autograd.grad(y1.square().sum(), (x, w))
    y2 = fused_rms_norm(x, w, 1e-5)
    g2 = torch.autograd.grad(y2.square().sum(), (x, w))
    torch.testing.assert_close(y1, y2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_shapes_of_the_modern_pieces():
    assert swiglu_hidden(4096) == 11008  # Llama 7B
    config = LlamaConfig.smollm2_135m()
    # 2 (k, v) × 30 layers × 3 heads × 64 dims × 8192 tokens × 2 bytes
    assert kv_cache_bytes(config, 8192) == 2 * 30 * 3 * 64 * 8192 * 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_head": 5},  # 48 % 5
        {"n_kv_head": 4},  # 6 % 4
        {"d_model": 30},  # head_dim 5: RoPE needs pairs
        {"vocab_size": 0},
    ],
)
def test_bad_configs(kwargs):
    with pytest.raises(ValueError):
        LlamaConfig(**{**TINY.__dict__, **kwargs})


def test_bad_inputs():
    model = Llama(TINY)
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(2, 3))
    with pytest.raises(
        ValueError, match=r"0 cached \+ 33 new tokens exceed block_size 32.*last 32"
    ):
        model(torch.zeros(1, 33, dtype=torch.long))
    cache = KVCache(TINY.n_layer)
    model.forward_cached(torch.zeros(1, 30, dtype=torch.long), cache)
    with pytest.raises(ValueError, match=r"30 cached \+ 3 new tokens exceed block_size 32.*last 2"):
        model.forward_cached(torch.zeros(1, 3, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="divisible"):
        GroupedQueryAttention(48, 6, 4)
    tensors = _gguf_tensors(_hf(TINY), TINY)
    del tensors["blk.1.ffn_up.weight"]
    with pytest.raises(ValueError, match="lack 1"):
        Llama.from_gguf_tensors(TINY, tensors)


def _smollm2_or_skip():
    from lmkit.data import CorpusUnavailable
    from lmkit.gguf import smollm2_path

    try:
        return smollm2_path(download_if_missing=False)
    except CorpusUnavailable as err:
        pytest.skip(str(err))


def test_smollm2_from_gguf_knows_paris():
    from lmkit.gguf import load_tokenizer

    path = _smollm2_or_skip()
    model = Llama.from_gguf(path, fast_attention=True)
    assert model.config == LlamaConfig.smollm2_135m(fast_attention=True)
    assert model.num_parameters() == 134_515_008
    assert model.head.weight is model.embed.weight
    tokenizer = load_tokenizer(path)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids)[0][0, -1]
    assert tokenizer.decode(logits.argmax()) == " Paris"
    # The cache path on the real weights: the same logits as the whole prompt at once.
    cache = KVCache(model.config.n_layer)
    model.forward_cached(ids[:, :3], cache)
    cached = model.forward_cached(ids[:, 3:], cache)[0, -1]
    torch.testing.assert_close(cached, logits, atol=1e-4, rtol=1e-4)


def test_fused_attention_twin_equals_the_written_out_reference():
    """Reference mode runs `solutions.llama.fused_gqa_forward` for fast models (no repeat_kv
    copies, no mask for one new token, is_causal with an empty cache); it must give the
    written-out reference's outputs, with and without a cache, for every kind of step."""
    import solutions.llama as ref
    from lmkit import grading

    assert grading.get_exercise("11.4").runner() is ref.fused_gqa_forward
    torch.manual_seed(8)
    attn = GroupedQueryAttention(48, 6, 2, rope_base=1e4, fast=True)
    x = torch.randn(2, 12, 48)
    want = ref.GroupedQueryAttention.forward(attn, x)
    torch.testing.assert_close(ref.fused_gqa_forward(attn, x), want)
    caches = KVCache(3), KVCache(3)
    for a, b in ((0, 5), (5, 6), (6, 12)):  # prefill, one token, a chunk after a prefix
        got = ref.fused_gqa_forward(attn, x[:, a:b], caches[0], 2)
        written = ref.GroupedQueryAttention.forward(attn, x[:, a:b], caches[1], 2)
        torch.testing.assert_close(got, written)
        torch.testing.assert_close(got, want[:, a:b], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(caches[0].keys[2], caches[1].keys[2])
    with pytest.raises(ValueError, match="x should have shape"):
        ref.fused_gqa_forward(attn, torch.randn(2, 12, 40))


def test_last_only_logits_are_the_last_row():
    torch.manual_seed(9)
    model = Llama(TINY).eval()
    idx = torch.randint(TINY.vocab_size, (2, 7), generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        full = model(idx)[0]
        last, loss = model(idx, last_only=True)
    assert last.shape == (2, 1, TINY.vocab_size) and loss is None
    torch.testing.assert_close(last, full[:, -1:])
    cache = KVCache(TINY.n_layer)
    torch.testing.assert_close(model.forward_cached(idx, cache, last_only=True), full[:, -1:])
    with pytest.raises(ValueError, match="last_only computes no loss"):
        model(idx, idx, last_only=True)
