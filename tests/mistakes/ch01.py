"""Plausible wrong answers to chapter 1's exercises, and the hint each check must give.

tests/test_loop.py runs every check on every mistake here: the check must reject it
with an AssertionError whose message contains the hint. This is how we know the
grader catches what learners really get wrong, not only the stubs.
"""

from __future__ import annotations

from solutions import scale as ref

# ------------------------------------------------------------------ 1.1 count_parameters


def _count(
    cfg,
    *,
    biases=True,
    final_ln=True,
    positions=True,
    untie=False,
    out_proj=True,
    ffn_dim=None,
    ln_bias_always=False,
    segments=True,
    pooler=True,
    bias_always=False,
    tie_always=False,
    ln_per_block=2,
    ffn_layers=2,
):
    d = cfg.n_embd
    b = 1 if bias_always else int(cfg.bias and biases)
    f = ffn_dim(cfg) if ffn_dim else cfg.ffn_dim
    lnb = 1 if ln_bias_always else b
    emb = (
        cfg.vocab_size + (cfg.block_size if positions else 0) + (cfg.n_segments if segments else 0)
    ) * d
    ln = d + lnb * d
    attn = 3 * d * d + 3 * b * d + (d * d + b * d if out_proj else 0)
    ffn = d * f + b * f + (f * d + b * d if ffn_layers == 2 else 0)
    total = emb + cfg.n_layer * (attn + ffn + ln_per_block * ln) + (ln if final_ln else 0)
    if cfg.pooler and pooler:
        total += d * d + b * d
    if untie or (not cfg.tied_head and not tie_always):
        total += cfg.vocab_size * d
    return total


