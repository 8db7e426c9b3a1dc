"""Plausible wrong answers to chapter 12's exercises, and the hint each check must give."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from solutions.attention import causal_mask

# ------------------------------------------------------------------ 12.1 cross-attention


def _checked(self, x, memory):
    for name, t in (("x", x), ("memory", memory)):
        if t.dim() != 3 or t.shape[-1] != self.d_model:
            raise ValueError(f"{name} should be (B, ·, d_model), got {tuple(t.shape)}")
    if x.shape[0] != memory.shape[0]:
        raise ValueError(f"batch sizes differ: {x.shape[0]} vs {memory.shape[0]}")


def _cross(self, x, memory, mask=None, *, checks=True, kv_source=None, swap=False,
           scale=None, transpose=True, polarity=True, causal=False, store="weights"):  # fmt: skip
    """A learner's cross-attention, written out; the keywords switch one mistake on."""
    if checks:
        _checked(self, x, memory)
    B, T, C = x.shape
    src = memory if kv_source is None else kv_source
    S = src.shape[1]
    h, hd = self.n_heads, self.head_dim
    q = self.q(x)
    k, v = self.kv(src).split(C, dim=-1)
    if swap:
        v, k = k, v
    if transpose:
        q = q.view(B, T, h, hd).transpose(1, 2)
        k = k.view(B, S, h, hd).transpose(1, 2)
        v = v.view(B, S, h, hd).transpose(1, 2)
    else:
        q, k, v = q.reshape(B, h, T, hd), k.reshape(B, h, S, hd), v.reshape(B, h, S, hd)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hd if scale is None else scale)
    raw = torch.softmax(scores, dim=-1)
    if causal:
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool).tril() == 0, -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~mask if polarity else mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if store == "weights":
        self.last_weights = weights.detach()
    elif store == "mean":
        self.last_weights = weights.mean(1).detach()
    elif store == "raw":
        self.last_weights = raw.detach()
    y = (weights @ v).transpose(1, 2).reshape(B, T, C)
    return self.proj(y)


def _cross_causal(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, causal=True)


def _cross_causal_mask_T(self, x, memory, mask=None):
    # "the decoder is causal": the course's causal_mask(T) combined with the source mask
    T = x.shape[1]
    allowed = causal_mask(T) if mask is None else mask & causal_mask(T)
    return _cross(self, x, memory, allowed)


def _cross_self_attention(self, x, memory, mask=None):
    _checked(self, x, memory)
    return _cross(self, x, memory, None, checks=False, kv_source=x)


def _cross_swapped(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, swap=True)


def _cross_mask_ignored(self, x, memory, mask=None):
    return _cross(self, x, memory, None)


def _cross_mask_inverted(self, x, memory, mask=None):
    # nn.MultiheadAttention's key_padding_mask convention: True = ignore
    return _cross(self, x, memory, mask, polarity=False)


def _cross_no_scale(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, scale=1)


def _cross_scale_d_model(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, scale=self.d_model)


def _cross_reshape_heads(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, transpose=False)


def _cross_k_viewed_with_T(self, x, memory, mask=None):
    _checked(self, x, memory)
    B, T, C = x.shape
    h, hd = self.n_heads, self.head_dim
    q = self.q(x).view(B, T, h, hd).transpose(1, 2)
    k, v = self.kv(memory).split(C, dim=-1)
    k, v = k.view(B, T, h, hd).transpose(1, 2), v.view(B, T, h, hd).transpose(1, 2)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _cross_fused_only(self, x, memory, mask=None):
    # always the fused kernel: no weights to store on the slow path
    _checked(self, x, memory)
    B, T, C = x.shape
    S, h = memory.shape[1], self.n_heads
    q = self.q(x).view(B, T, h, -1).transpose(1, 2)
    k, v = (t.view(B, S, h, -1).transpose(1, 2) for t in self.kv(memory).split(C, -1))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _cross_weights_averaged(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, store="mean")


def _cross_weights_unmasked(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, store="raw")


