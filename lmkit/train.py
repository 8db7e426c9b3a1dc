"""Chapter 7 — training the GPT: presets, the ``Trainer`` and the command line.

``python -m lmkit.train --preset cpu`` (or ``make train``) trains a character-level GPT on
tiny-shakespeare. The loop is made of the course's pieces — ``get_batch`` (2.4), the GPT
(chapters 3–6), ``lm_loss`` (6.1), ``cosine_lr``, ``clip_grad_norm_`` and AdamW (7.1–7.3) —
plus what a real run needs: gradient accumulation, mixed precision on GPUs, optional
``torch.compile``, evaluation, early stopping, atomic checkpoints and exact resumption, and
data-parallel training with ``torchrun``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lmkit.batching import get_batch
from lmkit.env import pick_device
from lmkit.model import GPT, GPTConfig
from lmkit.optim import AdamW, clip_grad_norm_, cosine_lr, param_groups

__all__ = [
    "TRAIN_PRESETS",
    "EarlyStopping",
    "TrainConfig",
    "Trainer",
    "estimate_loss",
    "main",
    "prepare_data",
]


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` evaluations.

    ``step(val_loss)`` records one evaluation and returns ``True`` when training should
    stop. An improvement must beat the best loss so far by more than ``min_delta``.
    ``best`` and ``best_step`` say which evaluation to keep (checkpoint it when
    ``improved`` is true). A non-finite loss stops at once: it will not come back.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be ≥ 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be ≥ 0, got {min_delta}")
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.best_step = -1
        self.evaluations = 0
        self.improved = False
        self._bad = 0

    def step(self, val_loss: float) -> bool:
        index = self.evaluations
        self.evaluations += 1
        if not math.isfinite(val_loss):
            self.improved = False
            return True
        self.improved = val_loss < self.best - self.min_delta
        if self.improved:
            self.best, self.best_step, self._bad = val_loss, index, 0
            return False
        self._bad += 1
        return self._bad >= self.patience


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on: the model, the data, the optimisation."""

    model: GPTConfig = field(default_factory=lambda: GPTConfig.preset("shakespeare-char-cpu"))
    dataset: str = "tinyshakespeare"
    batch_size: int = 12  # sequences per micro-batch (per process)
    grad_accum: int = 1  # micro-batches per optimiser step
    max_steps: int = 2000
    warmup_steps: int = 100
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables clipping
    eval_interval: int = 250
    eval_iters: int = 50  # batches per loss estimate
    patience: int = 0  # early stopping after this many evaluations without progress; 0 = off
    target_loss: float = 0.0  # stop at the first evaluation with val ≤ this; 0 = off
    checkpoint_interval: int = 0  # steps between checkpoints; 0 = only at the end
    out_dir: str = "runs/default"
    device: str | None = None  # None: CUDA → MPS → CPU (lmkit.env.pick_device)
    dtype: str = "auto"  # auto | fp32 | bf16 | fp16 (mixed precision on CUDA)
    compile: bool = False
    seed: int = 1337

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be between 0 and max_steps "
                f"({self.max_steps})"
            )
        if not 0 <= self.min_lr <= self.max_lr:
            raise ValueError(f"need 0 ≤ min_lr ({self.min_lr}) ≤ max_lr ({self.max_lr})")
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"dtype must be auto, fp32, bf16 or fp16, got {self.dtype!r}")
        if min(self.patience, self.checkpoint_interval, self.grad_clip, self.target_loss) < 0:
            raise ValueError("patience, checkpoint_interval, grad_clip, target_loss must be ≥ 0")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.model.block_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["model"] = GPTConfig(**d["model"])
        return cls(**d)

    def with_overrides(self, overrides: dict[str, str]) -> TrainConfig:
        """Apply ``key=value`` strings to this config or its model (by field name)."""
        top = {f.name: f for f in dataclasses.fields(self)}
        sub = {f.name: f for f in dataclasses.fields(self.model)}
        mine, theirs = {}, {}
        for key, raw in overrides.items():
            if key in top and key != "model":
                mine[key] = _parse(raw, top[key].type, key)
            elif key in sub:
                theirs[key] = _parse(raw, sub[key].type, key)
            else:
                known = sorted((set(top) - {"model"}) | set(sub))
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(known)}")
        model = dataclasses.replace(self.model, **theirs) if theirs else self.model
        return dataclasses.replace(self, model=model, **mine)


