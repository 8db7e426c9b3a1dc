"""Chapter 5's block against PyTorch's own layers: LayerNorm, GELU FFN, TransformerEncoderLayer.

References are tested directly; the lmkit modules are tested in reference mode (so their
forward passes dispatch to the solutions), and once in learner mode with a learner's
natural implementation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmkit import grading
from lmkit.block import Block, FeedForward, LayerNorm
from lmkit.checks.ch05 import seeded_block, torch_block
from solutions.block import layer_norm
from solutions.scale import count_parameters

# ------------------------------------------------------------------------- layer_norm


@pytest.mark.parametrize("shape", [(7,), (3, 16), (2, 5, 32), (2, 2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_matches_torch_layernorm(shape, bias):
    torch.manual_seed(0)
    C = shape[-1]
    ref = nn.LayerNorm(C, bias=bias)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    x = 5 + 3 * torch.randn(*shape)
    got = layer_norm(x, ref.weight, ref.bias, ref.eps)
    torch.testing.assert_close(got, ref(x), rtol=1e-5, atol=1e-5)


def test_layer_norm_gradients_match_torch():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, dtype=torch.float64, requires_grad=True)
    grads = []
    for fn in (layer_norm, lambda *a: F.layer_norm(a[0], (10,), *a[1:])):
        out = fn(x, w, b, 1e-5)
        grads.append(torch.autograd.grad((out * out.detach().sin()).sum(), (x, w, b)))
    for mine, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_layer_norm_of_a_constant_row_is_the_bias():
    w, b = torch.full((8,), 2.0), torch.arange(8.0)
    out = layer_norm(torch.full((3, 8), 7.0), w, b)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, b.expand(3, 8))


def test_layer_norm_keeps_dtype():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = torch.randn(2, 8).to(dtype)
        assert layer_norm(x, torch.ones(8, dtype=dtype), None).dtype == dtype


def test_layernorm_module(reference_solutions):
    ours, theirs = LayerNorm(12), nn.LayerNorm(12)
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    assert (ours.weight == 1).all() and (ours.bias == 0).all()
    x = torch.randn(3, 4, 12)
    torch.testing.assert_close(ours(x), theirs(x))
    no_bias = LayerNorm(12, bias=False)
    assert no_bias.bias is None and len(list(no_bias.parameters())) == 1
    torch.testing.assert_close(no_bias(x), nn.LayerNorm(12, bias=False)(x))


def test_layernorm_module_rejects_the_wrong_width(reference_solutions):
    with pytest.raises(ValueError, match=r"\(\.\.\., 12\).*\(3, 4, 10\)"):
        LayerNorm(12)(torch.randn(3, 4, 10))


# ------------------------------------------------------------------------ FeedForward


def test_feed_forward_shapes_and_default_width():
    ffn = FeedForward(16)
    assert (ffn.fc.in_features, ffn.fc.out_features) == (16, 64)
    assert (ffn.proj.in_features, ffn.proj.out_features) == (64, 16)
    assert FeedForward(16, 40).d_ff == 40
    assert FeedForward(16, bias=False).fc.bias is None
    with pytest.raises(ValueError, match="approximate"):
        FeedForward(16, approximate="sigmoid")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_feed_forward_matches_torch_layers(reference_solutions, approximate):
    torch.manual_seed(0)
    ffn = FeedForward(16, 24, approximate=approximate)
    ref = nn.Sequential(ffn.fc, nn.GELU(approximate=approximate), ffn.proj)
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(ffn(x), ref(x))
    assert ffn(x[0]).shape == (7, 16)  # any leading dimensions


def test_gpt2_uses_the_tanh_gelu():
    """FeedForward(approximate="tanh") is what GPT-2's weights expect (transformers' gelu_new)."""
    transformers = pytest.importorskip("transformers")
    from transformers.activations import ACT2FN

    assert transformers.GPT2Config().activation_function == "gelu_new"
    z = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(ACT2FN["gelu_new"](z), F.gelu(z, approximate="tanh"))
    torch.testing.assert_close(ACT2FN[transformers.BertConfig().hidden_act](z), F.gelu(z))


# ------------------------------------------------------------------------------ Block


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("fast", [False, True])
def test_block_matches_transformer_encoder_layer(reference_solutions, norm_first, causal, fast):
    block = seeded_block(32, 4, norm_first=norm_first, causal=causal, fast=fast)
    ref = torch_block(block)
    x = torch.randn(3, 9, 32)
    T = x.shape[1]
    blocked = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None
    want = ref(x, src_mask=blocked, is_causal=causal)
    torch.testing.assert_close(block(x), want, rtol=1e-4, atol=1e-5)


def test_block_padding_mask_matches_torch(reference_solutions):
    block = seeded_block(16, 2, causal=False, norm_first=False)
    x = torch.randn(2, 5, 16)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    want = torch_block(block)(x, src_key_padding_mask=pad)
    got = block(x, ~pad[:, None, None, :])
    torch.testing.assert_close(got[~pad], want[~pad], rtol=1e-4, atol=1e-5)


def test_block_structure_and_parameter_count():
    d = 48
    block = Block(d, 4)
    assert isinstance(block.ln1, LayerNorm) and isinstance(block.ln2, LayerNorm)
    assert isinstance(block.ffn, FeedForward) and block.ffn.d_ff == 4 * d
    assert block.causal and block.norm_first and not block.attn.causal
    n = sum(p.numel() for p in block.parameters())
    assert n == 12 * d * d + 13 * d
    assert n == sum(p.numel() for p in nn.TransformerEncoderLayer(d, 4, 4 * d).parameters())
    # chapter 1: one more layer adds exactly one block
    from lmkit.config import TransformerConfig

    cfg = TransformerConfig(vocab_size=10, block_size=8, n_layer=1, n_head=4, n_embd=d)
    assert count_parameters(cfg.with_(n_layer=2)) - count_parameters(cfg) == n
    no_bias = Block(d, 4, bias=False)
    assert sum(p.numel() for p in no_bias.parameters()) == 12 * d * d + 2 * d  # LN gains


@pytest.mark.parametrize("d_model, n_heads", [(10, 3), (64, 0), (6, 4)])
def test_block_with_heads_not_dividing_the_width_is_a_clear_error(d_model, n_heads):
    with pytest.raises(ValueError, match=rf"d_model \({d_model}\).*divisible.*\({n_heads}\)"):
        Block(d_model, n_heads)


def test_block_rejects_inputs_of_the_wrong_width(reference_solutions):
    with pytest.raises(ValueError, match="16"):
        Block(16, 4)(torch.randn(2, 3, 8))


@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_output_ignores_later_tokens(reference_solutions, norm_first):
    torch.manual_seed(0)
    decoder = Block(16, 4, norm_first=norm_first).eval()
    encoder = Block(16, 4, causal=False, norm_first=norm_first).eval()
    x = torch.randn(2, 8, 16)
    for t in range(8):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn(2, 7 - t, 16)
        with torch.no_grad():
            assert torch.equal(decoder(x)[:, : t + 1], decoder(changed)[:, : t + 1])
            if t < 7:
                assert not torch.allclose(encoder(x)[:, : t + 1], encoder(changed)[:, : t + 1])


def test_causal_block_gradient_is_lower_triangular(reference_solutions):
    torch.manual_seed(0)
    block = Block(8, 2).eval()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda x: block.double()(x), x)
    influence = jac.abs().sum(dim=(0, 2, 3, 5))  # (T_out, T_in)
    assert (influence.triu(1) == 0).all() and (influence.diagonal() > 0).all()


def test_block_dropout_only_in_training(reference_solutions):
    torch.manual_seed(0)
    block = Block(16, 4, dropout=0.5)
    x = torch.randn(2, 6, 16)
    block.eval()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))


# ------------------------------------------------------- the loop, as a learner meets it


def learner_block_forward(self, x, mask=None):
    """A correct Block.forward written the natural way: through lmkit's modules."""
    from lmkit.attention import causal_mask

    if self.causal:
        c = causal_mask(x.shape[1]).to(x.device)
        mask = c if mask is None else mask & c
    if self.norm_first:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.ffn(self.ln2(x))
    x = self.ln1(x + self.attn(x, mask))
    return self.ln2(x + self.ffn(x))