MISTAKES = {
    "1.1": [
        ("forgets biases", lambda c: _count(c, biases=False), "biases are missing"),
        (
            "counts the tied head twice",
            lambda c: _count(c, untie=True),
            "the output head is tied to the token embedding",
        ),
        (
            "forgets position embeddings",
            lambda c: _count(c, positions=False),
            "the learned position embeddings",
        ),
        ("forgets the final LayerNorm", lambda c: _count(c, final_ln=False), "final LayerNorm"),
        (
            "forgets the attention output projection",
            lambda c: _count(c, out_proj=False),
            "output projection",
        ),
        (
            "always uses 4·d for the FFN",
            lambda c: _count(c, ffn_dim=lambda c: 4 * c.n_embd),
            "use config.ffn_dim (d_ff when it is set)",
        ),
        (
            "gives LayerNorms a bias when bias=False",
            lambda c: _count(c, ln_bias_always=True),
            "LayerNorms have no bias",
        ),
        (
            "forgets segment embeddings",
            lambda c: _count(c, segments=False),
            "the segment (token-type) embeddings",
        ),
        (
            "forgets the pooler",
            lambda c: _count(c, pooler=False),
            "BERT's pooler, a d × d layer (with bias), is missing",
        ),
        (
            "counts biases whatever config.bias says",
            lambda c: _count(c, bias_always=True),
            "with bias=False no layer has a bias",
        ),
        (
            "always ties the head",
            lambda c: _count(c, tie_always=True),
            "with tied_head=False the output head has its own V × d matrix",
        ),
        (
            "one LayerNorm per block",
            lambda c: _count(c, ln_per_block=1),
            "each block has two LayerNorms",
        ),
        (
            "a one-layer feed-forward network",
            lambda c: _count(c, ffn_layers=1),
            "the feed-forward network has two layers",
        ),
        ("returns a float", lambda c: float(ref.count_parameters(c)), "should be a int"),
        ("returns millions", lambda c: ref.count_parameters(c) // 10**6, "build_torch_model"),
    ],
    # -------------------------------------------------------------- 1.2 flops_per_token
    "1.2": [
        (
            "forward pass only",
            lambda c, s=None: ref.flops_per_token(c, s) // 3,
            "forward pass only",
        ),
        (
            "no attention term",
            lambda c, s=None: (
                6 * (ref.count_parameters(c) - (c.block_size + c.n_segments) * c.n_embd)
            ),
            "attention term is missing",
        ),
        (
            "keeps position embeddings in N",
            lambda c, s=None: (
                ref.flops_per_token(c, s) + 6 * (c.block_size + c.n_segments) * c.n_embd
            ),
            "lookup does no multiply-adds",
        ),
        ("ignores seq_len", lambda c, s=None: ref.flops_per_token(c), "seq_len was ignored"),
        (
            "attention term in T²",
            lambda c, s=None: (
                ref.flops_per_token(c, s)
                - 12 * c.n_layer * c.n_embd * (s or c.block_size)
                + 12 * c.n_layer * c.n_embd * (s or c.block_size) ** 2
            ),
            "per token the attention term grows with T, not T²",
        ),
        (
            "drops the token embedding",
            lambda c, s=None: ref.flops_per_token(c, s) - 6 * c.vocab_size * c.n_embd,
            "keep the token embedding",
        ),
        (
            "forward pass only, no attention term",
            lambda c, s=None: (
                2 * (ref.count_parameters(c) - (c.block_size + c.n_segments) * c.n_embd)
            ),
            "forward-only and no attention term",
        ),
        (
            "attention term in n_embd instead of T",
            lambda c, s=None: (
                ref.flops_per_token(c, s)
                - 12 * c.n_layer * c.n_embd * (s or c.block_size)
                + 12 * c.n_layer * c.n_embd * c.n_embd
            ),
            "the attention term is 12 · n_layer · n_embd · T (sequence length), not · n_embd",
        ),
        (
            "attention term counted once, not for forward and backward (6·L·d·T)",
            lambda c, s=None: (
                ref.flops_per_token(c, s) - 6 * c.n_layer * c.n_embd * (s or c.block_size)
            ),
            "training FLOPs per token = 6 × (parameters minus position/segment embeddings)",
        ),
        ("returns a float", lambda c, s=None: float(ref.flops_per_token(c, s)), "should be a int"),
    ],
    # -------------------------------------------------------------- 1.3 training_memory
    "1.3": [
        (
            "one Adam moment only",
            lambda n, p="fp32": _mem(n, p, opt={"fp32": 4, "bf16": 2, "mixed": 8}),
            "AdamW keeps two moments per parameter",
        ),
        (
            "no master copy in mixed precision",
            lambda n, p="fp32": _mem(n, p, opt={"fp32": 8, "bf16": 4, "mixed": 8}),
            "keeps an fp32 master copy of the weights in the optimizer",
        ),
        (
            "fp32 weights in mixed precision",
            lambda n, p="fp32": _mem(n, p, w={"fp32": 4, "bf16": 2, "mixed": 4}),
            "weights used for forward/backward are bf16",
        ),
        (
            "bits instead of bytes",
            lambda n, p="fp32": {k: 8 * v for k, v in ref.training_memory(n, p).items()},
            "bytes, not bits",
        ),
        (
            "total left out",
            lambda n, p="fp32": {
                k: v for k, v in ref.training_memory(n, p).items() if k != "total"
            },
            "expected exactly",
        ),
        (
            "total wrong",
            lambda n, p="fp32": {**ref.training_memory(n, p), "total": 0},
            "must be the sum",
        ),
        (
            "unknown precision silently treated as fp32",
            lambda n, p="fp32": ref.training_memory(n, p if p in ref._BYTES else "fp32"),
            "an unknown precision must not be guessed",
        ),
        (
            "no gradients counted",
            lambda n, p="fp32": _mem(n, p, g={"fp32": 0, "bf16": 0, "mixed": 0}),
            "every parameter has a gradient of the same dtype as the weights",
        ),
        (
            "bf16 sized like fp32",
            lambda n, p="fp32": ref.training_memory(n, "fp32" if p == "bf16" else p),
            "in 'bf16' every tensor is bfloat16: 2 bytes, not 4",
        ),
        (
            "fp32 gradients in mixed precision",
            lambda n, p="fp32": _mem(n, p, g={"fp32": 4, "bf16": 2, "mixed": 4}),
            "in mixed precision the gradients come out of a bf16 backward pass",
        ),
        (
            "an fp32 copy of the gradients in the mixed-precision optimizer",
            lambda n, p="fp32": _mem(n, p, opt={"fp32": 8, "bf16": 4, "mixed": 16}),
            "'optimizer' should be 12 bytes per parameter for 'mixed'",
        ),
        (
            "float bytes",
            lambda n, p="fp32": {k: float(v) for k, v in ref.training_memory(n, p).items()},
            "should be a int",
        ),
    ],
}


def _mem(n, p, *, w=None, g=None, opt=None):
    if p not in ref._BYTES:
        raise ValueError(p)
    bw, bg, bo = ref._BYTES[p]
    bw = w[p] if w else bw
    bg = g[p] if g else bg
    bo = opt[p] if opt else bo
    return {
        "weights": bw * n,
        "gradients": bg * n,
        "optimizer": bo * n,
        "total": (bw + bg + bo) * n,
    }
