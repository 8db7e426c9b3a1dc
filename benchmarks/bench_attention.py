"""Time and peak memory of the teaching attention against PyTorch's fused attention.

    python benchmarks/bench_attention.py            # CPU → benchmarks/results/attention_cpu.json
    python benchmarks/bench_attention.py --device cuda   # → attention_cuda.json

The teaching path is ``lmkit.attention.attention(q, k, v, mask)``: it materialises the
``(B, heads, T, T)`` scores and weights. The fused path is
``torch.nn.functional.scaled_dot_product_attention`` (``attention(..., fast=True)`` with the
same boolean mask, and with ``is_causal=True``), which works on blocks of keys and never
holds all the weights at once. Both run a causal self-attention of ``B × heads`` heads of
``head_dim`` dimensions over sequence lengths ``T``.

Peak memory is the extra memory one call needs above what is already allocated:

- CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``;
- CPU (Linux): the process's resident-set high-water mark ``VmHWM``, reset before each call
  by writing 5 to ``/proc/self/clear_refs``, minus the resident size before the call. It
  counts pages the call really touched (torch's CPU allocator has no statistics of its
  own). The script re-runs itself with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc
  gives every tensor of 64 KiB or more its own pages and returns them when it is freed;
  otherwise memory freed by an earlier call would be reused unseen. Elsewhere the CPU
  figure is left out.

Chapter 4 plots the committed JSON; timings depend on the machine, so no test uses them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lmkit.attention import attention, causal_mask
from lmkit.env import device_name
from lmkit.grading import use_reference

RESULTS = Path(__file__).resolve().parent / "results"
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def _proc_status(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def _reset_cpu_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_bytes(fn, device: torch.device) -> int | None:
    """Extra bytes at the peak of one call of ``fn`` (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak
    if not _reset_cpu_peak():
        return None
    base = _proc_status("VmRSS")
    out = fn()
    peak = _proc_status("VmHWM")
    del out
    return None if base is None or peak is None else max(peak - base, 0)


def time_ms(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _methods(q, k, v, mask) -> dict:
    return {
        "teaching": lambda: attention(q, k, v, mask),
        "fused (bool mask)": lambda: attention(q, k, v, mask, fast=True),
        "fused (is_causal)": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    }


def run(device: torch.device, lengths: list[int], batch: int, heads: int, head_dim: int):
    use_reference(["4.1", "4.2"])  # the teaching path as the course writes it
    torch.manual_seed(0)
    rows = []
    for T in lengths:
        q, k, v = (torch.randn(batch, heads, T, head_dim, device=device) for _ in range(3))
        mask = causal_mask(T).to(device)
        methods = _methods(q, k, v, mask)
        reference = methods["teaching"]()
        for name, fn in methods.items():
            max_err = (fn() - reference).abs().max().item()
            repeats = 5 if T <= 1024 else 3
            row = {
                "T": T,
                "method": name,
                "time_ms": round(time_ms(fn, device, repeats), 3),
                "peak_mb": None,
                "max_abs_diff_vs_teaching": max_err,
            }
            peak = peak_bytes(fn, device)
            if peak is not None:
                row["peak_mb"] = round(peak / 2**20, 2)
            rows.append(row)
            print(
                f"T={T:>5}  {name:<18} {row['time_ms']:>10.2f} ms  "
                f"peak {row['peak_mb'] if row['peak_mb'] is not None else 'n/a':>8} MB  "
                f"max|Δ| {max_err:.1e}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu" and sys.platform == "linux" and MMAP_ENV not in os.environ:
        # Fixed mmap threshold: big tensors get fresh pages, so VmHWM sees every one.
        env = {**os.environ, MMAP_ENV: "65536"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    start = time.perf_counter()
    rows = run(device, args.lengths, args.batch, args.heads, args.head_dim)
    result = {
        "date": dt.date.today().isoformat(),
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "batch": args.batch,
        "heads": args.heads,
        "head_dim": args.head_dim,
        "causal": True,
        "memory": (
            "torch.cuda.max_memory_allocated above the allocation before the call"
            if device.type == "cuda"
            else "resident-set high-water mark (VmHWM, reset via /proc/self/clear_refs) "
            f"above the resident size before the call, {MMAP_ENV}="
            f"{os.environ.get(MMAP_ENV, 'unset')}"
        ),
        "results": rows,
    }
    out = args.out or RESULTS / f"attention_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
