"""The training speed ladder: how much each standard trick buys, in tokens/s and MFU, and
how the course's GPT compares with a plain PyTorch GPT of the same shape.

    python benchmarks/bench_train.py                     # the best device, gpu preset shape
    python benchmarks/bench_train.py --device cpu --preset cpu --threads 2

Rungs of the ladder (each adds to the previous one):

1. fp32, the course's teaching attention and its AdamW (the learner's code path)
2. TF32 matmuls (CUDA)
3. bf16 autocast (CUDA)
4. fused attention (``F.scaled_dot_product_attention``)
5. ``torch.compile``
6. fused AdamW (``torch.optim.AdamW(fused=True)``, CUDA)

Every course rung runs the training step of ``lmkit.train.Trainer``: the learning rate from
``cosine_lr``, forward pass with ``lm_loss``, backward pass, ``clip_grad_norm_`` and the
course's ``AdamW`` (rung 6: PyTorch's fused one). The baseline is a self-contained plain
PyTorch GPT of the same configuration (widths, heads, blocks, pre-norm, GELU, tied head,
dropout), built from ``nn.LayerNorm``, ``nn.Linear`` and ``F.scaled_dot_product_attention``
with ``is_causal=True``, trained with ``torch.nn.utils.clip_grad_norm_`` and
``torch.optim.AdamW(foreach=True)``; it starts from the course model's weights, and the
script asserts that both give the same loss. It runs eagerly and compiled, with the settings
of the fused-attention rung and of the compiled rung.

Machine load hits every variant alike: all are built and warmed up first, then measured in
interleaved rounds (A B C … A B C …) and summarised by medians. The ratio of the course's
tokens/s to the baseline's is the median over rounds of the two measured side by side.
``--diagnose`` adds a course GPT whose LayerNorms are ``nn.LayerNorm`` (PyTorch's fused
kernel instead of the reference ``layer_norm``, written out): what that one difference costs.

On a CPU only the rungs that exist there run. MFU uses FLOPs/token = 6N + 12·L·d·T
(chapter 1's ``flops_per_token``) against the device's dense bf16 peak when known.
Results go to ``benchmarks/results/train_speed_<device>.json`` with the date and device.
Uses the reference solutions (LMKIT_REFERENCE=all), so it measures the course's model.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from lmkit.env import device_name, pick_device  # noqa: E402
from lmkit.grading import reference  # noqa: E402
from lmkit.model import GPT, GPTConfig  # noqa: E402
from lmkit.optim import AdamW, clip_grad_norm_, cosine_lr, param_groups  # noqa: E402
from lmkit.train import TRAIN_PRESETS, TrainConfig  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "4090": 165e12}
BASELINE = "plain PyTorch GPT"
DIAGNOSTIC = "  (diagnostic) + nn.LayerNorm"


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


# ----------------------------------------------------------------------- the baseline


class PlainBlock(nn.Module):
    """A pre-norm GPT-2 block as a PyTorch user would write it (no ``lmkit`` inside)."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        d = c.n_embd
        self.n_head, self.p, self.gelu = c.n_head, c.dropout, c.gelu
        self.ln1 = nn.LayerNorm(d, bias=c.bias)
        self.qkv = nn.Linear(d, 3 * d, bias=c.bias)
        self.proj = nn.Linear(d, d, bias=c.bias)
        self.ln2 = nn.LayerNorm(d, bias=c.bias)
        self.fc = nn.Linear(d, c.ffn_dim, bias=c.bias)
        self.fc_proj = nn.Linear(c.ffn_dim, d, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        p = self.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        # As the course's model: dropout on the attention weights and after the FFN.
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        h = F.gelu(self.fc(self.ln2(x)), approximate=self.gelu)
        return x + self.drop(self.fc_proj(h))


class PlainGPT(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(PlainBlock(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.drop(self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @classmethod
    def like(cls, course: GPT) -> PlainGPT:
        """A plain GPT holding ``course``'s weights (the key names differ only)."""
        plain = cls(course.config)
        rename = {
            "embed.tok": "tok",
            "embed.pos": "pos",
            "attn.qkv": "qkv",
            "attn.proj": "proj",
            "ffn.fc": "fc",
            "ffn.proj": "fc_proj",
        }
        state = {}
        for key, value in course.state_dict().items():
            for ours, theirs in rename.items():
                key = key.replace(ours, theirs)
            state[key] = value.clone()
        plain.load_state_dict(state, strict=True)
        return plain


def plain_lr(step: int, c: TrainConfig) -> float:
    """The course's schedule (linear warmup, cosine decay), as a LambdaLR factor."""
    if step < c.warmup_steps:
        return (step + 1) / c.warmup_steps
    ratio = min(1.0, (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps))
    lr = c.min_lr + (c.max_lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))
    return lr / c.max_lr


# ------------------------------------------------------------------------ the variants


def build(
    config: TrainConfig,
    device: torch.device,
    *,
    tf32: bool = False,
    bf16: bool = False,
    fused_attention: bool = False,
    compile_: bool = False,
    fused_adamw: bool = False,
    baseline: bool = False,
    torch_layernorm: bool = False,
) -> Callable[[], None]:
    """One training step of a variant, as a function (its model, optimiser and batch built)."""
    torch.manual_seed(0)
    model_config = dataclasses.replace(config.model, fast_attention=fused_attention)
    course = GPT(model_config)
    B, T = config.batch_size, model_config.block_size
    x = torch.randint(model_config.vocab_size, (B, T), device=device)
    y = torch.randint(model_config.vocab_size, (B, T), device=device)
    betas = (config.beta1, config.beta2)
    if baseline:
        model = PlainGPT.like(course).to(device)
        course.to(device).eval()
        model.eval()  # no dropout: the same network gives the same loss
        torch.backends.cuda.matmul.allow_tf32 = False
        with torch.no_grad():
            want, got = course(x, y)[1].item(), model(x, y)[1].item()
        assert abs(want - got) < 1e-4, f"the baseline is not the course's GPT: {got} != {want}"
        opt = torch.optim.AdamW(
            param_groups(model, config.weight_decay), lr=config.max_lr, betas=betas, foreach=True
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: plain_lr(s, config))
    else:
        model = course.to(device)
        if torch_layernorm:  # diagnostic: PyTorch's fused LayerNorm, same weights
            for block in model.blocks:
                for name in ("ln1", "ln2"):
                    setattr(block, name, _torch_layernorm(getattr(block, name)))
            model.ln_f = _torch_layernorm(model.ln_f)
        groups = param_groups(model, config.weight_decay)
        if fused_adamw:
            opt = torch.optim.AdamW(groups, lr=config.max_lr, betas=betas, fused=True)
        else:
            opt = AdamW(groups, lr=config.max_lr, betas=betas)
        sched = None
    model.train()
    net = torch.compile(model) if compile_ else model
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    count = 0

    def step() -> None:
        nonlocal count
        torch.backends.cuda.matmul.allow_tf32 = tf32  # global: set for this variant
        torch.backends.cudnn.allow_tf32 = tf32
        if sched is None:  # the Trainer's step
            lr = cosine_lr(
                count,
                max_lr=config.max_lr,
                min_lr=config.min_lr,
                warmup_steps=config.warmup_steps,
                max_steps=config.max_steps,
            )
            for group in opt.param_groups:
                group["lr"] = lr
        with autocast:
            _, loss = net(x, y)
        loss.backward()
        loss.item()  # both loops log the loss
        if sched is None:
            clip_grad_norm_(model.parameters(), config.grad_clip)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sched is not None:
            sched.step()
        count += 1

    return step


def _torch_layernorm(ln: nn.Module) -> nn.LayerNorm:
    out = nn.LayerNorm(ln.d_model, ln.eps, bias=ln.bias is not None)
    out.weight = ln.weight
    if ln.bias is not None:
        out.bias = ln.bias
    return out


def measure(
    steps: dict[str, Callable[[], None]],
    device: torch.device,
    *,
    rounds: int,
    per_round: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per step of every variant in each of ``rounds`` interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            for _ in range(per_round):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((clock() - start) / per_round)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--preset", default="gpu", choices=sorted(TRAIN_PRESETS))
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--steps", type=int, default=5, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall: elapsed time; cpu: this process's CPU time (steadier on a shared CPU; "
        "with one thread only)",
    )
    parser.add_argument("--diagnose", action="store_true", help="add the LayerNorm diagnostic")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.clock == "cpu" and (device.type != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu measures one CPU thread: use it with --device cpu --threads 1")
    config = TRAIN_PRESETS[args.preset]
    cuda = device.type == "cuda"
    flops_per_token = reference("1.2")(config.model)
    peak = peak_flops(device)
    rungs = [
        ("fp32, teaching attention, course AdamW", {}),
        ("+ TF32", {"tf32": True}) if cuda else None,
        ("+ bf16 autocast", {"bf16": True}) if cuda else None,
        ("+ fused attention", {"fused_attention": True}),
        None if args.no_compile else ("+ torch.compile", {"compile_": True}),
        ("+ fused AdamW", {"fused_adamw": True}) if cuda else None,
    ]
    settings = dict(
        tf32=False, bf16=False, fused_attention=False, compile_=False, fused_adamw=False
    )
    name = device_name(device)
    print(
        f"{args.preset} preset: {GPT(config.model).num_parameters() / 1e6:.2f}M parameters, "
        f"batch {config.batch_size} × {config.model.block_size}, device {device} ({name}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock"
    )
    steps: dict[str, Callable[[], None]] = {}
    pairs: dict[str, tuple[str, str]] = {}  # ratio name → (course variant, baseline variant)

    def add(label: str, **kw) -> bool:
        try:
            step = build(config, device, **kw)
            for _ in range(args.warmup):  # compiles here, outside the timed rounds
                step()
        except Exception as err:  # e.g. torch.compile without a compiler toolchain
            print(f"{label:<40} failed: {type(err).__name__}: {str(err).splitlines()[0]}")
            return False
        steps[label] = step
        return True

    for rung in filter(None, rungs):
        label, change = rung
        settings.update(change)
        if not add(label, **settings):
            settings.update({k: False for k in change})
            continue
        if label in ("+ fused attention", "+ torch.compile"):
            kind = "compiled" if settings["compile_"] else "eager"
            base = {**settings, "fused_adamw": False}
            if add(f"{BASELINE}, {kind}", **base, baseline=True):
                pairs[kind] = (label, f"{BASELINE}, {kind}")
            if args.diagnose and kind == "eager":
                add(DIAGNOSTIC, **settings, torch_layernorm=True)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = measure(steps, device, rounds=args.rounds, per_round=args.steps, clock=clock)

    tokens = config.batch_size * config.model.block_size
    print(f"{'variant':<40}{'ms/step':>10}{'tokens/s':>14}{'MFU':>8}")
    rows = []
    # The ladder first, then the baselines (measured interleaved all the same).
    order = sorted(times, key=lambda k: (k == DIAGNOSTIC, k.startswith(BASELINE)))
    for label, seconds in ((k, statistics.median(times[k])) for k in order):
        tps = tokens / seconds
        mfu = tps * flops_per_token / peak if peak else None
        row = {"rung": label, "ms_per_step": seconds * 1e3, "tokens_per_s": tps, "mfu": mfu}
        if label != DIAGNOSTIC:  # chapter 7 prints the rows: the ladder and the baseline
            rows.append(row)
        print(
            f"{label:<40}{seconds * 1e3:>10.1f}{tps:>14,.0f}{'' if mfu is None else f'{mfu:>8.1%}'}"
        )
    ratios = {}
    for kind, (ours, theirs) in pairs.items():
        per_round = [b / a for a, b in zip(times[ours], times[theirs], strict=True)]
        ratios[kind] = statistics.median(per_round)
        print(
            f"course ÷ plain tokens/s, {kind}: {ratios[kind]:.3f} (median of {len(per_round)} "
            f"rounds, range {min(per_round):.3f}–{max(per_round):.3f})"
        )
    diagnostics = {}
    if DIAGNOSTIC in times and "eager" in pairs:
        per_round = [
            b / a for a, b in zip(times[DIAGNOSTIC], times[pairs["eager"][1]], strict=True)
        ]
        diagnostics = {
            "course GPT with nn.LayerNorm": {
                "ms_per_step": statistics.median(times[DIAGNOSTIC]) * 1e3,
                "ratio_vs_plain_eager": statistics.median(per_round),
            }
        }
        print(
            f"course with nn.LayerNorm ÷ plain tokens/s, eager: {statistics.median(per_round):.3f}"
        )
    if args.no_save:
        return
    out = Path(__file__).parent / "results" / f"train_speed_{device.type}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "device": name,
                "torch": torch.__version__,
                "preset": args.preset,
                "threads": torch.get_num_threads(),
                "clock": args.clock,
                "rounds": args.rounds,
                "steps_per_round": args.steps,
                "flops_per_token": flops_per_token,
                "peak_flops": peak,
                "rows": rows,
                # course tokens/s ÷ baseline tokens/s: median over interleaved rounds
                "ratio_vs_plain": ratios,
                "ratio_pairs": {k: list(v) for k, v in pairs.items()},
                "diagnostics": diagnostics,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