def _parse(raw: str, annotation, key: str):
    text = str(annotation)
    try:
        if "bool" in text:
            if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"true", "1", "yes"}
        if raw.lower() == "none" and "None" in text:
            return None
        if "int" in text and "float" not in text:
            return int(raw)
        if "float" in text:
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected {text}") from None


def _char_model(**kw) -> GPTConfig:
    return GPTConfig(vocab_size=65, bias=False, **kw)


#: Named training runs on tiny-shakespeare at the character level (65 symbols).
TRAIN_PRESETS: dict[str, TrainConfig] = {
    # nanoGPT's shakespeare_char recipe (6 layers, 6 heads, 384 wide, 256 context), on a GPU.
    "gpu": TrainConfig(
        model=_char_model(
            block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, fast_attention=True
        ),
        batch_size=64,
        max_steps=5000,
        warmup_steps=100,
        max_lr=1e-3,
        min_lr=1e-4,
        beta2=0.99,
        eval_interval=250,
        eval_iters=200,
        dtype="auto",
        compile=True,
        out_dir="runs/gpu",
    ),
    # nanoGPT's CPU budget: ≤ 0.8M parameters, 2000 steps of 12 × 64 tokens.
    "cpu": TrainConfig(
        model=_char_model(
            block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, fast_attention=True
        ),
        batch_size=12,
        max_steps=2000,
        warmup_steps=100,
        max_lr=3e-3,  # a small model takes a larger rate: val 1.76 (2e-3: 1.80)
        min_lr=3e-4,
        beta2=0.99,
        eval_interval=250,
        eval_iters=20,  # as nanoGPT's CPU recipe: comparable numbers and wall time
        device="cpu",
        dtype="fp32",
        out_dir="runs/cpu",
    ),
    # Small enough for a notebook under nbval on two CPU cores.
    "ci": TrainConfig(
        model=_char_model(
            block_size=32, n_layer=2, n_head=2, n_embd=64, dropout=0.0, fast_attention=True
        ),
        batch_size=16,
        max_steps=300,
        warmup_steps=30,
        max_lr=3e-3,
        min_lr=3e-4,
        beta2=0.99,
        eval_interval=100,
        eval_iters=20,
        device="cpu",
        dtype="fp32",
        out_dir="runs/ci",
    ),
}


def preset(name: str) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]


def prepare_data(dataset: str = "tinyshakespeare"):
    """Characters of ``dataset`` → ``(tokenizer, train ids, val ids)`` (uint16, 90/10)."""
    from lmkit.data import load_text, to_uint16, train_val_split
    from lmkit.tokenizers import CharTokenizer

    text = load_text(dataset)
    tokenizer = CharTokenizer(sorted(set(text)))
    ids = to_uint16(tokenizer.encode(text))
    train, val = train_val_split(ids, 0.9)
    return (
        tokenizer,
        torch.from_numpy(train.astype(np.int64)),
        torch.from_numpy(val.astype(np.int64)),
    )


