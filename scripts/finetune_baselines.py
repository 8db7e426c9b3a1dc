"""Chapter 10's measurements that are too long for the notebook, stored for it to show.

    python scripts/finetune_baselines.py [--part lm|classifiers|all] [--out-dir benchmarks/results]

On chapter 10's Rotten Tomatoes splits (``lmkit.data.review_splits``: 1,000 sentences to train
on, 1,000 to validate on, 2,000 to test on), with the shipped pre-trained review GPT:

1. **Language models of the task's text.** The same network from random weights, trained on
   the 1,000 training sentences (42k tokens) and offered the pre-training's whole budget
   (4,000 steps of 32 × 64 tokens), stopped early on the validation sentences; and the
   pre-trained model adapted to the same text (ULMFiT's step), stopped the same way.
2. **Classifiers.** Bag-of-words logistic regression; linear probes on frozen features; full
   fine-tuning from random weights, from the converged language model of step 1 and from the
   pre-trained model; LoRA on the pre-trained model.

Every learning rate, number of steps and regularisation strength is chosen on the validation
set; the test set is evaluated once per method, for the chosen setting only. Uses the
reference solutions (``LMKIT_REFERENCE=all``), one CPU thread and fixed seeds. ``--part lm``
(step 1, and the classifier fine-tuned from step 1's language model) writes
``finetune_lm.json``; ``--part classifiers`` (the rest of step 2) writes
``finetune_classifiers.json``; the two can run at the same time, on two cores. Each JSON is
written after every method, so an interrupted run keeps what it measured.
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
from lmkit.data import normalise_review, review_splits  # noqa: E402
from lmkit.finetune import (  # noqa: E402
    BagOfWords,
    SequenceClassifier,
    add_lora,
    count_trainable,
    encode_sentences,
    fine_tune,
    fit_logistic_regression,
    load_reviews_gpt,
    mean_pool,
    predict,
    sentence_lm_loss,
    standard_error,
    train_lm,
)
from lmkit.model import GPT  # noqa: E402

#: The pre-training's budget (scripts/pretrain_reviews.py): 4,000 steps of 32 × 64 tokens.
PRETRAIN_STEPS = 4000
WEIGHT_DECAYS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
LORA_TARGETS = ("attn.qkv", "attn.proj", "ffn.fc", "ffn.proj")
CLASSIFIER = dict(max_steps=250, eval_every=25, patience=3)
LM_GRIDS = {  # learning rates, evaluation interval (steps)
    "from scratch on the task's text": ([1e-3, 3e-3], 50),
    "pre-trained, then adapted to the task's text": ([1e-4, 3e-4], 25),
}
#: An improvement of the validation loss smaller than this does not count (nats per token).
LM_MIN_DELTA = 0.005
GRIDS = {
    "full, from scratch": [1e-3, 3e-3],
    "full, from the task-text LM": [3e-4, 1e-3],
    "full, pre-trained": [1e-4, 3e-4, 1e-3],
    "LoRA, pre-trained": [3e-3, 1e-2],
}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["lm", "classifiers", "all"], default="all")
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps of everything, to test the script"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    smoke = args.smoke
    clf_cfg = dict(max_steps=4, eval_every=2, patience=1) if smoke else CLASSIFIER
    lm_budget = 6 if smoke else PRETRAIN_STEPS

    def new_record(part: str) -> dict:
        return {
            "script": f"scripts/finetune_baselines.py --part {part}",
            "date": datetime.date.today().isoformat(),
            "device": env.device_name(torch.device("cpu")),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "smoke": smoke,
        }

    def save(record: dict, name: str) -> None:
        record["seconds"] = round(time.perf_counter() - start)
        (out_dir / name).write_text(json.dumps(record, indent=1) + "\n")

    splits = review_splits()
    pretrained, tokenizer = load_reviews_gpt()
    config = pretrained.config
    data = {k: encode_sentences(tokenizer, rows, config.block_size) for k, rows in splits.items()}
    y = {k: v[2] for k, v in data.items()}
    n_test = len(splits["test"])
    state = {k: v.clone() for k, v in pretrained.state_dict().items()}
    text_ids = torch.tensor(
        [i for text, _ in splits["train"] for i in tokenizer.encode(normalise_review(text) + "\n")]
    )

    def gpt(weights: dict | None) -> GPT:
        torch.manual_seed(1)
        model = GPT(config.with_(dropout=0.1))
        if weights is not None:
            model.load_state_dict(weights)
        return model

    def classifier_grid(name: str, make_body, record: dict, file: str) -> None:
        """Fine-tune for each learning rate, keep the best on validation, test it once."""
        grid, best = {}, None
        for lr in GRIDS[name]:
            body = make_body()
            if name.startswith("LoRA"):
                add_lora(body, LORA_TARGETS, r=8, alpha=16.0)
            torch.manual_seed(3)
            classifier = SequenceClassifier(body, 2, pooling="mean")
            trainable, total = count_trainable(classifier)
            run = fine_tune(classifier, data["train"], data["val"], lr=lr, **clf_cfg)
            grid[str(lr)] = run
            print(
                f"{name}, lr {lr:g}: val acc {run['val_accuracy']:.3f} at step "
                f"{run['best_step']} of {run['steps_run']} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            if best is None or run["val_accuracy"] > best[1]["val_accuracy"]:
                best = (lr, run, classifier, trainable / total)
        lr, run, classifier, share = best  # the test set, once, for the chosen setting
        test = accuracy(predict(classifier, *data["test"][:2]), y["test"])
        record.setdefault("classifiers", {})[name] = {
            "lr": lr,
            "steps": run["best_step"],
            "val_accuracy": run["val_accuracy"],
            "test_accuracy": test,
            "test_se": standard_error(test, n_test),
            "trainable_share": share,
            "grid": grid,
            **clf_cfg,
        }
        save(record, file)

    # 1. Language models of the task's text -------------------------------------------------
    if args.part in ("lm", "all"):
        record = new_record("lm")
        record["sizes"] = {k: len(v) for k, v in splits.items()}
        record["train_tokens"] = len(text_ids)
        record["min_delta"] = LM_MIN_DELTA
        val_lm, test_lm = data["val"][:2], data["test"][:2]
        torch.manual_seed(0)
        lm: dict = {
            "random weights": {"test_loss": sentence_lm_loss(GPT(config), *test_lm)},
            "pre-trained": {
                "val_loss": sentence_lm_loss(pretrained, *val_lm),
                "test_loss": sentence_lm_loss(pretrained, *test_lm),
                "steps": PRETRAIN_STEPS,
            },
        }
        record["lm"] = lm
        best_lm: dict = {}
        for name, (lrs, eval_every) in LM_GRIDS.items():
            weights = None if name.startswith("from scratch") else state
            runs = {}
            for lr in lrs:
                model = gpt(weights)
                run = train_lm(
                    model,
                    text_ids,
                    val_lm,
                    lr=lr,
                    max_steps=lm_budget,
                    eval_every=2 if smoke else eval_every,
                    patience=4,
                    min_delta=LM_MIN_DELTA,
                )
                runs[lr] = (run, {k: v.clone() for k, v in model.state_dict().items()})
                print(
                    f"LM {name}, lr {lr:g}: best val {run['val_loss']:.3f} at step "
                    f"{run['best_step']} of {run['steps_run']} "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
            lr = min(runs, key=lambda k: runs[k][0]["val_loss"])
            run, weights_best = runs[lr]
            best_lm[name] = weights_best
            lm[name] = {
                "lr": lr,
                "val_loss": run["val_loss"],
                "test_loss": sentence_lm_loss(gpt(weights_best), *test_lm),
                "steps": run["best_step"],
                "steps_run": run["steps_run"],
                "budget": lm_budget,
                "grid": {str(k): r for k, (r, _) in runs.items()},
            }
            save(record, "finetune_lm.json")
        classifier_grid(
            "full, from the task-text LM",
            lambda: gpt(best_lm["from scratch on the task's text"]),
            record,
            "finetune_lm.json",
        )

    # 2. Classifiers -----------------------------------------------------------------------
    if args.part in ("classifiers", "all"):
        record = new_record("classifiers")
        clf: dict = {}
        record["classifiers"] = clf

        def logistic(name: str, feats: dict, trains: float | None) -> None:
            grid = {}
            for wd in WEIGHT_DECAYS:
                layer = fit_logistic_regression(feats["train"], y["train"], weight_decay=wd)
                grid[str(wd)] = {"val_accuracy": accuracy(layer(feats["val"]), y["val"])}
            wd = max(WEIGHT_DECAYS, key=lambda w: grid[str(w)]["val_accuracy"])
            layer = fit_logistic_regression(feats["train"], y["train"], weight_decay=wd)
            test = accuracy(layer(feats["test"]), y["test"])
            clf[name] = {
                "weight_decay": wd,
                "val_accuracy": grid[str(wd)]["val_accuracy"],
                "test_accuracy": test,
                "test_se": standard_error(test, n_test),
                "trainable_share": trains,
                "grid": grid,
            }
            print(f"{name}: wd {wd:g}, test {test:.3f} ({time.perf_counter() - start:.0f} s)")
            save(record, "finetune_classifiers.json")

        bow = BagOfWords([t for t, _ in splits["train"]])
        record["bow_vocabulary"] = len(bow)
        words = {k: bow([t for t, _ in rows]) for k, rows in splits.items()}
        logistic("bag of words", words, None)  # no network
        head = (config.n_embd + 1) * 2
        probe_share = head / (pretrained.num_parameters() + head)
        torch.manual_seed(0)
        for name, model in [
            ("probe, random", GPT(config)),
            ("probe, pre-trained", pretrained),
        ]:
            model.eval()
            with torch.no_grad():
                feats = {k: mean_pool(model.encode(v[0]), v[1]) for k, v in data.items()}
            logistic(name, feats, probe_share)
        for name, make_body in [
            ("full, from scratch", lambda: gpt(None)),
            ("full, pre-trained", lambda: gpt(state)),
            ("LoRA, pre-trained", lambda: gpt(state)),
        ]:
            classifier_grid(name, make_body, record, "finetune_classifiers.json")
    print(f"written to {out_dir} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