def _cross_no_checks(self, x, memory, mask=None):
    return _cross(self, x, memory, mask, checks=False)


def _cross_no_batch_check(self, x, memory, mask=None):
    for t in (x, memory):
        if t.dim() != 3 or t.shape[-1] != self.d_model:
            raise ValueError(f"expected (B, ·, {self.d_model}), got {tuple(t.shape)}")
    return _cross(self, x, memory, mask, checks=False)


# ------------------------------------------------------------------ 12.2 decoder block


def _block_no_causal(self, x, memory, memory_mask=None):
    x = x + self.self_attn(self.ln1(x))
    x = x + self.cross(self.ln2(x), memory, memory_mask)
    return x + self.ffn(self.ln3(x))


def _block_post_norm(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = self.ln1(x + self.self_attn(x, causal_mask(T)))
    x = self.ln2(x + self.cross(x, memory, memory_mask))
    return self.ln3(x + self.ffn(x))


def _block_no_memory_mask(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = x + self.self_attn(self.ln1(x), causal_mask(T))
    x = x + self.cross(self.ln2(x), memory)
    return x + self.ffn(self.ln3(x))


def _block_cross_first(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = x + self.cross(self.ln1(x), memory, memory_mask)
    x = x + self.self_attn(self.ln2(x), causal_mask(T))
    return x + self.ffn(self.ln3(x))


def _block_norm_memory(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = x + self.self_attn(self.ln1(x), causal_mask(T))
    x = x + self.cross(self.ln2(x), self.ln2(memory), memory_mask)
    return x + self.ffn(self.ln3(x))


def _block_cross_no_residual(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = x + self.self_attn(self.ln1(x), causal_mask(T))
    x = self.cross(self.ln2(x), memory, memory_mask)  # "x =", not "x = x +"
    return x + self.ffn(self.ln3(x))


def _block_ffn_no_residual(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = x + self.self_attn(self.ln1(x), causal_mask(T))
    x = x + self.cross(self.ln2(x), memory, memory_mask)
    return self.ffn(self.ln3(x))


def _block_one_ln(self, x, memory, memory_mask=None):
    T = x.shape[1]
    x = x + self.self_attn(self.ln1(x), causal_mask(T))
    x = x + self.cross(self.ln1(x), memory, memory_mask)
    return x + self.ffn(self.ln1(x))


def _block_add_to_normed(self, x, memory, memory_mask=None):
    T = x.shape[1]
    h = self.ln1(x)
    x = h + self.self_attn(h, causal_mask(T))
    h = self.ln2(x)
    x = h + self.cross(h, memory, memory_mask)
    h = self.ln3(x)
    return h + self.ffn(h)


def _block_triu(self, x, memory, memory_mask=None):
    # nn.Transformer.generate_square_subsequent_mask's shape, in lmkit's polarity by mistake
    T = x.shape[1]
    mask = torch.ones(T, T, dtype=torch.bool).triu()
    x = x + self.self_attn(self.ln1(x), mask)
    x = x + self.cross(self.ln2(x), memory, memory_mask)
    return x + self.ffn(self.ln3(x))


def _block_no_mask_arg(self, x, memory):
    T = x.shape[1]
    x = x + self.self_attn(self.ln1(x), causal_mask(T))
    x = x + self.cross(self.ln2(x), memory)
    return x + self.ffn(self.ln3(x))


# ------------------------------------------------------------------ 12.3 the loss


def _ls_checks(logits, targets, smoothing, ignore_index):
    if logits.shape[:-1] != targets.shape:
        raise ValueError("logits must be targets.shape + (V,)")
    if not 0 <= smoothing < 1:
        raise ValueError("smoothing must be in [0, 1)")
    if not (targets != ignore_index).any():
        raise ValueError("every target is ignore_index")


def _ls_szegedy(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    V = logits.shape[-1]
    logp = F.log_softmax(logits, -1).reshape(-1, V)
    t = targets.reshape(-1)
    keep = t != ignore_index
    logp, t = logp[keep], t[keep]
    # 1 − ε on the target, ε/(V − 1) on each other token (Szegedy et al.'s wording)
    dist = torch.full_like(logp, smoothing / (V - 1))
    dist.scatter_(1, t[:, None], 1 - smoothing)
    return -(dist * logp).sum(-1).mean()


def _ls_padding_in_mean(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    V = logits.shape[-1]
    logp = F.log_softmax(logits, -1).reshape(-1, V)
    t = targets.reshape(-1)
    keep = t != ignore_index
    nll = -logp.gather(1, torch.where(keep, t, 0)[:, None]).squeeze(1)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(-1)
    return (loss * keep).mean()  # zeroed, but still counted


def _ls_ignore_index_not_passed(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    # F.cross_entropy's own default (-100) instead of the ignore_index given
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), label_smoothing=smoothing)


def _ls_no_one_minus(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    nll = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=ignore_index)
    keep = targets.flatten() != ignore_index
    uniform = -F.log_softmax(logits.flatten(0, -2)[keep], -1).mean()
    return nll + smoothing * uniform


def _ls_sum(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    return F.cross_entropy(
        logits.flatten(0, -2),
        targets.flatten(),
        label_smoothing=smoothing,
        ignore_index=ignore_index,
        reduction="sum",
    )


def _ls_softmax_log(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    logp = torch.softmax(logits, -1).log().reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = t != ignore_index
    logp, t = logp[keep], t[keep]
    nll = -logp.gather(1, t[:, None]).squeeze(1)
    return ((1 - smoothing) * nll - smoothing * logp.mean(-1)).mean()


def _ls_uniform_sum(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    logp = F.log_softmax(logits, -1).reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = t != ignore_index
    logp, t = logp[keep], t[keep]
    nll = -logp.gather(1, t[:, None]).squeeze(1)
    return ((1 - smoothing) * nll - smoothing * logp.sum(-1)).mean()


def _ls_per_position(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    return F.cross_entropy(
        logits.flatten(0, -2),
        targets.flatten(),
        label_smoothing=smoothing,
        ignore_index=ignore_index,
        reduction="none",
    )


def _ls_item(logits, targets, smoothing=0.1, ignore_index=-100):
    _ls_checks(logits, targets, smoothing, ignore_index)
    loss = F.cross_entropy(
        logits.flatten(0, -2), targets.flatten(), label_smoothing=smoothing,
        ignore_index=ignore_index,
    )  # fmt: skip
    return torch.tensor(loss.item())


def _ls_no_range_check(logits, targets, smoothing=0.1, ignore_index=-100):
    if logits.shape[:-1] != targets.shape:
        raise ValueError("logits must be targets.shape + (V,)")
    if not (targets != ignore_index).any():
        raise ValueError("every target is ignore_index")
    return F.cross_entropy(
        logits.flatten(0, -2), targets.flatten(), label_smoothing=max(smoothing, 0.0),
        ignore_index=ignore_index,
    )  # fmt: skip


def _ls_no_empty_check(logits, targets, smoothing=0.1, ignore_index=-100):
    if logits.shape[:-1] != targets.shape:
        raise ValueError("logits must be targets.shape + (V,)")
    if not 0 <= smoothing < 1:
        raise ValueError("smoothing must be in [0, 1)")
    return F.cross_entropy(
        logits.flatten(0, -2), targets.flatten(), label_smoothing=smoothing,
        ignore_index=ignore_index,
    )  # fmt: skip


def _ls_no_shape_check(logits, targets, smoothing=0.1, ignore_index=-100):
    if not 0 <= smoothing < 1:
        raise ValueError("smoothing must be in [0, 1)")
    if not (targets != ignore_index).any():
        raise ValueError("every target is ignore_index")
    V = logits.shape[-1]
    t = targets.reshape(-1)
    logits = logits.reshape(-1, V)[: t.numel()]
    return F.cross_entropy(logits, t[: logits.shape[0]], label_smoothing=smoothing,
                           ignore_index=ignore_index)  # fmt: skip


# ------------------------------------------------------------------ 12.4 beam search


def _beam(step, bos, eos, beam_size, max_len, length_penalty, *, check=True,
          normalise="tokens", shrink=True, per_prefix=False, unterminated=True,
          return_normalised=False, with_bos=False, add_prefix=True):  # fmt: skip
    """A learner's beam search, one mistake per keyword."""
    if check and (beam_size < 1 or max_len < 1):
        raise ValueError("beam_size and max_len must be ≥ 1")
    live, finished = [([bos], 0.0)], []
    for _ in range(max_len):
        k = beam_size - len(finished) if shrink else beam_size
        logp = step(torch.tensor([s for s, _ in live])).double()
        prefix = torch.tensor([s for _, s in live], dtype=torch.float64)[:, None]
        scores = prefix + logp
        # ranked by the token's log-probability alone, the prefix's score carried along
        ranking = scores if add_prefix else logp + 0 * prefix
        cands = []
        if per_prefix:
            for row in range(len(live)):
                top = scores[row].topk(min(k, scores.shape[1]))
                for sc, tok in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                    cands.append((live[row][0] + [tok], sc))
            cands.sort(key=lambda c: -c[1])
        else:
            top = ranking.flatten().topk(max(0, min(k, scores.numel())))
            for flat in top.indices.tolist():
                row, tok = divmod(flat, scores.shape[1])
                cands.append((live[row][0] + [tok], float(scores[row, tok])))
        live = []
        for seq, sc in cands:
            (finished if seq[-1] == eos else live).append((seq, sc))
        if not live:
            break
    if unterminated is True:
        finished += live
    elif unterminated == "fallback" and not finished:
        finished = live  # only when nothing finished

    def norm(h):
        if normalise == "none":
            return h[1]
        n = len(h[0]) if normalise == "with_bos" else len(h[0]) - 1
        return h[1] / n**length_penalty

    ranked = sorted(finished, key=norm, reverse=True)[:beam_size]
    return [
        (seq if with_bos else seq[1:], norm((seq, sc)) if return_normalised else sc)
        for seq, sc in ranked
    ]


def _beam_fixed_width(step, bos_id, eos_id, *, beam_size=4, max_len=50, length_penalty=0.0):
    # beam_size live prefixes at every step: EOS candidates are set aside, the beam refilled
    if beam_size < 1 or max_len < 1:
        raise ValueError("beam_size and max_len must be ≥ 1")
    live, finished = [([bos_id], 0.0)], []
    for _ in range(max_len):
        logp = step(torch.tensor([s for s, _ in live])).double()
        scores = torch.tensor([s for _, s in live], dtype=torch.float64)[:, None] + logp
        V, flat_scores = scores.shape[1], scores.flatten()
        new_live = []
        for flat in flat_scores.argsort(descending=True, stable=True).tolist():
            if len(new_live) == beam_size:
                break
            row, tok = divmod(flat, V)
            hyp = (live[row][0] + [tok], float(flat_scores[flat]))
            (finished if tok == eos_id else new_live).append(hyp)
        live = new_live
    finished += live
    ranked = sorted(finished, key=lambda h: h[1] / (len(h[0]) - 1) ** length_penalty, reverse=True)
    return [(seq[1:], sc) for seq, sc in ranked[:beam_size]]


def _bs(**kw):
    def beam_search(step, bos_id, eos_id, *, beam_size=4, max_len=50, length_penalty=0.0):
        return _beam(step, bos_id, eos_id, beam_size, max_len, length_penalty, **kw)

    return beam_search


MISTAKES = {
    "12.1": [
        ("a causal (T, S) mask", _cross_causal, "no causal mask in cross-attention"),
        ("causal_mask(T) with T ≠ S", _cross_causal_mask_T, "does not fit them"),
        ("keys and values from x", _cross_self_attention, "that was self-attention over x"),
        ("v and k swapped", _cross_swapped, "holds the keys first, then the values"),
        ("mask ignored", _cross_mask_ignored, "padded source tokens must get weight 0"),
        ("mask polarity inverted", _cross_mask_inverted, "the mask is inverted"),
        ("no 1/sqrt(head_dim)", _cross_no_scale, "divide the scores by sqrt(head_dim)"),
        ("1/sqrt(d_model)", _cross_scale_d_model, "not d_model: each head attends"),
        ("heads by reshape, no transpose", _cross_reshape_heads, "mixes tokens and heads"),
        ("k and v viewed with T rows", _cross_k_viewed_with_T, "view q with T and k, v with S"),
        ("no last_weights", _cross_fused_only, "store the attention weights of the slow path"),
        ("weights averaged over heads", _cross_weights_averaged, "one map per head"),
        ("weights stored before the mask", _cross_weights_unmasked, "store the weights after"),
        ("no shape checks", _cross_no_checks, "check that x is (B, ·, d_model)"),
        ("no batch check", _cross_no_batch_check, "x and memory must hold the same sentences"),
    ],
    "12.2": [
        ("no causal mask", _block_no_causal, "the self-attention needs the causal mask"),
        ("post-norm", _block_post_norm, "that is post-norm"),
        ("memory_mask not passed", _block_no_memory_mask, "pass memory_mask to the cross"),
        ("cross-attention first", _block_cross_first, "the order is self-attention"),
        ("memory through ln2 too", _block_norm_memory, "the memory is not normalised"),
        ("no residual on cross", _block_cross_no_residual, "a residual connection is missing"),
        ("no residual on the FFN", _block_ffn_no_residual, "a residual connection is missing"),
        ("ln1 for every branch", _block_one_ln, "each branch has its own LayerNorm"),
        ("residual added to ln(x)", _block_add_to_normed, "not to ln(x)"),
        ("triu mask (True on the future)", _block_triu, "three pre-norm residual branches"),
        ("no memory_mask parameter", _block_no_mask_arg, "forward takes (x, memory, memory_"),
    ],
    "12.3": [
        ("ε/(V − 1) on the others", _ls_szegedy, "not ε/(V − 1) on the other tokens"),
        ("padding in the mean", _ls_padding_in_mean, "padding neither adds to the sum"),
        ("ignore_index not passed on", _ls_ignore_index_not_passed, "padding neither adds"),
        ("no (1 − ε) on the NLL", _ls_no_one_minus, "weighted by 1 − ε"),
        ("sum, not mean", _ls_sum, "not the sum"),
        ("softmax().log()", _ls_softmax_log, "softmax(...).log() overflows"),
        ("ε · sum over V", _ls_uniform_sum, "times the *mean* over the V tokens"),
        ("one loss per position", _ls_per_position, "return one number, the mean"),
        ("loss.item()", _ls_item, "so loss.backward() works"),
        ("no ε range check", _ls_no_range_check, "ε must be in [0, 1)"),
        ("all ignored: NaN", _ls_no_empty_check, "a mean over no position is 0/0"),
        ("no shape check", _ls_no_shape_check, "logits must be targets.shape + (V,)"),
    ],
    "12.4": [
        ("no length normalisation", _bs(normalise="none"), "not by the raw sum"),
        ("length counts BOS", _bs(normalise="with_bos"), "do not count BOS"),
        ("beam never shrinks", _bs(shrink=False), "the beam shrinks as hypotheses finish"),
        ("beam_size live prefixes kept", _beam_fixed_width, "not beam_size live prefixes"),
        ("top-k per prefix", _bs(per_prefix=True), "not k per prefix"),
        ("normalised scores returned", _bs(return_normalised=True), "unnormalised log-prob"),
        ("unterminated dropped", _bs(unterminated=False), "count as finished (unterminated"),
        ("unterminated only if none ended", _bs(unterminated="fallback"), "add them before"),
        ("ranked by the token alone", _bs(add_prefix=False), "a candidate scores its prefix"),
        ("tokens with BOS", _bs(with_bos=True), "return the tokens after BOS"),
        ("no ValueError", _bs(check=False), "raise a ValueError when beam_size < 1"),
    ],
}
