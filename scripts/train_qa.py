"""Chapter 13's question-answering run: all-MiniLM-L6-v2 fine-tuned with a span head.

    python scripts/train_qa.py [--threads 1] [--train 3200] [--steps 200] [--out benchmarks/results]

Trains on questions of the four SQuADShifts sets (new Wikipedia articles, New York Times,
Reddit, Amazon reviews; CC BY 4.0 by their dataset card), chooses the weights on 300 other
SQuADShifts questions, and scores SQuAD v1.1's development set (Wikipedia; a seeded sample
of ``--test`` questions) once, with SQuAD's exact match and F1 — beside two baselines that
need no training: the sentence of the context that shares the most words with the question,
and the untrained span head (which shows what F1 a long random span collects). Only numbers
and the answers to a few questions written for the course are stored
(``qa_cpu.json``); the data (SQuAD is CC BY-SA 4.0) and the weights stay in the cache.
Reference solutions, fixed seeds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit import env  # noqa: E402
from lmkit.bert import load_minilm  # noqa: E402
from lmkit.data import data_dir  # noqa: E402
from lmkit.qa import (  # noqa: E402
    COURSE_QA,
    SpanQA,
    answer,
    best_sentence,
    encode_qa,
    evaluate,
    fine_tune_qa,
    load_squad,
    squad_scores,
)

SHIFTS = ("new_wiki", "nyt", "reddit", "amazon")

#: Questions about a paragraph written for the course (not from SQuAD), with our answers.
CONTEXT, QUESTIONS = COURSE_QA[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", type=int, default=3200, help="training questions")
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=2000, help="SQuAD dev questions scored")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent.parent / "benchmarks" / "results")
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()

    shifts = [e for name in SHIFTS for e in load_squad(name)]
    random.Random(0).shuffle(shifts)
    val, train = shifts[: args.val], shifts[args.val : args.val + args.train]
    squad = load_squad("squad_dev")
    test = random.Random(1).sample(squad, args.test)

    encoder, tokenizer = load_minilm()
    model = SpanQA(encoder, encoder.config.n_embd)
    train_f = encode_qa(tokenizer, train, args.max_length)
    val_f = encode_qa(tokenizer, val, args.max_length)
    test_f = encode_qa(tokenizer, test, args.max_length)
    refs = [[text for text, _ in e.answers] for e in test]
    print(
        f"{len(train):,} training questions ({int((train_f.start < 0).sum())} answers cut by "
        f"truncation), {len(val)} validation, {len(test):,} test; {torch.get_num_threads()} "
        f"threads, {env.device_name('cpu')}"
    )

    record = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "no_save")},
        "data": {
            "train": f"SQuADShifts {', '.join(SHIFTS)} (shuffled, seed 0)",
            "test": f"SQuAD v1.1 dev, {len(test):,} of {len(squad):,} questions (seed 1)",
            "test_answers_cut": int((test_f.start < 0).sum()),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "test": {},
    }
    lexical = [best_sentence(e.question, e.context) for e in test]
    record["test"]["best_sentence"] = squad_scores(lexical, refs)
    t0 = time.perf_counter()
    record["test"]["untrained_head"] = evaluate(model, test, test_f)
    record["test_seconds"] = round(time.perf_counter() - t0, 1)
    for name, scores in record["test"].items():
        print(f"{name}: EM {scores['exact_match']:.1f}  F1 {scores['f1']:.1f}")

    t0 = time.perf_counter()
    result = fine_tune_qa(
        model,
        train_f,
        (val, val_f),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        log=print,
    )
    record["train_seconds"] = round(time.perf_counter() - t0, 1)
    record["history"] = [
        [s, round(loss, 4), round(em, 2), round(f, 2)] for s, loss, em, f in result["history"]
    ]
    record["best_step"] = result["best_step"]
    record["test"]["fine_tuned"] = evaluate(model, test, test_f)
    print(
        f"fine-tuned: EM {record['test']['fine_tuned']['exact_match']:.1f}  "
        f"F1 {record['test']['fine_tuned']['f1']:.1f}"
    )
    for scores in record["test"].values():
        for k in scores:
            scores[k] = round(scores[k], 2)
    record["examples"] = [
        {"question": q, "ours": ours, "model": answer(model, tokenizer, q, CONTEXT)}
        for q, ours in QUESTIONS
    ]
    record["context"] = CONTEXT
    for ex in record["examples"]:
        print(f"{ex['question']} → {ex['model']!r}")
    record["total_seconds"] = round(time.perf_counter() - started, 1)

    weights = data_dir() / "qa_minilm.pt"
    torch.save(model.state_dict(), weights)
    print(f"weights (not for committing: trained on SQuADShifts): {weights}")
    if not args.no_save:
        out = Path(args.out) / "qa_cpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
