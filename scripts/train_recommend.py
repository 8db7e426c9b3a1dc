"""Chapter 13's long run: next-item recommendation on MovieLens 100K with chapter 6's GPT over
item ids, against the most-popular and item-co-occurrence baselines.

    python scripts/train_recommend.py [--preset cpu|ci] [--threads 1] [--out benchmarks/results]

Leave-one-out split (each user's last item is the test target, the one before it the
validation target). Every method ranks all items the user has not rated yet
(:func:`lmkit.recommend.exclude_seen`) and is scored by HR@10 and NDCG@10
(:func:`lmkit.recommend.hit_rate_and_ndcg`). Choices are made on validation only: the
co-occurrence window, and the GPT's checkpoint (validation NDCG@10 every ``valid_every``
steps, the best one kept). The test targets are then read once. HR@10 comes with its binomial
standard error and a bootstrap 95 % interval over the 943 users, and the GPT's lead over each
baseline with a *paired* bootstrap interval (the same resampled users for both). Only numbers
and a few titles are stored (``recommend_<preset>.json``): MovieLens is under GroupLens's terms,
so no data and no trained model. Reference solutions, fixed seeds, CPU time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
from pathlib import Path

os.environ.setdefault("LMKIT_REFERENCE", "all")

import torch  # noqa: E402

from lmkit import env  # noqa: E402
from lmkit.recommend import (  # noqa: E402
    PRESETS,
    bootstrap_interval,
    cooccurrence_counts,
    cooccurrence_scores,
    evaluate_ranking,
    exclude_seen,
    fit,
    gpt_scores,
    item_gpt,
    leave_one_out,
    load_movielens,
    most_popular_scores,
    popularity,
    recommend,
)

K = 10
WINDOWS = (1, 2, 3, 5, 10, 20)


def _summary(valid: dict, test: dict) -> dict:
    n = len(test["hits"])
    hr = test["hr"]
    return {
        "valid_hr@10": round(valid["hr"], 4),
        "valid_ndcg@10": round(valid["ndcg"], 4),
        "test_hr@10": round(hr, 4),
        "test_ndcg@10": round(test["ndcg"], 4),
        "test_hr@10_se": round(math.sqrt(hr * (1 - hr) / n), 4),
        "test_hr@10_ci95": [round(x, 4) for x in bootstrap_interval(test["hits"])],
        "test_ndcg@10_ci95": [round(x, 4) for x in bootstrap_interval(test["gains"])],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]

    ml = load_movielens()
    split = leave_one_out(ml.sequences, ml.n_items)
    n = ml.n_items
    hist = {stage: split.history(stage) for stage in ("valid", "test")}
    print(
        f"{ml.n_users} users, {n} items, {ml.n_interactions:,} ratings; "
        f"{torch.get_num_threads()} threads, {env.device_name('cpu')}"
    )

    def score(stage: str, scores: torch.Tensor) -> dict:
        return evaluate_ranking(scores, split.targets(stage), K)

    results: dict[str, dict] = {}
    per_user: dict[str, dict] = {}

    popular = {s: score(s, most_popular_scores(split.train, n, hist[s])) for s in hist}
    results["most_popular"] = _summary(popular["valid"], popular["test"])
    per_user["most_popular"] = popular["test"]
    print(f"most popular: {results['most_popular']}")

    pop = popularity(split.train, n)
    by_window = {}
    for w in WINDOWS:
        counts = cooccurrence_counts(split.train, n, w)
        by_window[w] = (counts, score("valid", cooccurrence_scores(counts, pop, hist["valid"])))
        print(f"co-occurrence window {w}: valid NDCG@10 {by_window[w][1]['ndcg']:.4f}")
    window = max(WINDOWS, key=lambda w: by_window[w][1]["ndcg"])
    counts, valid = by_window[window]
    test = score("test", cooccurrence_scores(counts, pop, hist["test"]))
    results["cooccurrence"] = {
        "window": window,
        "valid_ndcg@10_by_window": {str(w): round(v[1]["ndcg"], 4) for w, v in by_window.items()},
        **_summary(valid, test),
    }
    per_user["cooccurrence"] = test
    print(f"co-occurrence (window {window}): {results['cooccurrence']}")

    def validate(model: torch.nn.Module) -> float:
        return score("valid", exclude_seen(gpt_scores(model, hist["valid"]), hist["valid"]))["ndcg"]

    torch.manual_seed(0)
    model = item_gpt(n, **preset["model"])
    train = preset["train"]
    out = fit(
        model, split.train, **train, log_every=preset.get("valid_every", train["steps"]),
        validate=validate, log=print,
    )  # fmt: skip
    valid = score("valid", exclude_seen(gpt_scores(model, hist["valid"]), hist["valid"]))
    test = score("test", exclude_seen(gpt_scores(model, hist["test"]), hist["test"]))
    results["gpt"] = {
        "parameters": model.num_parameters(),
        "steps": out["steps"],
        "best_step": out["best_step"],
        "cpu_seconds": round(out["seconds"], 1),
        "losses": [round(x, 4) for x in out["losses"]],
        "valid_ndcg@10_curve": [round(x, 4) for x in out["valid"]],
        "steps_logged": out["steps_logged"],
        **_summary(valid, test),
    }
    per_user["gpt"] = test
    print(f"gpt: {results['gpt']}")

    paired = {}
    for other in ("cooccurrence", "most_popular"):
        for metric, key in (("hr@10", "hits"), ("ndcg@10", "gains")):
            lo, hi = bootstrap_interval(per_user["gpt"][key], per_user[other][key])
            paired[f"gpt_minus_{other}_{metric}_ci95"] = [round(lo, 4), round(hi, 4)]
    print(f"paired: {paired}")

    user = 0  # one example: the first user's last items read, and what the GPT suggests
    history = hist["test"][user]
    example = {
        "user": ml.user_ids[split.users[user]],
        "last_3_rated": [ml.titles[i] for i in history[-3:]],
        "gpt_top_5": recommend(model, history, ml.titles, k=5),
        "held_out": ml.titles[int(split.test[user])],
    }

    record = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "model": preset["model"],
        "train": train,
        "data": "MovieLens 100K (GroupLens), from recbole==1.2.1's dataset_example",
        "n_users": ml.n_users,
        "n_items": n,
        "n_interactions": ml.n_interactions,
        "protocol": (
            "leave-one-out by timestamp (ties by item id); full ranking over all items, the "
            "user's earlier items excluded; ties count against the target; model and window "
            "chosen on validation NDCG@10, test read once"
        ),
        "k": K,
        "results": results,
        "paired_bootstrap": paired,
        "example": example,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"recommend_{args.preset}.json"
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
