"""Chapter 5's pitfall box about ``torch.nn.Transformer``, proved against the reference solutions.

One ``nn.TransformerEncoderLayer`` configured as a GPT block (``batch_first=True``,
``norm_first=True``, ``activation="gelu"``, ``dropout=0``, a causal mask in torch.nn's polarity)
computes the same function as ``lmkit.block.Block``; each default or mask mistake the chapter
names computes a different one, and ``nn.Transformer`` is an encoder–decoder.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmkit import grading
from lmkit.attention import causal_mask
from lmkit.block import Block

D, HEADS, T = 32, 4, 8
GPT_OPTIONS = {"batch_first": True, "norm_first": True, "activation": "gelu"}


@pytest.fixture(autouse=True)
def reference_mode():
    grading.use_reference("all")


def as_torch_layer(block: Block, **options) -> nn.TransformerEncoderLayer:
    """A TransformerEncoderLayer holding ``block``'s weights (written here, not the check's)."""
    layer = nn.TransformerEncoderLayer(
        block.attn.d_model,
        block.attn.n_heads,
        dim_feedforward=block.ffn.d_ff,
        dropout=0.0,
        layer_norm_eps=block.ln1.eps,
        **options,
    )
    modules = {
        "self_attn.in_proj_": block.attn.qkv,
        "self_attn.out_proj.": block.attn.proj,
        "linear1.": block.ffn.fc,
        "linear2.": block.ffn.proj,
        "norm1.": block.ln1,
        "norm2.": block.ln2,
    }
    state = {}
    for prefix, module in modules.items():
        state[prefix + "weight"] = module.weight.detach()
        state[prefix + "bias"] = module.bias.detach()
    layer.load_state_dict(state, strict=True)
    return layer.eval()


def gpt_block(seed: int = 0, **kw) -> Block:
    torch.manual_seed(seed)
    block = Block(D, HEADS, **kw).eval()
    with torch.no_grad():  # non-trivial LayerNorms, so that a swapped norm would show
        for ln in (block.ln1, block.ln2):
            ln.weight.copy_(1 + 0.3 * torch.randn(D))
            ln.bias.copy_(0.2 * torch.randn(D))
    return block


def inputs(batch: int = T) -> torch.Tensor:
    return torch.randn(batch, T, D, generator=torch.Generator().manual_seed(1))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach() - b.detach()).abs().max().item()


# ----------------------------------------------------------------- the right configuration


def float_causal_mask() -> torch.Tensor:
    return nn.Transformer.generate_square_subsequent_mask(T)


RIGHT_USES = {
    "bool mask, True = blocked": lambda layer, x: layer(x, src_mask=~causal_mask(T)),
    "float mask 0 / -inf": lambda layer, x: layer(x, src_mask=float_causal_mask()),
    "mask and is_causal hint": lambda layer, x: layer(x, src_mask=~causal_mask(T), is_causal=True),
}


@pytest.mark.parametrize("use", RIGHT_USES, ids=list(RIGHT_USES))
@pytest.mark.parametrize("grad", [True, False], ids=["plain path", "no_grad fast path"])
def test_configured_layer_equals_the_gpt_block(use, grad):
    block = gpt_block()
    layer = as_torch_layer(block, **GPT_OPTIONS)
    x = inputs()
    with torch.set_grad_enabled(grad):
        want = block(x)
        got = RIGHT_USES[use](layer, x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_generate_square_subsequent_mask_is_the_additive_form_of_causal_mask():
    want = torch.zeros(T, T).masked_fill(~causal_mask(T), float("-inf"))
    assert torch.equal(float_causal_mask(), want)


def test_sequence_first_layer_equals_the_block_on_transposed_inputs():
    block = gpt_block()
    layer = as_torch_layer(block, norm_first=True, activation="gelu")  # batch_first=False
    x = inputs(batch=3)
    got = layer(x.transpose(0, 1), src_mask=~causal_mask(T)).transpose(0, 1)
    torch.testing.assert_close(got, block(x), rtol=1e-4, atol=1e-5)


def test_configured_stack_equals_a_stack_of_blocks():
    """nn.TransformerEncoder over configured layers is a GPT's block stack (no final norm)."""
    blocks = [gpt_block(seed) for seed in range(3)]
    layers = [as_torch_layer(b, **GPT_OPTIONS) for b in blocks]
    stack = nn.TransformerEncoder(layers[0], num_layers=3, enable_nested_tensor=False)
    stack.layers = nn.ModuleList(layers)  # the constructor deep-copies one layer
    x = want = inputs()
    for b in blocks:
        want = b(want)
    got = stack(x, mask=~causal_mask(T), is_causal=True)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_post_norm_encoder_layer_defaults_to_a_bert_block():
    """norm_first=False (the default) is the post-norm, bidirectional block of BERT."""
    block = gpt_block(causal=False, norm_first=False)
    layer = as_torch_layer(block, batch_first=True, activation="gelu")
    x = inputs()
    torch.testing.assert_close(layer(x), block(x), rtol=1e-4, atol=1e-5)


