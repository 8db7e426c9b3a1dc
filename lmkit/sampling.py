"""Chapter 8 — generation: turning next-token logits into text, fast (with a KV cache)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lmkit.grading import exercise

__all__ = ["generate", "load_shakespeare_gpt", "sample_next_token", "shakespeare_gpt_info"]

ASSETS = Path(__file__).parent / "assets"


@exercise("8.1")
def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from ``logits`` of shape ``(B, V)``; returns int64 ``(B,)``.

    In this order:

    1. ``temperature == 0`` means greedy decoding: return ``logits.argmax(-1)`` (nothing
       else applies). Otherwise divide the logits by ``temperature`` (< 1 sharpens, > 1
       flattens the distribution).
    2. ``top_k``: keep exactly the ``k`` largest logits of each row (ties broken towards
       the lower token id), set the others to ``-inf``. ``top_k >= V`` keeps everything.
    3. ``top_p`` (nucleus sampling): sort the remaining probabilities in decreasing order
       and keep the smallest prefix whose total reaches ``top_p`` — the token that crosses
       ``top_p`` is kept, so at least one token always is.
    4. Sample from the softmax of what is left with
       ``torch.multinomial(probs, 1, generator=generator)``.

    Raises ``ValueError`` for ``temperature < 0``, ``top_k < 1`` or ``top_p`` outside
    ``(0, 1]``.
    """
    raise NotImplementedError(
        "Exercise 8.1: greedy if temperature == 0; else logits / temperature, keep the "
        "top_k largest, keep the smallest top_p nucleus, then torch.multinomial"
    )


@torch.no_grad()
def generate(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    stop_token: int | None = None,
) -> torch.Tensor:
    """Continue each sequence of ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens.

    ``model`` is an ``lmkit.model.GPT``. A prompt longer than ``model.config.block_size``
    is cropped to its last ``block_size`` tokens (the model has no positions beyond that).
    With ``use_cache`` the keys and values of past tokens are kept (``KVCache``), so each
    step runs only the new token through the model; once the sequence outgrows
    ``block_size`` the window slides, every position shifts, and each step recomputes the
    window — exactly what happens without the cache. Returns ``(B, T + max_new_tokens)``;
    with ``stop_token`` (a chat model's end-of-turn id) generation stops early, once every
    row has produced it, so rows may end with tokens after their own stop: cut there.
    """
    from lmkit.model import KVCache

    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must be (B, T) with T ≥ 1, got shape {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    block = model.config.block_size
    cache = KVCache(model.config.n_layer) if use_cache else None
    pending = idx[:, -block:]  # tokens not yet in the cache
    stopped = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)  # saw stop_token
    for _ in range(max_new_tokens):
        if cache is not None and cache.length + pending.shape[1] <= block:
            logits = model.forward_cached(pending, cache, last_only=True)[:, -1]
        else:
            logits = model(idx[:, -block:], last_only=True)[0][:, -1]
        token = sample_next_token(logits.float(), temperature, top_k, top_p, generator)
        idx = torch.cat([idx, token[:, None]], dim=1)
        pending = token[:, None]
        if stop_token is not None:
            stopped |= token == stop_token
            if bool(stopped.all()):
                break
    model.train(was_training)
    return idx


def shakespeare_gpt_info(folder: str | Path = ASSETS) -> dict:
    """What ``scripts/make_shakespeare_asset.py`` recorded about the stored Shakespeare model:
    ``model`` and ``train`` (the configurations), ``chars`` (the vocabulary), ``history``
    (the evaluations during training) and ``val_loss`` (the final validation loss, float32
    weights) beside ``val_loss_float16`` (the stored weights), both measured on the
    ``evaluation`` batches of :func:`lmkit.train.estimate_loss`."""
    return json.loads((Path(folder) / "shakespeare_char_cpu.json").read_text())


def load_shakespeare_gpt(folder: str | Path = ASSETS):
    """Chapter 7's ``cpu`` preset, trained once for 2,000 steps on tiny-shakespeare.

    Made by ``scripts/make_shakespeare_asset.py`` and shipped with the course (weights in
    float16, 1.6 MB): no training needed to sample from it. Returns ``(model, tokenizer)``:
    an ``lmkit.model.GPT`` in float32 and ``eval()`` mode on the CPU, and the
    ``CharTokenizer`` of its 65 characters.
    """
    from lmkit.model import GPT, GPTConfig
    from lmkit.tokenizers import CharTokenizer

    info = shakespeare_gpt_info(folder)
    state = torch.load(
        Path(folder) / "shakespeare_char_cpu.pt", map_location="cpu", weights_only=True
    )
    model = GPT(GPTConfig(**info["model"]))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.eval(), CharTokenizer(list(info["chars"]))
