"""Chapter 12's long run: a German → English Transformer trained on CPU, its BLEU stored.

    python scripts/train_translation.py [--preset cpu|long|ci] [--threads 2] [--out benchmarks/results]

On the Ding dictionary's example sentences (``lmkit.data.load_translation_pairs``: 15,861
pairs to train on, 500 to validate on, 1,000 to test on; GPL-2+, read at run time), with the
shared BPE of ``lmkit.translation.make_tokenizer``: trains ``EncoderDecoder`` with
``lmkit.translation.fit`` (the weights of the best validation loss are kept), then scores
the 1,000 test sentences with sacreBLEU for greedy decoding and beam search (beam 4, length
penalty 1), translates the course's own example sentences (``EXAMPLES`` in chapter 12's
notebook, written for the course) and records the cross-attention of one of them. Only
numbers and the model's outputs for the course's sentences are stored
(``translation_<preset>.json``); the weights, trained on GPL data, stay in the cache
(``$LMKIT_DATA_DIR``) and are never committed. Reference solutions, fixed seeds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit import env  # noqa: E402
from lmkit.data import data_dir, load_translation_pairs, translation_splits  # noqa: E402
from lmkit.translation import (  # noqa: E402
    BLOCK_SIZE,
    PRESETS,
    VOCAB_SIZE,
    EncoderDecoder,
    config_for,
    corpus_bleu,
    encode_pairs,
    evaluate_loss,
    fit,
    make_tokenizer,
    translate,
)

#: Sentences written for the course (not from the Ding data), with our own translations.
EXAMPLES = [
    ("Das Wetter ist heute schön.", "The weather is nice today."),
    ("Ich habe keine Zeit.", "I have no time."),
    ("Wo ist der Bahnhof?", "Where is the station?"),
    ("Er liest jeden Abend ein Buch.", "He reads a book every evening."),
    ("Wir müssen morgen früh aufstehen.", "We have to get up early tomorrow."),
    ("Das ist eine gute Idee.", "That is a good idea."),
    ("Kannst du mir bitte helfen?", "Can you help me, please?"),
    ("Sie hat ihren Schlüssel verloren.", "She has lost her key."),
    ("Der Zug hatte zwei Stunden Verspätung.", "The train was two hours late."),
    ("Ich verstehe nicht, was du meinst.", "I don't understand what you mean."),
    (
        "Obwohl es regnete, gingen die Kinder nach der Schule noch lange im Park spazieren.",
        "Although it was raining, the children walked in the park for a long time after school.",
    ),
]
ALIGNMENT_EXAMPLE = 8  # the train sentence: its cross-attention is stored for the figure


def cross_attention_map(model: EncoderDecoder, tokenizer, src: str, out_ids: list[int]):
    """The last decoder block's cross-attention, averaged over heads, of the translation
    ``out_ids`` of ``src``: a (target tokens, source tokens) list of lists, and the tokens."""
    c = model.config
    src_ids = tokenizer.encode(src, allowed_special="none") + [c.eos_id]
    tgt = torch.tensor([[c.bos_id, *out_ids]])
    fast = [b.cross.fast for b in model.decoder]
    for b in model.decoder:
        b.cross.fast = False  # the weights exist on the written-out path only
    with torch.no_grad():
        model(torch.tensor([src_ids]), tgt)
    weights = model.decoder[-1].cross.last_weights[0].mean(0)  # (T, S)
    for b, f in zip(model.decoder, fast, strict=True):
        b.cross.fast = f
    pieces = [tokenizer.decode([i]) for i in src_ids[:-1]] + ["<eos>"]
    outs = [tokenizer.decode([i]) for i in out_ids] + ["<eos>"]
    # row t: the distribution over the source while predicting output token t
    return [[round(float(w), 4) for w in row] for row in weights], pieces, outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads (2: the course's reference machine)"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent.parent / "benchmarks" / "results")
    )
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--test-limit", type=int, default=None, help="score only the first N (a smoke test)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()

    train, val, test = translation_splits(load_translation_pairs())
    tokenizer = make_tokenizer(train, VOCAB_SIZE)
    preset = PRESETS[args.preset]
    config = config_for(tokenizer, block_size=BLOCK_SIZE, fast_attention=True, **preset["model"])
    train_ids, val_ids = (
        encode_pairs(tokenizer, train, config),
        encode_pairs(tokenizer, val, config),
    )
    model = EncoderDecoder(config)
    print(
        f"{args.preset}: {model.num_parameters():,} parameters; {len(train_ids[0]):,} training pairs "
        f"({train_ids[2]} too long), {torch.get_num_threads()} threads, {env.device_name('cpu')}"
    )
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = fit(model, train_ids[:2], val_ids[:2], **preset["train"], log=print)
    train_seconds = time.perf_counter() - t0
    train_cpu_seconds = time.process_time() - cpu0  # all threads: not inflated by other jobs

    record = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "model": preset["model"],
        "train": preset["train"],
        "vocab_size": tokenizer.vocab_size,
        "parameters": model.num_parameters(),
        "pairs": {
            "train": len(train_ids[0]),
            "val": len(val),
            "test": len(test),
            "train_too_long": train_ids[2],
        },
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "history": [[s, round(a, 4), round(b, 4)] for s, a, b in result["history"]],
        "best_step": result["best_step"],
        "val_loss": round(evaluate_loss(model, *val_ids[:2]), 4),
        "test": {},
    }
    test = test[: args.test_limit]
    refs = [en for _, en in test]
    for name, beam in (("greedy", 1), ("beam4", 4)):
        t0 = time.perf_counter()
        hyps = [
            translate(model, tokenizer, de, beam_size=beam, length_penalty=1.0) for de, _ in test
        ]
        record["test"][name] = {
            "bleu": round(corpus_bleu(hyps, refs), 2),
            "seconds": round(time.perf_counter() - t0, 1),
            "empty_outputs": sum(not h for h in hyps),
        }
        print(
            f"test BLEU {name}: {record['test'][name]['bleu']:.2f} ({record['test'][name]['seconds']} s)"
        )
    record["examples"] = [
        {
            "de": de,
            "en": en,
            "greedy": translate(model, tokenizer, de),
            "beam4": translate(model, tokenizer, de, beam_size=4, length_penalty=1.0),
        }
        for de, en in EXAMPLES
    ]
    for ex in record["examples"]:
        print(f"{ex['de']} → {ex['beam4']}")
    de = EXAMPLES[ALIGNMENT_EXAMPLE][0]
    src = torch.tensor(tokenizer.encode(de, allowed_special="none") + [config.eos_id])
    out_ids = model.translate_ids(src, beam_size=4, length_penalty=1.0)
    weights, source_pieces, target_pieces = cross_attention_map(model, tokenizer, de, out_ids)
    record["alignment"] = {
        "de": de,
        "source": source_pieces,
        "target": target_pieces,
        "weights": weights,
    }
    record["total_seconds"] = round(time.perf_counter() - started, 1)

    weights_path = data_dir() / f"translation_de_en_{args.preset}.pt"
    torch.save({"config": config.__dict__, "state_dict": model.state_dict()}, weights_path)
    print(f"weights (not for committing: trained on GPL data): {weights_path}")
    if not args.no_save:
        out = Path(args.out) / f"translation_{args.preset}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
