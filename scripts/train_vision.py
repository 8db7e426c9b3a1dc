"""Chapter 14's long run: a Vision Transformer on all of Fashion-MNIST, against a logistic
regression and a small CNN given the same CPU time, and the ViT without positions.

    python scripts/train_vision.py [--preset cpu|ci] [--threads 1] [--out benchmarks/results]

Trains :class:`lmkit.vision.ViT` (preset ``cpu``: patches of 7 × 7 pixels, 16 patches + [CLS],
4 blocks of width 96) for the preset's steps with :func:`lmkit.vision.fit` and times it. The
baselines then get the same wall-clock budget: each one's seconds per step is measured, and it
trains for as many steps as fit in the ViT's time (the same recipe: AdamW, warmup and cosine,
clipping). The same ViT without positions is trained for the same steps (the pitfall). Every
model is scored once, on the 10,000 test images (no model selection, so no validation set),
and the ViTs also on test images whose patches were shuffled. Only numbers are stored
(``vision_<preset>.json``). Reference solutions, fixed seeds.
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
from lmkit.data import load_fashion_mnist  # noqa: E402
from lmkit.vision import (  # noqa: E402
    PRESETS,
    ViT,
    ViTConfig,
    evaluate,
    fit,
    logistic_regression,
    prepare_images,
    seconds_per_step,
    shuffle_patches,
    small_cnn,
)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    n = preset["n_train"]

    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    X, Y = prepare_images(train_x[:n]), torch.tensor(train_y[:n]).long()
    Xt, Yt = prepare_images(test_x), torch.tensor(test_y).long()
    config = ViTConfig(**preset["model"])
    Xs = shuffle_patches(Xt, config.patch_size, seed=0)
    train = preset["train"]
    print(f"{n:,} training images, {torch.get_num_threads()} threads, {env.device_name('cpu')}")

    results: dict[str, dict] = {}

    def run(name: str, model: torch.nn.Module, steps: int, shuffled: bool = False) -> dict:
        torch.manual_seed(0)
        out = fit(model, X, Y, **{**train, "steps": steps}, log_every=max(steps // 5, 1), log=print)
        row = {
            "test_accuracy": evaluate(model, Xt, Yt),
            "parameters": _params(model),
            "steps": steps,
            "seconds": round(out["seconds"], 1),
            "losses": [round(x, 4) for x in out["losses"]],
        }
        if shuffled:
            row["test_accuracy_patches_shuffled"] = evaluate(model, Xs, Yt)
        print(f"{name}: {row}")
        results[name] = row
        return row

    torch.manual_seed(0)
    vit = run("vit", ViT(config), train["steps"], shuffled=True)
    budget = vit["seconds"]
    kw = dict(batch_size=train["batch_size"], lr=train["lr"])
    for name, factory in (("cnn", small_cnn), ("logistic", logistic_regression)):
        torch.manual_seed(0)
        per_step = seconds_per_step(factory, X, Y, **kw)
        steps = max(int(budget / per_step), 1)
        print(f"{name}: {per_step * 1000:.2f} ms a step → {steps:,} steps in {budget:.0f} s")
        torch.manual_seed(0)
        run(name, factory(), steps)
    torch.manual_seed(0)
    run("vit_no_positions", ViT(config.with_(positions=False)), train["steps"], shuffled=True)

    record = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "model": preset["model"],
        "train": train,
        "n_train": n,
        "n_test": len(Yt),
        "equal_time_budget_seconds": budget,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"vision_{args.preset}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
