"""Reference solutions of chapter 12 (lmkit.translation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import lmkit.translation
from lmkit.translation import NextLogProbs
from solutions.attention import MultiHeadAttention as _ReferenceAttention
from solutions.attention import causal_mask, check_attention_inputs, scaled_dot_product_attention
from solutions.block import FeedForward as _ReferenceFeedForward
from solutions.block import _run


class CrossAttention(lmkit.translation.CrossAttention):
    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        for name, t in (("x", x), ("memory", memory)):
            if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[-1] != self.d_model:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(
                    f"{name} should have shape (B, ·, d_model) = (B, ·, {self.d_model}), got {got}"
                )
        if x.shape[0] != memory.shape[0]:
            raise ValueError(
                f"x and memory must hold the same sentences: batch {x.shape[0]} vs "
                f"{memory.shape[0]}"
            )
        B, T, C = x.shape
        S = memory.shape[1]
        h, hd = self.n_heads, self.head_dim
        q = self.q(x).view(B, T, h, hd).transpose(1, 2)  # (B, h, T, hd): the target asks
        k, v = self.kv(memory).split(C, dim=-1)  # the source answers
        k = k.view(B, S, h, hd).transpose(1, 2)  # (B, h, S, hd)
        v = v.view(B, S, h, hd).transpose(1, 2)
        # No causal mask: every target position may read the whole (real) source.
        p = self.dropout.p if self.training else 0.0
        if self.fast:
            check_attention_inputs(q, k, v, mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            self.last_weights = None
        else:
            y, weights = scaled_dot_product_attention(q, k, v, mask)
            if p:
                weights = self.dropout(weights)
                y = weights @ v
            self.last_weights = weights.detach()
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class DecoderBlock(lmkit.translation.DecoderBlock):
    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # Each sub-layer through its reference (solutions.block._run), so this reference
        # runs on its own even while chapters 4, 5 or exercise 12.1 are still stubs.
        causal = causal_mask(x.shape[1]).to(x.device)
        h = _run(self.self_attn, _ReferenceAttention.forward, _run(self.ln1, None, x), causal)
        x = x + h  # what was written so far
        h = _run(self.ln2, None, x)
        x = x + CrossAttention.forward(self.cross, h, memory, memory_mask)  # the source
        return x + _run(self.ffn, _ReferenceFeedForward.forward, _run(self.ln3, None, x))


def label_smoothed_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    smoothing: float = 0.1,
    ignore_index: int = -100,
) -> torch.Tensor:
    if logits.dim() < 2 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits should be targets' shape plus V: got logits {tuple(logits.shape)} and "
            f"targets {tuple(targets.shape)}"
        )
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    logp = F.log_softmax(logits.float(), dim=-1).reshape(-1, logits.shape[-1])  # (N, V)
    targets = targets.reshape(-1)
    keep = targets != ignore_index
    if not bool(keep.any()):
        raise ValueError(f"every target is ignore_index ({ignore_index}): nothing to average")
    logp, targets = logp[keep], targets[keep]
    nll = -logp.gather(1, targets[:, None]).squeeze(1)  # −log p[target]
    uniform = -logp.mean(dim=-1)  # cross-entropy with the uniform distribution
    return ((1.0 - smoothing) * nll + smoothing * uniform).mean()


def beam_search(
    next_log_probs: NextLogProbs,
    bos_id: int,
    eos_id: int,
    *,
    beam_size: int = 4,
    max_len: int = 50,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    if beam_size < 1 or max_len < 1:
        raise ValueError(f"beam_size and max_len must be ≥ 1, got {beam_size} and {max_len}")
    live: list[tuple[list[int], float]] = [([bos_id], 0.0)]
    finished: list[tuple[list[int], float]] = []
    for _ in range(max_len):
        k = beam_size - len(finished)  # the beam shrinks as hypotheses finish
        logp = next_log_probs(torch.tensor([seq for seq, _ in live]))  # (N, V)
        # float64 sums, like greedy_search's Python floats: beam 1 makes the same choices
        scores = torch.tensor([s for _, s in live], dtype=torch.float64)[:, None] + logp.double()
        top = scores.flatten().topk(min(k, scores.numel()))  # best first, over every beam
        V = logp.shape[1]
        new_live = []
        for score, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            row, token = divmod(flat, V)
            hyp = (live[row][0] + [token], score)
            (finished if token == eos_id else new_live).append(hyp)
        live = new_live
        if not live:
            break
    finished.extend(live)  # max_len reached: unterminated hypotheses count too

    def normalised(hyp: tuple[list[int], float]) -> float:
        return hyp[1] / (len(hyp[0]) - 1) ** length_penalty

    ranked = sorted(finished, key=normalised, reverse=True)  # stable: ties keep their order
    return [(seq[1:], score) for seq, score in ranked[:beam_size]]
