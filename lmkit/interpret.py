"""Chapter 15 — interpretability: what the residual stream of a model says, layer by layer.

The **logit lens** (nostalgebraist, 2020) reads a Transformer's residual stream after every
block as if it were the last one: the model's own final norm and output head turn the
vector at each layer into logits over the vocabulary. Since every block only *adds* to the
stream, the prediction can be watched forming: early layers predict frequent tokens, the
answer appears at some depth and grows more certain. :func:`logit_lens` (exercise 15.2)
computes those logits for chapter 11's ``Llama``; :func:`lens_report` ranks one token in them.
"""

from __future__ import annotations

import torch

from lmkit.grading import exercise

__all__ = ["lens_report", "logit_lens"]


@exercise("15.2")
def logit_lens(model, idx: torch.Tensor) -> torch.Tensor:
    """The logits that each layer's residual stream predicts, for a ``Llama``.

    Run ``idx`` ``(B, T)`` through ``model.embed`` and then each of ``model.blocks`` in turn
    (a block returns the stream with its update already added: ``x = block(x)``). After the
    embedding and after every block, read the stream out with the model's final
    ``model.norm`` and ``model.head``, exactly as the model reads its last layer: the
    readout must not change the stream that goes on to the next block.

    Returns:
        ``(n_layer + 1, B, T, V)`` logits, without gradients: entry 0 from the embeddings
        alone, entry ``l`` after block ``l``; the last entry equals ``model(idx)[0]``.
        The model is only read: its weights and mode are left as they were.
    """
    raise NotImplementedError(
        "Exercise 15.2: x = model.embed(idx); read = [model.head(model.norm(x))]; for each "
        "block: x = block(x), read.append(model.head(model.norm(x))); torch.stack(read)"
    )


def lens_report(model, tokenizer, text: str, target: str) -> list[tuple[int, str, float, int]]:
    """For the last position of ``text``: per layer (0 = embeddings), the top token, the
    probability of ``target`` (whose first token is used) and its rank (0 = top), from
    :func:`logit_lens`."""
    idx = tokenizer(text, return_tensors="pt")["input_ids"]
    want = tokenizer(target)["input_ids"][0]
    probs = logit_lens(model, idx)[:, 0, -1].float().softmax(-1)  # (L + 1, V)
    rows = []
    for layer, p in enumerate(probs):
        rank = int((p > p[want]).sum())
        rows.append((layer, tokenizer.decode([int(p.argmax())]), float(p[want]), rank))
    return rows
