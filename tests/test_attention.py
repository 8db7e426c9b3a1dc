"""Chapter 4's reference solutions against PyTorch's own attention, the fast path
against the teaching path, and the errors bad input gets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmkit import grading
from lmkit.attention import MultiHeadAttention, attention, check_attention_inputs
from solutions.attention import MultiHeadAttention as RefMultiHeadAttention
from solutions.attention import causal_mask, scaled_dot_product_attention


def test_causal_mask_matches_torch_is_causal():
    for T in [1, 3, 8]:
        q = torch.randn(1, T, 4)
        want = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        got = F.scaled_dot_product_attention(q, q, q, attn_mask=causal_mask(T))
        assert torch.allclose(got, want, atol=1e-6)
    assert causal_mask(0).shape == (0, 0)


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_matches_torch(masked):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    mask = torch.rand(2, 1, 5, 7) > 0.5 if masked else None
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6)
    rows = weights.sum(-1)
    if masked:
        alive = mask.any(-1).expand_as(rows)
        assert torch.allclose(rows[alive], torch.ones_like(rows[alive]))
        assert torch.equal(rows[~alive], torch.zeros_like(rows[~alive]))
    else:
        assert torch.allclose(rows, torch.ones_like(rows))


def test_sdpa_is_stable_for_large_scores_and_fully_masked_rows():
    q = torch.full((1, 3, 4), 1e4)
    out, weights = scaled_dot_product_attention(q, q, torch.randn(1, 3, 2))
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, weights = scaled_dot_product_attention(
        torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 2), mask
    )
    assert torch.equal(out[1], torch.zeros(2)) and torch.equal(weights[1], torch.zeros(3))


@pytest.mark.parametrize("T", [1, 7, 33])
@pytest.mark.parametrize("masked", [False, True])
def test_fast_path_equals_teaching_path(T, masked):
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 4, T, 16) for _ in range(3))
    mask = causal_mask(T) if masked else None
    grading.use_reference(["4.1", "4.2"])
    slow = attention(q, k, v, mask)
    fast = attention(q, k, v, mask, fast=True)
    assert torch.allclose(slow, fast, atol=1e-5)


def test_check_attention_inputs_errors_name_the_shapes():
    q = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"\(2, 4, 8\).*\(2, 4, 6\)"):
        check_attention_inputs(q, torch.randn(2, 4, 6), torch.randn(2, 4, 6), None)
    with pytest.raises(ValueError, match="T_k"):
        check_attention_inputs(q, q, torch.randn(2, 5, 8), None)
    with pytest.raises(TypeError, match="torch.bool"):
        check_attention_inputs(q, q, q, torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(2, 4, 4\)"):
        check_attention_inputs(q, q, q, torch.ones(5, 5, dtype=torch.bool))
    check_attention_inputs(q, q, q, torch.ones(2, 1, 4, dtype=torch.bool))  # broadcasts


def test_multi_head_attention_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"d_model \(10\).*n_heads \(3\)"):
        MultiHeadAttention(10, 3)
    m = RefMultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        m(torch.randn(2, 3, 6))


def _copy_to_torch(m: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(m.d_model, m.n_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(m.qkv.weight)
        ref.in_proj_bias.copy_(m.qkv.bias)
        ref.out_proj.weight.copy_(m.proj.weight)
        ref.out_proj.bias.copy_(m.proj.bias)
    return ref.eval()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("fast", [False, True])
def test_multi_head_attention_matches_torch(causal, fast):
    torch.manual_seed(1)
    m = RefMultiHeadAttention(32, 4, causal=causal, fast=fast).eval()
    with torch.no_grad():
        m.qkv.bias.normal_()
        m.proj.bias.normal_()
    x = torch.randn(3, 9, 32)
    torch_mha = _copy_to_torch(m)
    attn_mask = ~causal_mask(9) if causal else None
    want, w = torch_mha(x, x, x, attn_mask=attn_mask, average_attn_weights=False)
    with torch.no_grad():
        got = m(x)
    assert torch.allclose(got, want, atol=1e-5)
    if not fast:
        assert torch.allclose(m.last_weights, w, atol=1e-6)


def test_lmkit_module_uses_the_reference_forward_in_reference_mode():
    grading.use_reference("all")
    torch.manual_seed(0)
    m = MultiHeadAttention(16, 2, causal=True)
    x = torch.randn(2, 5, 16)
    want = _copy_to_torch(m)(x, x, x, attn_mask=~causal_mask(5), need_weights=False)[0]
    assert torch.allclose(m(x), want, atol=1e-5)
    assert m.last_weights.shape == (2, 2, 5, 5)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    m = RefMultiHeadAttention(16, 2, dropout=0.5)
    x = torch.randn(2, 5, 16)
    m.eval()
    a, b = m(x), m(x)
    assert torch.equal(a, b)
    m.train()
    assert not torch.allclose(m(x), a)
