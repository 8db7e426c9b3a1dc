"""The training speed ladder: how much each standard trick buys, in tokens/s and MFU.

    python benchmarks/bench_train.py                     # the best device, gpu preset shape
    python benchmarks/bench_train.py --device cpu --preset cpu --steps 20

Rungs (each adds to the previous one):

1. fp32, the course's teaching attention and its AdamW (the learner's code path)
2. TF32 matmuls (CUDA)
3. bf16 autocast (CUDA)
4. fused attention (``F.scaled_dot_product_attention``)
5. ``torch.compile``
6. fused AdamW (``torch.optim.AdamW(fused=True)``, CUDA)

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
import os
import time
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit.env import device_name, pick_device  # noqa: E402
from lmkit.grading import reference  # noqa: E402
from lmkit.model import GPT  # noqa: E402
from lmkit.optim import AdamW, param_groups  # noqa: E402
from lmkit.train import TRAIN_PRESETS  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "4090": 165e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def measure(config, device, *, tf32, bf16, fused_attention, compile_, fused_adamw, steps, warmup):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    model_config = dataclasses.replace(config.model, fast_attention=fused_attention, dropout=0.0)
    model = GPT(model_config).to(device)
    groups = param_groups(model, config.weight_decay)
    if fused_adamw:
        opt = torch.optim.AdamW(groups, lr=config.max_lr, betas=(0.9, 0.99), fused=True)
    else:
        opt = AdamW(groups, lr=config.max_lr, betas=(0.9, 0.99))
    net = torch.compile(model) if compile_ else model
    B, T = config.batch_size, model_config.block_size
    x = torch.randint(model_config.vocab_size, (B, T), device=device)
    y = torch.randint(model_config.vocab_size, (B, T), device=device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )

    def step():
        with autocast:
            _, loss = net(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return seconds, B * T / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--preset", default="gpu", choices=sorted(TRAIN_PRESETS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    device = pick_device(args.device)
    config = TRAIN_PRESETS[args.preset]
    cuda = device.type == "cuda"
    flops_per_token = reference("1.2")(config.model)
    peak = peak_flops(device)
    rungs = [
        ("fp32, teaching attention, course AdamW", {}),
        ("+ TF32", {"tf32": True}) if cuda else None,
        ("+ bf16 autocast", {"bf16": True}) if cuda else None,
        ("+ fused attention", {"fused_attention": True}),
        ("+ torch.compile", {"compile_": True}),
        ("+ fused AdamW", {"fused_adamw": True}) if cuda else None,
    ]
    settings = dict(
        tf32=False, bf16=False, fused_attention=False, compile_=False, fused_adamw=False
    )
    name = device_name(device)
    print(
        f"{args.preset} preset: {GPT(config.model).num_parameters() / 1e6:.2f}M parameters, "
        f"batch {config.batch_size} × {config.model.block_size}, device {device} ({name}), "
        f"torch {torch.__version__}"
    )
    print(f"{'rung':<40}{'ms/step':>10}{'tokens/s':>14}{'MFU':>8}")
    rows = []
    for rung in filter(None, rungs):
        label, change = rung
        settings.update(change)
        try:
            seconds, tps = measure(config, device, **settings, steps=args.steps, warmup=args.warmup)
        except Exception as err:  # e.g. torch.compile without a compiler toolchain
            print(f"{label:<40} failed: {type(err).__name__}: {str(err).splitlines()[0]}")
            settings.update({k: False for k in change})
            continue
        mfu = tps * flops_per_token / peak if peak else None
        rows.append({"rung": label, "ms_per_step": seconds * 1e3, "tokens_per_s": tps, "mfu": mfu})
        print(
            f"{label:<40}{seconds * 1e3:>10.1f}{tps:>14,.0f}{'' if mfu is None else f'{mfu:>8.1%}'}"
        )
    out = Path(__file__).parent / "results" / f"train_speed_{device.type}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "device": name,
                "torch": torch.__version__,
                "preset": args.preset,
                "flops_per_token": flops_per_token,
                "peak_flops": peak,
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