def test_check_names_the_unfinished_exercise_a_block_depends_on():
    with pytest.raises(grading.ExerciseNotImplemented, match=r"uses Exercise (4\.\d|5\.\d)"):
        grading.check("5.3", learner_block_forward)


def test_learner_block_passes_with_references_for_missing_pieces(capsys):
    grading.use_reference("missing")
    grading.check("5.3", learner_block_forward)
    assert capsys.readouterr().out == "✓ Exercise 5.3 Block.forward\n"


# ------------------------------------------- reference mode runs the fused LayerNorm twin


@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_layer_norm_twin_equals_the_written_out_reference(offset, with_bias):
    """Both agree with a float64 LayerNorm to float32 rounding (which grows with a large
    offset: the inputs themselves carry only ~offset·1e-7 of precision)."""
    import solutions.block as ref

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, 32, generator=g, dtype=torch.float64) * 3 + offset
    w = torch.randn(32, generator=g, dtype=torch.float64)
    b = torch.randn(32, generator=g, dtype=torch.float64) if with_bias else None
    up = torch.randn(4, 7, 32, generator=g, dtype=torch.float64)
    tol = 1e-5 * (1 + offset / 3)

    def run(fn, dtype):
        leaves = [t.to(dtype).requires_grad_() for t in (x, w, b) if t is not None]
        y = fn(*(leaves + [None])[:3], 1e-5)
        return [y.double(), *(gr.double() for gr in torch.autograd.grad((y * up).sum(), leaves))]

    def torch_layer_norm(x, w, b, eps):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, eps)

    exact = run(torch_layer_norm, torch.float64)
    for fn in (ref.layer_norm, ref.fused_layer_norm):
        for got, want in zip(run(fn, torch.float32), exact, strict=True):
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_reference_mode_runs_the_fused_twin_and_checks_test_the_written_out_one():
    import solutions.block as ref
    from lmkit.block import layer_norm

    ex = grading.get_exercise("5.1")
    assert ex.runner() is ref.fused_layer_norm
    assert grading.reference("5.1") is ref.layer_norm  # what check("5.1") compares with
    x = torch.randn(2, 3, 8)
    w, b = torch.ones(8), torch.zeros(8)
    grading.use_reference("all")
    torch.testing.assert_close(layer_norm(x, w, b), torch.nn.functional.layer_norm(x, (8,)))
    grading.use_reference(None)
    with pytest.raises(NotImplementedError, match="Exercise 5.1"):
        layer_norm(x, w, b)  # learner mode: the learner's (stub) body runs