def test_tanh_gelu_can_be_passed_as_a_function():
    block = gpt_block()
    block.ffn.approximate = "tanh"  # GPT-2's GELU
    options = {**GPT_OPTIONS, "activation": lambda h: F.gelu(h, approximate="tanh")}
    layer = as_torch_layer(block, **options)
    x = inputs()
    torch.testing.assert_close(layer(x, src_mask=~causal_mask(T)), block(x), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- the mistakes


MISTAKES = {
    "batch_first left False": ({"norm_first": True, "activation": "gelu"}, "blocked"),
    "norm_first left False": ({"batch_first": True, "activation": "gelu"}, "blocked"),
    "ReLU left as activation": ({"batch_first": True, "norm_first": True}, "blocked"),
    "SDPA polarity (True = allowed)": (GPT_OPTIONS, "allowed"),
    "0/1 float mask": (GPT_OPTIONS, "float01"),
    "no mask": (GPT_OPTIONS, None),
}


def _mask(kind: str | None) -> torch.Tensor | None:
    return {
        "blocked": ~causal_mask(T),
        "allowed": causal_mask(T),
        "float01": causal_mask(T).float(),
        None: None,
    }[kind]


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_each_mistake_computes_something_else(mistake):
    options, mask = MISTAKES[mistake]
    block = gpt_block()
    x = inputs()  # B = T, so that the batch_first mistake runs instead of failing on the mask
    got = as_torch_layer(block, **options)(x, src_mask=_mask(mask))
    assert got.shape == x.shape and torch.isfinite(got).all()
    assert max_diff(got, block(x)) > 0.1, mistake


def test_batch_first_mistake_fails_on_the_mask_only_when_batch_and_length_differ():
    block = gpt_block()
    layer = as_torch_layer(block, norm_first=True, activation="gelu")
    with pytest.raises(RuntimeError, match="attn_mask"):
        layer(inputs(batch=3), src_mask=~causal_mask(T))
    x = inputs(batch=3)  # without a mask it runs, and attends across the batch
    assert max_diff(layer(x), as_torch_layer(block, **GPT_OPTIONS)(x)) > 0.1


def test_is_causal_alone_is_an_error():
    layer = as_torch_layer(gpt_block(), **GPT_OPTIONS)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        layer(inputs(), is_causal=True)


def test_a_hint_that_contradicts_the_mask_wins_on_the_plain_path():
    """What chapter 5 shows: a mask that allows everything, with is_causal=True, is causal."""
    block = gpt_block()
    layer = as_torch_layer(block, **GPT_OPTIONS)
    x = inputs()
    allow_all = torch.zeros(T, T, dtype=torch.bool)
    got = layer(x, src_mask=allow_all, is_causal=True)
    torch.testing.assert_close(got, block(x), rtol=1e-4, atol=1e-5)
    assert max_diff(layer(x, src_mask=allow_all), block(x)) > 0.1  # without the hint: not causal


# ------------------------------------------------------------------- what the defaults are


def test_encoder_layer_defaults_are_the_original_transformers():
    layer = nn.TransformerEncoderLayer(D, HEADS)
    assert layer.self_attn.batch_first is False
    assert layer.norm_first is False
    assert layer.activation is F.relu
    assert layer.linear1.out_features == 2048
    assert layer.dropout.p == 0.1


def test_nn_transformer_is_an_encoder_decoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nn.Transformer(d_model=D, nhead=HEADS)
    assert (len(model.encoder.layers), len(model.decoder.layers)) == (6, 6)
    decoder_layer = model.decoder.layers[0]
    assert isinstance(decoder_layer.multihead_attn, nn.MultiheadAttention)  # cross-attention
    with pytest.raises(TypeError):
        model(torch.randn(T, 2, D))  # forward(src, tgt): a target sequence is required
    src, tgt = torch.randn(T, 2, D), torch.randn(5, 2, D)
    assert model.eval()(src, tgt).shape == tgt.shape
