"""Chapter 13's question answering (lmkit.qa): the span head and its loss against Hugging
Face's BertForQuestionAnswering, best_span against an exhaustive search, SQuAD's scores on
cases its definition fixes, and the SQuAD files (counts, offsets, truncation)."""

from __future__ import annotations

import itertools

import pytest
import torch

from lmkit import qa
from lmkit.qa import (
    QAExample,
    SpanQA,
    best_span,
    encode_qa,
    exact_match,
    f1,
    normalize_answer,
    span_loss,
    squad_scores,
)

pytestmark = pytest.mark.usefixtures("reference_solutions")


def _minilm_installed() -> bool:
    from lmkit.bert import minilm_files
    from lmkit.data import CorpusUnavailable

    try:
        minilm_files(download_if_missing=False)
    except CorpusUnavailable:
        return False
    return True


def _squad_cached() -> bool:
    from lmkit.data import data_dir

    return all((data_dir() / f"squad-{f}").is_file() for f, _, _ in qa.SQUAD_SETS.values())


needs_minilm = pytest.mark.skipif(not _minilm_installed(), reason="make setup installs MiniLM")
needs_squad = pytest.mark.skipif(
    not _squad_cached(),
    reason="SQuAD is not cached: python -c 'from lmkit.qa import load_squad; load_squad()' fetches it",
)


def test_span_loss_is_huggingfaces_qa_loss():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    hf = transformers.BertForQuestionAnswering(config).eval()
    from lmkit.bert import BERT

    sd = dict(hf.state_dict())  # BertForQuestionAnswering has no pooler; QA does not use one
    sd["bert.pooler.dense.weight"], sd["bert.pooler.dense.bias"] = torch.eye(32), torch.zeros(32)
    encoder = BERT.from_hf_state_dict(config.to_dict(), sd, prefix="bert.")
    ours = SpanQA(encoder.eval(), 32).eval()
    with torch.no_grad():
        ours.head.weight.copy_(hf.qa_outputs.weight)
        ours.head.bias.copy_(hf.qa_outputs.bias)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(60, (3, 20), generator=g)
    segments = (torch.arange(20) >= 6).long().expand(3, 20)
    start, end = torch.tensor([7, 9, 12]), torch.tensor([8, 9, 15])
    want = hf(input_ids=idx, token_type_ids=segments, start_positions=start, end_positions=end)
    s, e = ours(idx, segments)
    assert torch.allclose(s, want.start_logits, atol=1e-5)
    assert torch.allclose(e, want.end_logits, atol=1e-5)
    assert span_loss(s, e, start, end).item() == pytest.approx(want.loss.item(), rel=1e-5)


def test_the_context_mask_gives_the_question_no_probability():
    g = torch.Generator().manual_seed(2)
    s, e = torch.randn(2, 9, generator=g), torch.randn(2, 9, generator=g)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, 4:8] = True
    start, end = torch.tensor([4, 5]), torch.tensor([6, 7])
    masked = span_loss(s, e, start, end, mask)
    # The same as scoring only the context columns.
    cols = slice(4, 8)
    alone = span_loss(s[:, cols], e[:, cols], start - 4, end - 4)
    assert masked.item() == pytest.approx(alone.item(), rel=1e-6)
    assert masked.item() < span_loss(s, e, start, end).item()
    s_big = s.clone()
    s_big[:, :4] = 50.0  # however large the question's logits, they do not count
    assert span_loss(s_big, e, start, end, mask).item() == pytest.approx(masked.item())


def test_span_loss_bad_input():
    s = torch.zeros(2, 6)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[:, :2] = False
    with pytest.raises(ValueError, match="end before it starts"):
        span_loss(s, s, torch.tensor([3, 3]), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match="outside the context"):
        span_loss(s, s, torch.tensor([1, 3]), torch.tensor([3, 3]), mask)
    with pytest.raises(ValueError, match="0 … 5"):
        span_loss(s, s, torch.tensor([3, 3]), torch.tensor([6, 3]))


@pytest.mark.parametrize("max_length", [1, 3, 30])
def test_best_span_is_the_exhaustive_search(max_length):
    g = torch.Generator().manual_seed(max_length)
    s, e = torch.randn(6, 11, generator=g), torch.randn(6, 11, generator=g)
    mask = torch.rand(6, 11, generator=g) > 0.3
    mask[:, 5] = True
    start, end = best_span(s, e, mask, max_length)
    for b in range(6):
        pairs = [
            (i, j)
            for i, j in itertools.product(range(11), repeat=2)
            if i <= j < i + max_length and mask[b, i] and mask[b, j]
        ]
        best = max(pairs, key=lambda p: (s[b, p[0]] + e[b, p[1]]).item())
        assert (int(start[b]), int(end[b])) == best
    assert bool((start <= end).all()) and bool((end - start < max_length).all())


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a day") == "apple day"
    assert exact_match("the Broncos.", ["Broncos", "Denver"]) == 1.0
    assert exact_match("Denver Broncos", ["Broncos"]) == 0.0
    # precision 1/2, recall 1: F1 2/3; the best reference counts
    assert f1("Denver Broncos", ["Broncos"]) == pytest.approx(2 / 3)
    assert f1("Denver Broncos", ["Carolina Panthers", "the Denver Broncos"]) == 1.0
    assert f1("the", ["a"]) == 0.0  # both normalise to nothing: no common word
    scores = squad_scores(["Broncos", "Paris"], [["Denver Broncos"], ["London"]])
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(100 * (2 / 3) / 2)}
    with pytest.raises(ValueError, match="need one each"):
        squad_scores(["a"], [["a"], ["b"]])


