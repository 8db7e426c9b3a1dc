"""Benchmark of byte-level BPE training and encoding (chapter 2).

Trains on the first 1 MB of tiny-shakespeare to a vocabulary of 512 with

- the reference trainer (``solutions.tokenizers.train_bpe``: incremental pair counts),
- a naive trainer that recounts every pair of the text for every merge, built from the
  references of Exercises 2.1 and 2.2 (what a first implementation does),

asserts that both learn the same merges, and prints both times and their ratio. Then
encode throughput, and tokens per byte on held-out text next to Hugging Face
``tokenizers`` (byte-level BPE, GPT-2 pre-split) trained on the same text and vocabulary
size. The corpus comes through ``lmkit.data`` (``make data`` seeds the cache offline).

    .venv/bin/python benchmarks/bench_bpe.py            # about 2 minutes on a laptop core
    .venv/bin/python benchmarks/bench_bpe.py --skip-naive
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmkit.data import load_text, train_val_split  # noqa: E402
from lmkit.tokenizers import GPT2_PATTERN, BPETokenizer  # noqa: E402
from solutions.tokenizers import get_pair_counts, merge, train_bpe  # noqa: E402


def naive_train_bpe(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    ids = list(text.encode("utf-8"))
    merges = {}
    for new_id in range(256, vocab_size):
        counts = get_pair_counts(ids)  # the whole text, every merge: O(n) each time
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        ids = merge(ids, pair, new_id)
    return merges


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def hf_bpe(text: str, vocab_size: int):
    import tokenizers as hf

    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    return tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bytes", type=int, default=1_000_000, help="training text size")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow trainer")
    args = parser.parse_args()

    corpus = load_text("tinyshakespeare")
    train_text, val_text = train_val_split(corpus)
    text = corpus.encode("utf-8")[: args.bytes].decode("utf-8", errors="ignore")
    V = args.vocab_size
    print(f"python {platform.python_version()}, {platform.machine()}, {platform.processor()}")
    print(f"training text: first {len(text.encode()):,} bytes of tiny-shakespeare, vocab {V}")

    merges, t_ref = timed(train_bpe, text, V)
    print(f"reference (incremental counts)  {t_ref:8.2f} s  {len(merges)} merges")
    if not args.skip_naive:
        naive, t_naive = timed(naive_train_bpe, text, V)
        assert list(naive.items()) == list(merges.items()), "the trainers disagree"
        print(f"naive (recount every merge)     {t_naive:8.2f} s  same merges: yes")
        print(f"speed-up                        {t_naive / t_ref:8.1f} x")

    plain = BPETokenizer(merges)
    split = BPETokenizer.train(text, V, pattern=GPT2_PATTERN)
    hf_tok, t_hf = timed(hf_bpe, text, V)
    _, t_split = timed(BPETokenizer.train, text, V, (), GPT2_PATTERN)
    print(f"ours, GPT-2 pre-split, training {t_split:8.2f} s")
    print(f"HF tokenizers, training         {t_hf:8.2f} s")

    held_out = val_text  # the last 10 %: never seen in training
    n_bytes = len(held_out.encode("utf-8"))
    rows = [f"{'tokenizer (vocab ' + str(V) + ')':<34}{'tokens/byte':>12}{'encode MB/s':>13}"]
    for name, encode in [
        ("ours, no pre-split", plain.encode),
        ("ours, GPT-2 pre-split", split.encode),
        ("HF tokenizers, GPT-2 pre-split", lambda s: hf_tok.encode(s).ids),
    ]:
        ids, t = timed(encode, held_out)
        rows.append(f"{name:<34}{len(ids) / n_bytes:>12.4f}{n_bytes / t / 1e6:>13.2f}")
    rows.append(f"{'raw UTF-8 bytes':<34}{1.0:>12.4f}")
    print(f"held-out text: {n_bytes:,} bytes (the validation 10 %)")
    print("\n".join(rows))
    assert plain.decode(plain.encode(held_out)) == held_out
    assert split.decode(split.encode(held_out)) == held_out


if __name__ == "__main__":
    main()