@torch.no_grad()
def estimate_loss(
    model,
    data: torch.Tensor,
    *,
    block_size: int,
    batch_size: int,
    iters: int,
    device,
    seed: int = 0,
    autocast=contextlib.nullcontext,
) -> float:
    """Mean loss over ``iters`` random batches of ``data`` (a fixed seed: every call sees
    the same batches, so estimates are comparable), in ``eval()`` mode."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(iters):
        x, y = get_batch(data, block_size, batch_size, g)
        with autocast():
            _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    model.train(was_training)
    return total / iters


class Trainer:
    """Trains a :class:`~lmkit.model.GPT` on token ids, as :class:`TrainConfig` says.

    ``Trainer(config, train_ids, val_ids).fit()`` runs to ``max_steps`` (or an early stop)
    and returns the history; ``resume=True`` continues from ``out_dir/ckpt.pt``, exactly
    where an interrupted run left off. Under ``torchrun`` each process takes its slice of
    the same global batch, so N processes follow the 1-process trajectory.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor,
        *,
        resume: bool = False,
        progress: bool = True,
    ) -> None:
        self.config, self.train_ids, self.val_ids = config, train_ids, val_ids
        self.progress = progress
        self.rank, self.world = _distributed_setup()
        self.device = pick_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        if self.device.type == "cuda":  # TF32 matmuls: ~free speed on Ampere and later
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.dtype = self._resolve_dtype(config.dtype)
        torch.manual_seed(config.seed)
        self.model = GPT(config.model).to(self.device)
        self.optimizer = AdamW(
            param_groups(self.model, config.weight_decay),
            lr=config.max_lr,
            betas=(config.beta1, config.beta2),
        )
        # Loss scaling keeps fp16 gradients from underflowing; bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.batches = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: dict[str, list] = {
            "step": [],
            "loss": [],
            "lr": [],
            "grad_norm": [],
            "eval_step": [],
            "train_loss": [],
            "val_loss": [],
            "train_seconds": [],  # training time at each evaluation (evaluations excluded)
        }
        self.stopper = EarlyStopping(config.patience) if config.patience else None
        self.best_val = math.inf
        self.train_seconds = 0.0  # time spent in train_step, carried over by a resume
        self.reached_target: int | None = None  # first step with val ≤ target_loss
        self.ckpt_path = Path(config.out_dir) / "ckpt.pt"
        if resume:
            self.load_checkpoint(self.ckpt_path)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if config.compile:
            self.net = torch.compile(self.net)

    # ----------------------------------------------------------------------- helpers

    def _resolve_dtype(self, name: str) -> torch.dtype:
        if name not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"dtype must be auto, fp32, bf16 or fp16, got {name!r}")
        if self.device.type != "cuda":
            if name in ("bf16", "fp16"):
                raise ValueError(f"mixed precision ({name}) is for CUDA devices; use fp32 here")
            return torch.float32
        if name == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Every process draws the same global batch and keeps its slice: N processes with
        # batch B see exactly what 1 process with batch N·B sees.
        c = self.config
        x, y = get_batch(
            self.train_ids, c.model.block_size, c.batch_size * self.world, self.batches
        )
        rows = slice(self.rank * c.batch_size, (self.rank + 1) * c.batch_size)
        return x[rows].to(self.device), y[rows].to(self.device)

    def evaluate(self) -> tuple[float, float]:
        c = self.config
        kw = dict(
            block_size=c.model.block_size,
            batch_size=c.batch_size,
            iters=c.eval_iters,
            device=self.device,
            autocast=self.autocast,
        )
        return (
            estimate_loss(self.model, self.train_ids, **kw, seed=1),
            estimate_loss(self.model, self.val_ids, **kw, seed=2),
        )

    # ------------------------------------------------------------------ the training loop

    def _sync(self) -> None:
        if self.device.type == "cuda":  # kernels run asynchronously: wait before timing
            torch.cuda.synchronize(self.device)

    def train_step(self) -> float:
        """One optimiser step (``grad_accum`` micro-batches); returns the mean loss."""
        self._sync()
        start = time.perf_counter()
        try:
            return self._train_step()
        finally:
            self._sync()
            self.train_seconds += time.perf_counter() - start

    def _train_step(self) -> float:
        c = self.config
        lr = cosine_lr(
            self.step,
            max_lr=c.max_lr,
            min_lr=c.min_lr,
            warmup_steps=c.warmup_steps,
            max_steps=c.max_steps,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        total = 0.0
        for micro in range(c.grad_accum):
            x, y = self._micro_batch()
            sync = micro == c.grad_accum - 1 or self.world == 1
            ctx = contextlib.nullcontext() if sync else self.net.no_sync()
            with ctx, self.autocast():
                _, loss = self.net(x, y)
                loss = loss / c.grad_accum  # the gradients add up to the mean over the step
            self.scaler.scale(loss).backward()
            total += loss.detach()
        if self.world > 1:
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.AVG)
        total = total.item()
        if not math.isfinite(total):
            raise FloatingPointError(
                f"the training loss is {total} at step {self.step}: lower max_lr, check the "
                "data, or use bf16 instead of fp16 (the last checkpoint is "
                f"{self.ckpt_path if self.ckpt_path.exists() else 'not written yet'})"
            )
        self.scaler.unscale_(self.optimizer)
        norm = clip_grad_norm_(self.model.parameters(), c.grad_clip if c.grad_clip else math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.history["step"].append(self.step)
        self.history["loss"].append(total)
        self.history["lr"].append(lr)
        self.history["grad_norm"].append(float(norm))
        self.step += 1
        return total

    def fit(self) -> dict[str, list]:
        """Train until ``max_steps`` or an early stop; evaluate every ``eval_interval``."""
        from tqdm.auto import tqdm

        c = self.config
        bar = tqdm(
            total=c.max_steps,
            initial=self.step,
            disable=not self.progress or self.rank != 0,
            desc="training",
            unit="step",
        )
        start = time.perf_counter()
        stop = False
        while self.step < c.max_steps and not stop:
            loss = self.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.history['lr'][-1]:.1e}")
            last = self.step == c.max_steps
            if self.step % c.eval_interval == 0 or last:
                stop = self._evaluate_and_maybe_stop() and not last
            if c.checkpoint_interval and self.step % c.checkpoint_interval == 0 and not last:
                self.save_checkpoint(self.ckpt_path)
        bar.close()
        self.elapsed = time.perf_counter() - start
        self.save_checkpoint(self.ckpt_path)
        return self.history

    def _evaluate_and_maybe_stop(self) -> bool:
        train_loss, val_loss = self.evaluate()
        self.history["eval_step"].append(self.step)
        self.history["train_loss"].append(train_loss)
        self.history["val_loss"].append(val_loss)
        self.history["train_seconds"].append(self.train_seconds)
        if val_loss < self.best_val:
            self.best_val = val_loss
            if self.rank == 0 and self.config.patience:
                self.save_checkpoint(Path(self.config.out_dir) / "best.pt")
        target = self.config.target_loss
        if target and val_loss <= target:
            if self.reached_target is None:
                self.reached_target = self.step
            return True
        return bool(self.stopper and self.stopper.step(val_loss))

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "config": self.config.to_dict(),
            "history": self.history,
            "best_val": self.best_val,
            "train_seconds": self.train_seconds,
            "rng": {
                "torch": torch.get_rng_state(),
                "batches": self.batches.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    def save_checkpoint(self, path: Path) -> Path:
        """Write atomically: a temporary file in the same folder, then a rename, so a crash
        never leaves a half-written checkpoint behind."""
        if self.rank != 0:
            return path
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state(), f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def load_checkpoint(self, path: Path) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint to resume from at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = TrainConfig.from_dict(state["config"])
        if saved.model != self.config.model:
            raise ValueError(
                f"{path} was trained with a different model ({saved.model}); resuming needs "
                f"the same one ({self.config.model})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.history = state["history"]
        self.history.setdefault("train_seconds", [])
        self.best_val = state["best_val"]
        self.train_seconds = state.get("train_seconds", 0.0)
        torch.set_rng_state(state["rng"]["torch"])
        self.batches.set_state(state["rng"]["batches"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    # ------------------------------------------------------------------------ figures

    def plot(self):
        """Loss (training steps and evaluations) and learning rate against the step."""
        import matplotlib.pyplot as plt

        h = self.history
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
        ax1.plot(h["step"], h["loss"], lw=0.6, alpha=0.5, label="training batches")
        ax1.plot(h["eval_step"], h["train_loss"], "o-", label="train (estimate)")
        ax1.plot(h["eval_step"], h["val_loss"], "o-", label="validation (estimate)")
        ax1.set(xlabel="step", ylabel="loss (nats/char)")
        ax1.legend(fontsize=8)
        ax2.plot(h["step"], h["lr"])
        ax2.set(xlabel="step", ylabel="learning rate")
        fig.tight_layout()
        return fig


def _distributed_setup() -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmkit.train",
        description="Train a character-level GPT on tiny-shakespeare.",
        epilog="Overrides are key=value pairs of TrainConfig or GPTConfig fields, e.g. "
        "max_steps=500 n_layer=6 dropout=0.1",
    )
    parser.add_argument("--preset", default="cpu", help=f"one of {', '.join(TRAIN_PRESETS)}")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best)")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt")
    parser.add_argument("--sample", type=int, default=300, help="characters to sample after")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        config = preset(args.preset)
        pairs = {}
        for item in args.overrides:
            if "=" not in item:
                raise ValueError(f"overrides look like key=value, got {item!r}")
            key, value = item.split("=", 1)
            pairs[key] = value
        if args.device:
            pairs["device"] = args.device
        config = config.with_overrides(pairs)
        pick_device(config.device)  # fail now, with the list of devices there are
    except (ValueError, RuntimeError) as err:
        parser.error(str(err))
    tokenizer, train_ids, val_ids = prepare_data(config.dataset)
    trainer = Trainer(config, train_ids, val_ids, resume=args.resume)
    model = trainer.model
    if trainer.rank == 0:
        print(
            f"{args.preset}: {model.num_parameters() / 1e6:.2f}M parameters, "
            f"{config.tokens_per_step * trainer.world:,} tokens per step, "
            f"device {trainer.device}, {trainer.dtype}, {trainer.world} process(es)"
        )
    history = trainer.fit()
    if trainer.rank == 0:
        tokens = (
            (trainer.step - (history["step"][0] if history["step"] else 0))
            * config.tokens_per_step
            * trainer.world
        )
        print(
            f"step {trainer.step}: train {history['train_loss'][-1]:.4f}, "
            f"val {history['val_loss'][-1]:.4f} (best {trainer.best_val:.4f}); "
            f"{trainer.elapsed:.1f} s in all, {trainer.train_seconds:.1f} s training "
            f"({tokens / max(trainer.train_seconds, 1e-9):,.0f} tokens/s)"
        )
        if config.target_loss:
            if trainer.reached_target is None:
                print(f"target val ≤ {config.target_loss} not reached")
            else:
                print(
                    f"target val ≤ {config.target_loss} reached at step "
                    f"{trainer.reached_target} after {history['train_seconds'][-1]:.1f} s "
                    "of training (evaluations excluded, compilation included)"
                )
        out = Path(config.out_dir)
        trainer.plot().savefig(out / "curves.png", dpi=110)
        print(f"checkpoint {out / 'ckpt.pt'}, curves {out / 'curves.png'}")
        if args.sample:
            from lmkit.sampling import generate

            g = torch.Generator(device=trainer.device).manual_seed(0)
            start = torch.tensor([tokenizer.encode("\n")], device=trainer.device)
            text = tokenizer.decode(
                generate(model, start, args.sample, temperature=0.8, top_k=None, generator=g)[
                    0
                ].tolist()
            )
            print("-" * 60 + "\n" + text.strip() + "\n" + "-" * 60)
    if trainer.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