def test_course_questions_are_spans_of_their_passages():
    questions = qa.course_questions()
    assert len(questions) == sum(len(q) for _, q in qa.COURSE_QA) == 33
    assert len({q.id for q in questions}) == 33
    for q in questions:
        ((text, offset),) = q.answers
        assert q.context[offset : offset + len(text)] == text
    honey = next(q for q in questions if q.answers[0][0] == "one")
    assert honey.context[honey.answers[0][1] :].startswith("one queen")  # not "h-one-y"


@needs_minilm
def test_every_course_answer_fits_the_window():
    from lmkit.bert import load_minilm

    questions = qa.course_questions()
    f = encode_qa(load_minilm()[1], questions)
    assert bool((f.start >= 0).all())
    assert qa.spans_to_text(questions, f, f.start, f.end) == [q.answers[0][0] for q in questions]


@needs_minilm
def test_encode_qa_maps_answers_to_tokens_and_back():
    from lmkit.bert import load_minilm

    _, tokenizer = load_minilm()
    context = "The Rhine rises in the Swiss Alps and flows to the North Sea."
    example = QAExample("r", "Where does the Rhine rise?", context, (("Swiss Alps", 23),))
    f = encode_qa(tokenizer, [example])
    tokens = [tokenizer.id_to_token(i) for i in f.idx[0, : int(f.padding_mask[0].sum())]]
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert tokens[int(f.start[0]) : int(f.end[0]) + 1] == ["swiss", "alps"]
    assert qa.spans_to_text([example], f, f.start, f.end) == ["Swiss Alps"]
    # The question is segment 0 and not context; the context is segment 1.
    q_end = tokens.index("[SEP]")
    assert not f.context_mask[0, : q_end + 1].any() and f.context_mask[0, q_end + 1]
    assert bool((f.segments[0][f.context_mask[0]] == 1).all())
    # Truncated so that the answer no longer fits whole: no label, -1.
    cut = encode_qa(tokenizer, [example], max_length=14)
    assert int(cut.start[0]) == -1 and int(cut.end[0]) == -1
    with pytest.raises(ValueError, match="context is empty"):
        qa.answer(SpanQA(load_minilm()[0], 384), tokenizer, "Why?", "  ")


@needs_squad
def test_squad_sets_have_their_counts_and_offsets():
    for name, (_, count, _) in qa.SQUAD_SETS.items():
        examples = qa.load_squad(name, download_if_missing=False)
        assert len(examples) == count
    dev = qa.load_squad("squad_dev", download_if_missing=False)
    good = sum(
        e.context[s : s + len(t)] == t for e in dev for t, s in e.answers[:1]
    )  # the notes: 10,562 of 10,565 first answers sit at their offset
    assert good == 10_562
    with pytest.raises(KeyError, match="known: squad_dev"):
        qa.load_squad("squad_v2")


@needs_squad
@needs_minilm
def test_most_squad_answers_survive_encoding_and_read_back():
    from lmkit.bert import load_minilm

    _, tokenizer = load_minilm()
    dev = qa.load_squad("squad_dev", download_if_missing=False)[:300]
    f = encode_qa(tokenizer, dev, max_length=256)
    kept = f.start >= 0
    assert kept.float().mean() > 0.95
    rows = [i for i in range(len(dev)) if kept[i]]
    text = qa.spans_to_text([dev[i] for i in rows], _subset(f, rows), f.start[rows], f.end[rows])
    em = squad_scores(text, [[a for a, _ in dev[i].answers] for i in rows])["exact_match"]
    # About 3 % of SQuAD answers are part of a word ("8" of "18", "gold" of "golden"): a
    # token-level span cannot give them exactly.
    assert em > 95


def _subset(f: qa.QAFeatures, rows: list[int]) -> qa.QAFeatures:
    return qa.QAFeatures(
        f.idx[rows],
        f.segments[rows],
        f.padding_mask[rows],
        f.context_mask[rows],
        f.start[rows],
        f.end[rows],
        [f.offsets[i] for i in rows],
    )


def test_offline_squad_names_the_fix(monkeypatch, tmp_path):
    from lmkit.data import CorpusUnavailable

    monkeypatch.setenv("LMKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(CorpusUnavailable, match="bigbench-1.0.0.tar.gz"):
        qa.load_squad("squad_dev", download_if_missing=False)


def test_best_sentence_baseline_picks_the_most_overlapping_sentence():
    context = "Paris is in France. The Rhine rises in the Alps! It flows north."
    assert qa.best_sentence("Where does the Rhine rise?", context) == (
        "The Rhine rises in the Alps!"
    )
    assert qa.best_sentence("Unrelated words?", context) == "Paris is in France."  # a tie
    assert qa.best_sentence("Anything", "no full stop") == "no full stop"
