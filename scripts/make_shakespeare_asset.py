"""Train chapter 7's ``cpu`` preset and store it as the model chapter 8 samples from.

    python scripts/make_shakespeare_asset.py [--checkpoint runs/cpu/ckpt.pt] [--out lmkit/assets]

Without ``--checkpoint`` it trains the ``cpu`` preset (2,000 steps, 0.8M parameters, a few
minutes on a laptop CPU) exactly as ``python -m lmkit.train --preset cpu`` does; with it, it
converts that command's checkpoint instead. It writes

- ``shakespeare_char_cpu.pt``: the model's weights in float16 (1.6 MB), loadable with
  ``torch.load(..., weights_only=True)``;
- ``shakespeare_char_cpu.json``: the model and training configuration, the 65 characters of
  the vocabulary, the evaluation history, and the validation loss of the float32 weights
  and of the stored float16 ones on the same batches.

``lmkit.sampling.load_shakespeare_gpt()`` loads them back. Uses the reference solutions, so it
does not depend on a learner's code.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit.model import GPT  # noqa: E402
from lmkit.train import TrainConfig, Trainer, estimate_loss, prepare_data, preset  # noqa: E402

NAME = "shakespeare_char_cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a ckpt.pt of `python -m lmkit.train --preset cpu`")
    parser.add_argument("--out", default="lmkit/assets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer, train_ids, val_ids = prepare_data("tinyshakespeare")
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        config = TrainConfig.from_dict(state["config"])
        model = GPT(config.model)
        model.load_state_dict(state["model"])
        history, train_seconds = state["history"], state["train_seconds"]
    else:
        start = time.perf_counter()
        config = preset("cpu").with_overrides({"out_dir": f"runs/{NAME}"})
        trainer = Trainer(config, train_ids, val_ids)
        history = trainer.fit()
        model, train_seconds = trainer.model, trainer.train_seconds
        print(f"trained in {time.perf_counter() - start:.0f} s")
    if config.to_dict() != preset("cpu").with_overrides({"out_dir": config.out_dir}).to_dict():
        raise SystemExit("the checkpoint is not the cpu preset's: the book describes that one")
    model.eval()
    half = {k: v.to(torch.float16) for k, v in model.state_dict().items()}
    reloaded = GPT(config.model)
    reloaded.load_state_dict({k: v.float() for k, v in half.items()})
    evaluation = dict(block_size=config.model.block_size, batch_size=config.batch_size)
    evaluation |= dict(iters=config.eval_iters, seed=2)  # the Trainer's validation batches
    losses = {
        name: estimate_loss(m, val_ids, **evaluation, device="cpu")
        for name, m in (("float32", model), ("float16", reloaded))
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": half}, out / f"{NAME}.pt")
    train = config.to_dict()
    del train["out_dir"]
    info = {
        "made_by": "python scripts/make_shakespeare_asset.py",
        "preset": "cpu",
        "model": train.pop("model"),
        "train": train,
        "chars": "".join(tokenizer.chars),
        "steps": history["step"][-1] + 1,
        "train_seconds": round(train_seconds, 1),
        "torch": torch.__version__,
        "history": {k: history[k] for k in ("eval_step", "train_loss", "val_loss")},
        "evaluation": evaluation,
        "val_loss": losses["float32"],
        "val_loss_float16": losses["float16"],
    }
    (out / f"{NAME}.json").write_text(json.dumps(info, indent=1) + "\n")
    size = (out / f"{NAME}.pt").stat().st_size / 1e6
    print(
        f"val loss {losses['float32']:.4f} (float32), {losses['float16']:.4f} (float16 as "
        f"stored); wrote {out / NAME}.pt ({size:.1f} MB) and .json"
    )


if __name__ == "__main__":
    main()
