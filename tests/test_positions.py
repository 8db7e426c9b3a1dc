"""Chapter 3's reference solutions against independent formulations and published facts."""

from __future__ import annotations

import math

import pytest
import torch

from lmkit import grading
from lmkit.config import TransformerConfig
from lmkit.positions import Embeddings
from solutions.positions import Embeddings as RefEmbeddings
from solutions.positions import apply_rope, sinusoidal_positions


def test_sinusoidal_matches_the_formula_entry_by_entry():
    pe = sinusoidal_positions(20, 10)
    assert pe.shape == (20, 10) and pe.dtype == torch.float32
    for pos in range(20):
        for i in range(5):
            angle = pos / 10000 ** (2 * i / 10)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_first_row_and_odd_width():
    assert torch.equal(sinusoidal_positions(1, 6)[0], torch.tensor([0.0, 1.0] * 3))
    odd = sinusoidal_positions(4, 5)
    assert torch.allclose(odd[:, :4], sinusoidal_positions(4, 5)[:, :4])
    # the unpaired last column is the sine of pair 2i = 4
    want = torch.sin(torch.arange(4) / 10000 ** (4 / 5))
    assert torch.allclose(odd[:, 4], want)
    assert sinusoidal_positions(0, 4).shape == (0, 4)
    with pytest.raises(ValueError):
        sinusoidal_positions(3, 0)


def test_sinusoidal_relative_positions_are_linear_maps():
    """PE[pos + k] is a fixed rotation of PE[pos] (Vaswani et al.'s motivation)."""
    pe = sinusoidal_positions(64, 8).double()
    k = 5
    for i in range(4):
        w = 1 / 10000 ** (2 * i / 8)
        rot = torch.tensor(
            [[math.cos(k * w), -math.sin(k * w)], [math.sin(k * w), math.cos(k * w)]],
            dtype=torch.float64,
        )
        pair = pe[:, 2 * i : 2 * i + 2]
        assert torch.allclose(pair[:-k] @ rot, pair[k:], atol=1e-6)


