"""Plausible wrong answers to chapter 5's exercises (layer_norm, FeedForward, Block).

They are built from the reference pieces (never the lmkit stubs), so each one is wrong in
exactly one way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.block as ref
from solutions.attention import MultiHeadAttention as RefAttention
from solutions.attention import causal_mask

# --------------------------------------------------------------------- 5.1 layer_norm


def _ln(x, weight, bias, eps=1e-5, *, var=None, root=None, dim=-1, affine=True):
    mean = x.mean(dim=dim, keepdim=True)
    v = var(x) if var else (x - mean).pow(2).mean(dim=dim, keepdim=True)
    y = (x - mean) / (root(v, eps) if root else torch.sqrt(v + eps))
    if not affine:
        return y
    return y * weight + (0 if bias is None else bias)


def unbiased(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps, var=lambda t: t.var(dim=-1, keepdim=True))


def eps_outside(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps, root=lambda v, e: v.sqrt() + e)


def wrong_axis(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps, dim=0)


def no_affine(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps, affine=False)


def one_pass_variance(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = (x * x).mean(dim=-1, keepdim=True) - mean * mean  # E[x²] − E[x]²
    y = (x - mean) / torch.sqrt(var + eps)
    return y * weight + (0 if bias is None else bias)


def bias_not_optional(x, weight, bias, eps=1e-5):
    return ref.layer_norm(x, weight, None, eps) + bias  # a TypeError when bias is None


def fixed_eps(x, weight, bias, eps=1e-5):
    return ref.layer_norm(x, weight, bias, 1e-5)


def in_float64(x, weight, bias, eps=1e-5):
    return ref.layer_norm(x.double(), weight.double(), None if bias is None else bias.double(), eps)


def no_eps(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    y = (x - mean) / (x - mean).pow(2).mean(dim=-1, keepdim=True).sqrt()
    return y * weight + (0 if bias is None else bias)


def whole_tensor(x, weight, bias, eps=1e-5):
    y = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps)  # no dim=-1
    return y * weight + (0 if bias is None else bias)


def no_gain(x, weight, bias, eps=1e-5):
    y = _ln(x, weight, bias, eps, affine=False)
    return y + (0 if bias is None else bias)


def no_shift(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps, affine=False) * weight


def shift_then_gain(x, weight, bias, eps=1e-5):
    return (_ln(x, weight, bias, eps, affine=False) + (0 if bias is None else bias)) * weight


def divides_by_variance(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps, root=lambda v, e: v + e)  # forgot the square root


# ------------------------------------------------------------ 5.2 FeedForward.forward


def relu_ffn(self, x):
    return self.dropout(self.proj(F.relu(self.fc(x))))


def always_tanh(self, x):
    return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


def always_exact(self, x):
    return self.dropout(self.proj(F.gelu(self.fc(x))))


def no_second_projection(self, x):
    return F.gelu(self.fc(x), approximate=self.approximate)


def no_activation(self, x):
    return self.dropout(self.proj(self.fc(x)))


def flattens_batch(self, x):
    B, T, C = x.shape  # fails on a (T, C) input
    return ref.FeedForward.forward(self, x.reshape(B * T, C)).view(B, T, C)


def dropout_always_on(self, x):
    h = F.gelu(self.fc(x), approximate=self.approximate)
    return F.dropout(self.proj(h), self.dropout.p, training=True)


def dropout_on_hidden(self, x):
    h = self.dropout(F.gelu(self.fc(x), approximate=self.approximate))
    return self.proj(h)


def no_dropout(self, x):
    return self.proj(F.gelu(self.fc(x), approximate=self.approximate))


def sigmoid_gelu(self, x):
    h = self.fc(x)
    return self.dropout(self.proj(h * torch.sigmoid(1.702 * h)))


def gelu_after_proj(self, x):
    return self.dropout(F.gelu(self.proj(self.fc(x)), approximate=self.approximate))


def residual_inside(self, x):
    return x + self.dropout(self.proj(F.gelu(self.fc(x), approximate=self.approximate)))


def tanh_activation(self, x):
    return self.dropout(self.proj(torch.tanh(self.fc(x))))  # tanh itself, not GELU's tanh form


# ----------------------------------------------------------------- 5.3 Block.forward


def _pieces(self, mask, *, causal=None, invert=False):
    use_causal = self.causal if causal is None else causal

    def attn(h):
        allowed = mask
        if use_causal:
            c = causal_mask(h.shape[1])
            c = ~c if invert else c
            allowed = c if allowed is None else allowed & c
        return RefAttention.forward(self.attn, h, allowed)

    def ln(m, h):
        return ref.layer_norm(h, m.weight, m.bias, m.eps)

    def ffn(h):
        return ref.FeedForward.forward(self.ffn, h)

    return attn, (lambda h: ln(self.ln1, h)), (lambda h: ln(self.ln2, h)), ffn


def no_residual(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask)
    if self.norm_first:
        x = attn(ln1(x))
        return ffn(ln2(x))
    x = ln1(attn(x))
    return ln2(ffn(x))


def always_post_norm(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask)
    x = ln1(x + attn(x))
    return ln2(x + ffn(x))


def always_pre_norm(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask)
    x = x + attn(ln1(x))
    return x + ffn(ln2(x))


def ln1_twice(self, x, mask=None):
    attn, ln1, _, ffn = _pieces(self, mask)
    if self.norm_first:
        x = x + attn(ln1(x))
        return x + ffn(ln1(x))
    x = ln1(x + attn(x))
    return ln1(x + ffn(x))


def never_causal(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask, causal=False)
    if self.norm_first:
        x = x + attn(ln1(x))
        return x + ffn(ln2(x))
    x = ln1(x + attn(x))
    return ln2(x + ffn(x))


def always_causal(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask, causal=True)
    if self.norm_first:
        x = x + attn(ln1(x))
        return x + ffn(ln2(x))
    x = ln1(x + attn(x))
    return ln2(x + ffn(x))


def inverted_mask(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask, invert=True)
    if self.norm_first:
        x = x + attn(ln1(x))
        return x + ffn(ln2(x))
    x = ln1(x + attn(x))
    return ln2(x + ffn(x))


def residual_of_normed(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask)
    if not self.norm_first:
        return ref.Block.forward(self, x, mask)
    h = ln1(x)
    x = h + attn(h)
    h = ln2(x)
    return h + ffn(h)


def ignores_mask(self, x, mask=None):
    return ref.Block.forward(self, x)


def parallel_branches(self, x, mask=None):
    attn, ln1, ln2, ffn = _pieces(self, mask)
    if self.norm_first:  # GPT-J's parallel block: both branches read the same x
        return x + attn(ln1(x)) + ffn(ln2(x))
    return ln2(x + attn(x) + ffn(x))


def no_mask_argument(self, x):
    return ref.Block.forward(self, x)


MISTAKES = {
    "5.1": [
        ("unbiased variance (torch.var's default)", unbiased, "unbiased variance"),
        ("eps outside the square root", eps_outside, "eps goes inside the square root"),
        ("normalises over the batch axis", wrong_axis, "over the first dimension"),
        ("forgets weight and bias", no_affine, "weight and bias are missing"),
        ("one-pass variance E[x²] − E[x]²", one_pass_variance, "E[x²] − E[x]²"),
        ("adds bias even when it is None", bias_not_optional, "bias may be None"),
        ("ignores the eps argument", fixed_eps, "not a fixed 1e-5"),
        ("no eps", no_eps, "not no eps at all"),
        ("normalises over the whole tensor", whole_tensor, "normalises over the whole tensor"),
        ("forgets the weight", no_gain, "multiply by weight (the gain γ)"),
        ("forgets the bias", no_shift, "add bias (the shift β)"),
        ("adds bias before multiplying", shift_then_gain, "first multiply by weight, then add"),
        (
            "divides by the variance",
            divides_by_variance,
            "compare with torch.nn.functional.layer_norm",
        ),
        ("returns float64", in_float64, "should have dtype torch.float32 (the input"),
    ],
    "5.2": [
        ("ReLU instead of GELU", relu_ffn, "that is a ReLU"),
        ("always the tanh approximation", always_tanh, "approximate=self.approximate"),
        ("ignores approximate='tanh'", always_exact, "approximate=self.approximate"),
        ("forgets the second projection", no_second_projection, "apply self.proj"),
        ("no activation", no_activation, "GELU between the two Linear layers is missing"),
        ("x · sigmoid(1.702 x)", sigmoid_gelu, "another approximation of GELU"),
        ("GELU after the second layer", gelu_after_proj, "not after self.proj"),
        ("residual inside the FFN", residual_inside, "no residual inside the FFN"),
        ("tanh as the activation", tanh_activation, "dropout(proj(gelu(fc(x))))"),
        ("assumes a (B, T, C) input", flattens_batch, "no reshape is needed"),
        ("dropout on in eval mode", dropout_always_on, "dropout is on in eval mode"),
        ("dropout on the hidden layer", dropout_on_hidden, "dropout goes last"),
        ("no dropout", no_dropout, "no output was dropped"),
    ],
    "5.3": [
        ("no residual connections", no_residual, "residual connections are missing"),
        ("post-norm when norm_first=True", always_post_norm, "not after the residual sum"),
        ("pre-norm when norm_first=False", always_pre_norm, "goes after the residual sum"),
        ("the same LayerNorm twice", ln1_twice, "the same LayerNorm is used twice"),
        ("attention not causal", never_causal, "this block is causal"),
        ("causal encoder", always_causal, "this block is not causal"),
        ("inverted mask", inverted_mask, "the mask is inverted"),
        ("residual of ln(x)", residual_of_normed, "not to ln(x)"),
        ("ignores the padding mask", ignores_mask, "mask argument was ignored"),
        (
            "parallel attention and FFN",
            parallel_branches,
            "compare with the docstring step by step",
        ),
        ("forward without a mask argument", no_mask_argument, "forward takes (x, mask=None)"),
    ],
}
