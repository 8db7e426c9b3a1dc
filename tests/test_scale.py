"""Chapter 1's reference solutions against independent references: Hugging Face
``transformers`` models, torch's own layers, torch's FLOP counter and a real AdamW step."""

from __future__ import annotations

import pytest
import torch

from lmkit.config import PRESETS, TransformerConfig
from lmkit.scale import build_torch_model, human, measure_training_flops
from solutions.scale import count_parameters, flops_per_token, training_memory

transformers = pytest.importorskip("transformers")


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_gpt2_sizes_match_transformers(name):
    cfg = PRESETS[name]
    hf = transformers.GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
    )
    with torch.device("meta"):
        model = transformers.GPT2Model(hf)
    assert count_parameters(cfg) == _numel(model)


@pytest.mark.parametrize("name", ["bert-base", "bert-large"])
def test_bert_sizes_match_transformers(name):
    cfg = PRESETS[name]
    hf = transformers.BertConfig(
        vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.block_size,
        hidden_size=cfg.n_embd,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        intermediate_size=cfg.ffn_dim,
        type_vocab_size=cfg.n_segments,
    )
    with torch.device("meta"):
        model = transformers.BertModel(hf)  # with the pooler, as BERT's "110M"
    assert count_parameters(cfg) == _numel(model)


def test_published_sizes():
    assert count_parameters(PRESETS["gpt2"]) == 124_439_808
    assert count_parameters(PRESETS["bert-base"]) == 109_482_240
    # GPT-3 (Brown et al., 2020): "175B"; nanoGPT's Shakespeare models: 10.65M and 0.80M
    # parameters, reported without position embeddings.
    assert round(count_parameters(PRESETS["gpt3"]) / 1e9) == 175
    for name, reported in [("shakespeare-char", 10.65e6), ("shakespeare-char-cpu", 0.80e6)]:
        cfg = PRESETS[name]
        non_embedding = count_parameters(cfg) - cfg.block_size * cfg.n_embd
        assert round(non_embedding / 1e6, 2) == reported / 1e6


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_count_matches_torch_layers(name):
    assert count_parameters(PRESETS[name]) == _numel(build_torch_model(PRESETS[name]))


SMALL = TransformerConfig(vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=64)


@pytest.mark.parametrize("seq_len", [None, 8])
def test_flops_match_torch_flop_counter_exactly_without_biases(seq_len):
    cfg = SMALL.with_(bias=False)
    # The formula counts 6 FLOPs for every parameter, the LayerNorm gains included;
    # torch's counter sees only matrix products.
    layer_norm_gains = (2 * cfg.n_layer + 1) * cfg.n_embd
    measured = measure_training_flops(cfg, seq_len, batch_size=2)
    assert measured == flops_per_token(cfg, seq_len) - 6 * layer_norm_gains


def test_flops_close_to_torch_flop_counter_with_biases():
    measured = measure_training_flops(SMALL)
    assert measured == pytest.approx(flops_per_token(SMALL), rel=0.02)


def test_gpt3_training_compute_matches_paper():
    # Brown et al. (2020), Table D.1: GPT-3 175B used 3.14e23 FLOPs for 300B tokens.
    # 6·N·D (no attention term), as the paper counts it.
    n = count_parameters(PRESETS["gpt3"])
    assert 6 * n * 300e9 == pytest.approx(3.14e23, rel=0.005)
    assert flops_per_token(PRESETS["gpt3"]) * 300e9 == pytest.approx(3.14e23, rel=0.05)


@pytest.mark.parametrize("dtype, precision", [(torch.float32, "fp32"), (torch.bfloat16, "bf16")])
def test_memory_matches_a_real_adamw_step(dtype, precision):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    model = model.to(dtype)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(5, 32, dtype=dtype)).pow(2).mean().backward()
    opt.step()
    n = _numel(model)
    size = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    state = [t for s in opt.state.values() for k, t in s.items() if k.startswith("exp_avg")]
    got = training_memory(n, precision)
    assert got["weights"] == size(model.parameters())
    assert got["gradients"] == size(p.grad for p in model.parameters())
    assert got["optimizer"] == size(state)
    assert got["total"] == got["weights"] + got["gradients"] + got["optimizer"]


def test_mixed_precision_matches_zero_paper():
    # Rajbhandari et al. (2020): mixed-precision Adam = 16 bytes/param; 7.5B → 120 GB.
    assert training_memory(7_500_000_000, "mixed")["total"] == 120 * 10**9
    with pytest.raises(ValueError, match="precision"):
        training_memory(10, "fp8")


def test_human():
    assert human(124_439_808) == "124.4M"
    assert human(174_604_259_328) == "174.6B"
    assert human(3.14e23, "FLOP") == "314.0ZFLOP"
    assert human(16e9, "B") == "16.0GB"
    assert human(512) == "512"