def _rope_complex(x, positions, base=10000.0):
    D = x.shape[-1]
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], D // 2, 2).contiguous())
    theta = positions.double()[:, None] * base ** (-torch.arange(0, D, 2).double() / D)
    return torch.view_as_real(z * torch.exp(1j * theta)).reshape(x.shape)


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 7, 16), (1, 1, 4)])
def test_rope_matches_complex_multiplication(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    pos = torch.randint(0, 2000, (shape[-2],))
    assert torch.allclose(apply_rope(x, pos), _rope_complex(x, pos).float(), atol=1e-5)
    assert torch.allclose(
        apply_rope(x, pos, base=100.0), _rope_complex(x, pos, 100.0).float(), atol=1e-5
    )


def test_rope_matches_transformers_after_the_interleave_permutation():
    """HF Llama pairs i with i + D/2 (rotate_half); permuting the dimensions maps one
    convention onto the other."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    torch.manual_seed(0)
    D, T = 8, 6
    x = torch.randn(1, 1, T, D)
    pos = torch.arange(T)
    theta = pos.double()[:, None] * 10000 ** (-torch.arange(0, D, 2).double() / D)
    emb = torch.cat((theta, theta), dim=-1)
    cos, sin = emb.cos().float()[None], emb.sin().float()[None]
    perm = torch.cat((torch.arange(0, D, 2), torch.arange(1, D, 2)))  # evens, then odds
    hf, _ = llama.apply_rotary_pos_emb(x[..., perm], x[..., perm], cos, sin)
    assert torch.allclose(apply_rope(x, pos)[..., perm], hf, atol=1e-5)


def test_rope_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    q, k = torch.randn(16), torch.randn(16)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q[None], torch.tensor([m]))[0]
        kn = apply_rope(k[None], torch.tensor([n]))[0]
        return float(qm @ kn)

    assert score(3, 1) == pytest.approx(score(103, 101), abs=1e-4)
    assert score(0, 0) == pytest.approx(float(q @ k), abs=1e-5)


def test_rope_keeps_norms_dtype_and_position_zero():
    x = torch.randn(4, 8, dtype=torch.float64)
    out = apply_rope(x, torch.tensor([0, 1, 2, 3]))
    assert out.dtype == torch.float64
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(out[0], x[0])


def test_rope_bad_input():
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(3, 5), torch.arange(3))
    with pytest.raises(ValueError, match=r"\(T,\)"):
        apply_rope(torch.randn(3, 4), torch.arange(4))


def test_embeddings_reference_is_a_lookup_and_refuses_long_inputs():
    torch.manual_seed(0)
    m = Embeddings(10, 6, 4)
    ref = RefEmbeddings(10, 6, 4)
    ref.load_state_dict(m.state_dict())
    idx = torch.randint(10, (3, 6))
    onehot = torch.nn.functional.one_hot(idx, 10).float()
    assert torch.allclose(ref(idx), onehot @ m.tok.weight + m.pos.weight, atol=1e-6)
    with pytest.raises(ValueError, match="block_size=6"):
        ref(torch.zeros(1, 7, dtype=torch.long))


def test_embeddings_module_dispatches_in_reference_mode():
    grading.use_reference(["3.3"])
    cfg = TransformerConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8)
    m = Embeddings.from_config(cfg)
    assert m(torch.zeros(2, 3, dtype=torch.long)).shape == (2, 3, 8)


# ------------------------------------------- reference mode runs the fused RoPE twin


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "positions",
    [
        torch.arange(7),
        torch.arange(100, 107),
        torch.tensor([5, 0, 3000, 2, 2, 9, 1]),  # any order, repeats, beyond the first table
        torch.tensor([-3, 0, 1, 2, 3, 4, 5]),  # negative: the written-out path
    ],
)
def test_fused_rope_twin_equals_the_written_out_reference(dtype, positions):
    from solutions.positions import apply_rope, fused_apply_rope

    g = torch.Generator().manual_seed(0)
    # (B, h, T, D) as attention makes it: a transposed view, not contiguous
    x = torch.randn(2, 7, 3, 16, generator=g, dtype=dtype).transpose(1, 2).requires_grad_()
    up = torch.randn(2, 3, 7, 16, generator=g, dtype=dtype)
    want = apply_rope(x, positions, 500.0)
    got = fused_apply_rope(x, positions, 500.0)
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got, want)
    (g_want,) = torch.autograd.grad((want * up).sum(), x)
    (g_got,) = torch.autograd.grad((got * up).sum(), x)
    torch.testing.assert_close(g_got, g_want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("start", [0, 5, 4090])  # 4090 + 7 > 4096: the table must grow
def test_rope_factors_of_a_run_of_positions_equal_apply_rope(dtype, start):
    """The decoder's shortcut: positions start … start+T−1 as one slice of the table."""
    from solutions.positions import apply_rope, rope_factors, rotate_by

    x = torch.randn(2, 3, 7, 16, generator=torch.Generator().manual_seed(1), dtype=dtype)
    factors = rope_factors(16, start, 7, 500.0, x.device, dtype)
    assert factors.shape == (7, 8)
    got = rotate_by(x, factors)
    torch.testing.assert_close(got, apply_rope(x, torch.arange(start, start + 7), 500.0))


def test_fused_rope_twin_keeps_the_clear_errors_and_is_what_reference_mode_runs():
    import solutions.positions as ref
    from lmkit import grading

    with pytest.raises(ValueError, match="must be even"):
        ref.fused_apply_rope(torch.randn(2, 5), torch.arange(2))
    with pytest.raises(ValueError, match=r"positions should have shape \(T,\)"):
        ref.fused_apply_rope(torch.randn(4, 8), torch.arange(3))
    x = torch.randn(4, 8, dtype=torch.bfloat16)  # no complex bfloat16: the written-out path
    assert torch.equal(ref.fused_apply_rope(x, torch.arange(4)), ref.apply_rope(x, torch.arange(4)))
    ex = grading.get_exercise("3.2")
    assert ex.runner() is ref.fused_apply_rope
    assert grading.reference("3.2") is ref.apply_rope  # what check("3.2") compares with
