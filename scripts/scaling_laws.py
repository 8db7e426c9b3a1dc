"""Chapter 15's scaling runs: character-level GPTs of six sizes, and one size at four data
budgets, all trained with one recipe on tiny-shakespeare; their losses are stored.

    python scripts/scaling_laws.py [--threads 2] [--steps 3000] [--out benchmarks/results]

The recipe is chapter 7's ``cpu`` preset (context 64, batches of 12, AdamW with warmup and
cosine decay to a tenth, clipping at 1, no dropout) with the width, depth and number of
steps changed; heads are 16 wide. Each run records its non-embedding parameter count N
(Kaplan et al.'s), the tokens it saw D, its compute 6·N·D, the validation loss every
``--steps / 5`` steps (100 batches, a fixed seed) and the best one. About 20 minutes on two
cores. Reference solutions, fixed seeds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit import env  # noqa: E402
from lmkit.scaling import train_scaled_gpt  # noqa: E402
from lmkit.train import prepare_data  # noqa: E402

#: (n_layer, n_embd) of the model sweep: about 3 thousand to 1.8 million non-embedding
#: parameters, the width growing faster than the depth, as in Kaplan et al.'s models.
SIZES = [(1, 16), (2, 32), (2, 48), (3, 64), (4, 96), (4, 128), (5, 176)]
#: The data sweep: the (3, 64) model trained for these fractions of --steps.
DATA_MODEL = (3, 64)
DATA_FRACTIONS = [0.125, 0.25, 0.5, 1.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent.parent / "benchmarks" / "results")
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, train, val = prepare_data("tinyshakespeare")
    print(
        f"{len(train):,} training characters; {torch.get_num_threads()} threads, {env.device_name('cpu')}"
    )

    sizes = []
    for n_layer, n_embd in SIZES:
        row = train_scaled_gpt(n_layer, n_embd, args.steps, train, val)
        sizes.append(row)
        print(
            f"{n_layer} x {n_embd:3}: N = {row['non_embedding_parameters']:>9,}  "
            f"val {row['val_loss']:.4f}  ({row['cpu_seconds']:.0f} CPU-s)"
        )
    budgets = []
    for fraction in DATA_FRACTIONS:
        steps = int(args.steps * fraction)
        row = train_scaled_gpt(*DATA_MODEL, steps, train, val)
        budgets.append(row)
        print(f"{DATA_MODEL} for {steps} steps: D = {row['tokens']:,}  val {row['val_loss']:.4f}")

    result = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "recipe": "chapter 7's cpu preset: context 64, batch 12, AdamW, warmup + cosine, clip 1",
        "train_characters": len(train),
        "sizes": sizes,
        "data_budgets": budgets,
    }
    if not args.no_save:
        out = Path(args.out) / "scaling_cpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
