"""Generation speed with and without the KV cache (chapter 8).

    python benchmarks/bench_generate.py                 # CPU, 256 new tokens
    python benchmarks/bench_generate.py --device cuda --new-tokens 512

Greedy decoding (from a one-token prompt by default, ``--prompt-tokens`` for longer ones)
with the ``gpu`` preset's model shape (6 layers,
384 wide, 256 context; random weights — speed does not depend on them). Without the cache
every step re-runs the model over the whole prefix; with it, only the new token. Both must
produce the same tokens (checked). Prints tokens/s and the speed-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit.env import pick_device  # noqa: E402
from lmkit.model import GPT  # noqa: E402
from lmkit.sampling import generate  # noqa: E402
from lmkit.train import TRAIN_PRESETS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = pick_device(args.device)
    config = dataclasses.replace(TRAIN_PRESETS["gpu"].model, dropout=0.0)
    total = args.prompt_tokens + args.new_tokens
    if total > config.block_size:  # room for prompt + output: no sliding window
        config = dataclasses.replace(config, block_size=total)
    torch.manual_seed(0)
    model = GPT(config).to(device).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long, device=device)
    print(
        f"model {model.num_parameters() / 1e6:.2f}M parameters, device {device}, "
        f"{args.new_tokens} new tokens, torch {torch.__version__}"
    )
    outputs, speeds = {}, {}
    for use_cache in (False, True):
        best = float("inf")
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[use_cache] = generate(
                model, prompt, args.new_tokens, temperature=0.0, use_cache=use_cache
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        speeds[use_cache] = args.new_tokens / best
        print(f"use_cache={use_cache!s:<6} {speeds[use_cache]:>10,.0f} tokens/s")
    assert torch.equal(outputs[False], outputs[True]), "the cache changed the output"
    print(f"speed-up {speeds[True] / speeds[False]:.1f}x (same tokens: yes)")


if __name__ == "__main__":
    main()
