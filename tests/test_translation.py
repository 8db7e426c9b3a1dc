"""Chapter 12's reference solutions against PyTorch's own encoder–decoder pieces, an
exhaustive search, and the model's invariants (padding, teacher forcing, bad input)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmkit.translation import (
    CrossAttention,
    DecoderBlock,
    EncoderDecoder,
    Seq2SeqConfig,
    beam_search,
    greedy_search,
    label_smoothed_cross_entropy,
    pad_batch,
)

# Everything here runs on the reference exercises (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")

TINY = Seq2SeqConfig(
    vocab_size=40,
    pad_id=0,
    bos_id=1,
    eos_id=2,
    block_size=16,
    n_enc_layer=2,
    n_dec_layer=2,
    d_model=32,
    n_head=4,
    d_ff=48,
    dropout=0.0,
)


def _copy_into_torch_layer(block: DecoderBlock) -> nn.TransformerDecoderLayer:
    d = block.ln1.d_model
    layer = nn.TransformerDecoderLayer(
        d,
        block.self_attn.n_heads,
        dim_feedforward=block.ffn.d_ff,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.self_attn.qkv.weight)
        layer.self_attn.in_proj_bias.copy_(block.self_attn.qkv.bias)
        layer.self_attn.out_proj.weight.copy_(block.self_attn.proj.weight)
        layer.self_attn.out_proj.bias.copy_(block.self_attn.proj.bias)
        cross = layer.multihead_attn
        cross.in_proj_weight.copy_(torch.cat([block.cross.q.weight, block.cross.kv.weight]))
        cross.in_proj_bias.copy_(torch.cat([block.cross.q.bias, block.cross.kv.bias]))
        cross.out_proj.weight.copy_(block.cross.proj.weight)
        cross.out_proj.bias.copy_(block.cross.proj.bias)
        for ours, theirs in (
            (block.ln1, layer.norm1),
            (block.ln2, layer.norm2),
            (block.ln3, layer.norm3),
        ):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        layer.linear1.weight.copy_(block.ffn.fc.weight)
        layer.linear1.bias.copy_(block.ffn.fc.bias)
        layer.linear2.weight.copy_(block.ffn.proj.weight)
        layer.linear2.bias.copy_(block.ffn.proj.bias)
    return layer.eval()


def _randomise(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("fast", [False, True])
def test_decoder_block_equals_torch_transformer_decoder_layer(fast):
    block = DecoderBlock(32, 4, d_ff=48, fast=fast).eval()
    _randomise(block, 0)
    layer = _copy_into_torch_layer(block)
    g = torch.Generator().manual_seed(1)
    x, memory = torch.randn(3, 6, 32, generator=g), torch.randn(3, 9, 32, generator=g)
    real = torch.ones(3, 9, dtype=torch.bool)
    real[1, 5:], real[2, 2:] = False, False  # padded sources
    ours = block(x, memory, real[:, None, None, :])
    theirs = layer(
        x,
        memory,
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(6),
        tgt_is_causal=True,
        memory_key_padding_mask=~real,  # True = ignore: the opposite polarity
    )
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_cross_attention_equals_torch_multihead_attention_and_keeps_its_weights():
    attn = CrossAttention(32, 4).eval()
    _randomise(attn, 2)
    torch_attn = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        torch_attn.in_proj_weight.copy_(torch.cat([attn.q.weight, attn.kv.weight]))
        torch_attn.in_proj_bias.copy_(torch.cat([attn.q.bias, attn.kv.bias]))
        torch_attn.out_proj.weight.copy_(attn.proj.weight)
        torch_attn.out_proj.bias.copy_(attn.proj.bias)
    g = torch.Generator().manual_seed(3)
    x, memory = torch.randn(2, 5, 32, generator=g), torch.randn(2, 7, 32, generator=g)
    real = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)
    ours = attn(x, memory, real[:, None, None, :])
    theirs, weights = torch_attn(
        x, memory, memory, key_padding_mask=~real, average_attn_weights=False
    )
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn.last_weights, weights, atol=1e-6, rtol=1e-5)
    assert attn.last_weights[1, :, :, 4:].abs().max() == 0  # padding gets no attention


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch_cross_entropy(smoothing):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, 11, generator=g) * 3
    targets = torch.randint(1, 11, (3, 5), generator=g)
    targets[0, 3:] = 0  # padding
    ours = label_smoothed_cross_entropy(logits, targets, smoothing, ignore_index=0)
    theirs = F.cross_entropy(
        logits.reshape(-1, 11), targets.reshape(-1), label_smoothing=smoothing, ignore_index=0
    )
    torch.testing.assert_close(ours, theirs)


def test_label_smoothing_bad_input():
    with pytest.raises(ValueError, match="smoothing must be in"):
        label_smoothed_cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="logits should be targets' shape"):
        label_smoothed_cross_entropy(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="every target is ignore_index"):
        label_smoothed_cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 0.1, 0)


def _table_model(table: dict[tuple[int, ...], list[float]], V: int):
    """next_log_probs from a table: prefix (after BOS) → probabilities of the next token."""

    def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        rows = []
        for p in prefixes.tolist():
            probs = table.get(tuple(p[1:]), [1.0 / V] * V)
            rows.append(torch.tensor(probs, dtype=torch.float64).log())
        return torch.stack(rows).float()

    return next_log_probs


def _random_model(V: int, seed: int):
    """A deterministic random 'language model' over V tokens (token 1 = BOS, 0 = EOS)."""
    weight = torch.randn(V, V, generator=torch.Generator().manual_seed(seed)) * 2

    def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        last = prefixes[:, -1]
        mixed = weight[last] + 0.5 * weight[prefixes.sum(1) % V]  # depends on the whole prefix
        return torch.log_softmax(mixed, dim=-1)

    return next_log_probs


def _exhaustive(step, bos, eos, V, max_len, length_penalty):
    best = []
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                continue  # EOS only at the end; shorter than max_len only when ended
            full = torch.tensor([bos, *seq])  # scored prefix by prefix, not batched
            score = sum(float(step(full[None, : i + 1])[0, full[i + 1]]) for i in range(n))
            best.append((list(seq), score, score / n**length_penalty))
    return max(best, key=lambda h: h[2])


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_with_a_wide_beam_is_exhaustive_search(length_penalty):
    V, max_len = 4, 3
    step = _random_model(V, seed=5)
    seq, score, _ = _exhaustive(step, 1, 0, V, max_len, length_penalty)
    got = beam_search(
        step, 1, 0, beam_size=V**max_len, max_len=max_len, length_penalty=length_penalty
    )
    assert got[0][0] == seq
    assert got[0][1] == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_beam_one_is_greedy(seed):
    step = _random_model(6, seed)
    tokens, score = greedy_search(step, 1, 0, max_len=8)
    (got,) = beam_search(step, 1, 0, beam_size=1, max_len=8)
    assert got[0] == tokens and got[1] == pytest.approx(score)


def test_beam_search_beats_greedy_when_the_best_first_token_leads_nowhere():
    # Token 3 first is likelier (0.5 vs 0.4), but after it the model hesitates; after 4
    # it is sure of EOS. Greedy: 3, 4, EOS → 0.5 · 0.35 · 0.9 = 0.1575; beam 2 also keeps
    # 4 and finds 4, EOS → 0.4 · 0.95 = 0.38.
    V, eos = 6, 0
    table = {
        (): [0.05, 0.0, 0.0, 0.5, 0.4, 0.05],
        (3,): [0.3, 0.0, 0.0, 0.0, 0.35, 0.35],
        (4,): [0.95, 0.0, 0.0, 0.0, 0.0, 0.05],
        (3, 4): [0.9, 0, 0, 0, 0, 0.1],
        (3, 5): [0.9, 0, 0, 0, 0, 0.1],
    }
    table = {k: [max(p, 1e-9) for p in v] for k, v in table.items()}
    step = _table_model(table, V)
    greedy, g_score = greedy_search(step, 1, eos, max_len=3)
    (best, b_score), *_ = beam_search(step, 1, eos, beam_size=2, max_len=3)
    assert greedy == [3, 4, 0]
    assert best == [4, 0]
    assert b_score > g_score
    assert math.exp(b_score) == pytest.approx(0.38, rel=1e-5)


def test_beam_search_bad_input():
    step = _random_model(4, 0)
    with pytest.raises(ValueError, match="beam_size and max_len must be ≥ 1"):
        beam_search(step, 1, 0, beam_size=0)
    with pytest.raises(ValueError, match="beam_size and max_len must be ≥ 1"):
        beam_search(step, 1, 0, max_len=0)


# ------------------------------------------------------------------ the model


def _batch():
    src = pad_batch([[5, 6, 7, 2], [8, 9, 2]], TINY.pad_id)
    tgt = pad_batch([[1, 10, 11, 12, 2], [1, 13, 2]], TINY.pad_id)
    return src, tgt[:, :-1], tgt[:, 1:]


def test_padding_changes_nothing_and_the_loss_ignores_it():
    torch.manual_seed(0)
    model = EncoderDecoder(TINY).eval()
    src, tgt_in, tgt_out = _batch()
    logits, loss = model(src, tgt_in, tgt_out)
    alone, _ = model(src[1:, :3], tgt_in[1:, :2])  # sentence 2 without its padding
    torch.testing.assert_close(logits[1:, :2], alone, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(loss)  # its size at initialisation: test_embedding_init_…
    mask = tgt_out != TINY.pad_id
    want = F.cross_entropy(logits[mask], tgt_out[mask])
    torch.testing.assert_close(loss, want)


def test_decoder_is_causal_and_reads_the_source():
    torch.manual_seed(1)
    model = EncoderDecoder(TINY).eval()
    src, tgt_in, _ = _batch()
    logits, _ = model(src, tgt_in)
    changed = tgt_in.clone()
    changed[0, 3] = 20
    logits2, _ = model(src, changed)
    torch.testing.assert_close(logits2[0, :3], logits[0, :3])  # the future does not leak
    other_src = src.clone()
    other_src[0, 0] = 30
    assert not torch.allclose(model(other_src, tgt_in)[0][0], logits[0])


def test_fast_attention_matches_and_translate_runs():
    torch.manual_seed(2)
    slow = EncoderDecoder(TINY).eval()
    fast = EncoderDecoder(TINY.with_(fast_attention=True)).eval()
    fast.load_state_dict(slow.state_dict())
    src, tgt_in, _ = _batch()
    torch.testing.assert_close(fast(src, tgt_in)[0], slow(src, tgt_in)[0], atol=1e-5, rtol=1e-5)
    src0 = src[0]
    greedy = slow.translate_ids(src0)
    assert greedy == slow.translate_ids(src0, beam_size=1)
    assert len(slow.translate_ids(src0, beam_size=3, max_len=4)) <= 4
    assert all(t not in (TINY.bos_id, TINY.eos_id) for t in greedy)


def test_model_bad_input():
    model = EncoderDecoder(TINY)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(torch.ones(1, 17, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        model(torch.ones(1, 4), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="one sentence at a time"):
        model.next_log_probs_for(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        TINY.with_(n_head=5)
    with pytest.raises(ValueError, match="eos_id must be a token id"):
        TINY.with_(eos_id=40)


def test_nn_transformer_with_the_same_weights_gives_the_same_logits():
    from lmkit.translation import to_torch_transformer

    torch.manual_seed(3)
    model = EncoderDecoder(TINY).eval()
    _randomise(model, 4)
    src, tgt_in, _ = _batch()
    want, _ = model(src, tgt_in)
    theirs = to_torch_transformer(model)
    pad = ~model.source_mask(src)[:, 0, 0]  # True = padding: PyTorch's polarity
    out = theirs(
        model._embed(src),
        model._embed(tgt_in),
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1]),
        tgt_is_causal=True,
        src_key_padding_mask=pad,
        memory_key_padding_mask=pad,
    )
    torch.testing.assert_close(model.head(out), want, atol=1e-4, rtol=1e-4)


def test_embedding_init_is_the_papers_and_its_price_is_measured():
    """reset_parameters' docstring: the shared embedding is N(0, 1/d_model), so the scaled
    tokens are as large as the positions; the tied head then favours the input token, and
    the initial loss is above log V (with GPT-2's 0.02 it would be log V)."""
    config = TINY.with_(vocab_size=500, d_model=128, n_head=4, d_ff=256, block_size=32)
    torch.manual_seed(0)
    model = EncoderDecoder(config).eval()
    std = model.embed.weight.std().item()
    assert std == pytest.approx(128**-0.5, rel=0.05)
    scaled = (model.embed.weight * math.sqrt(128)).std().item()
    positions = model.positions.pow(2).mean().sqrt().item()  # sin² + cos² = 1: RMS √½
    assert positions == pytest.approx(0.5**0.5, rel=0.01)
    assert 0.5 < scaled / positions < 2  # GPT-2's 0.02 would give 0.23 / 0.71

    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, 500, (16, 12), generator=g)
    tgt = torch.randint(3, 500, (16, 13), generator=g)
    tgt[:, 0] = config.bos_id

    def initial_loss() -> float:
        with torch.no_grad():
            return model(src, tgt[:, :-1], tgt[:, 1:])[1].item()

    ours = initial_loss()
    with torch.no_grad():
        logits, _ = model(src, tgt[:, :-1])
    own = (logits.argmax(-1) == tgt[:, :-1]).float().mean().item()
    nn.init.normal_(model.embed.weight, std=0.02)
    gpt2 = initial_loss()
    assert gpt2 == pytest.approx(math.log(500), abs=0.05)
    assert ours > math.log(500) + 1.0, (ours, math.log(500))
    assert own > 0.5  # most positions predict their own input token
