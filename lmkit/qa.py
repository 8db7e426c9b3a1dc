"""Chapter 13 — extractive question answering: a span head on a pre-trained encoder.

The answer to a question is a span of the context, so the model does not write it: it
points at it. A linear layer on the encoder's vectors gives every token two scores, "the
answer starts here" and "the answer ends here" (BERT's SQuAD head, Devlin et al. 2019);
the loss is the cross-entropy of the true start and of the true end
(:func:`span_loss`), and the answer read out is the highest-scoring span that ends after
it starts (:func:`best_span`). Exact match and F1 are SQuAD's own definitions
(:func:`squad_scores`).

Exercises 13.1–13.2 live here: :func:`span_loss` and :func:`best_span`.

Data: SQuAD v1.1's development set and the four SQuADShifts test sets (Miller et al.
2020: new Wikipedia articles, New York Times, Reddit, Amazon reviews), in SQuAD's JSON,
shipped inside the PyPI sdist of BIG-bench (:func:`load_squad`). SQuAD is CC BY-SA 4.0:
it is read at run time into the cache and never committed, nor are weights trained on it.
"""

from __future__ import annotations

import json
import re
import string
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: F401 - for your span_loss
from torch import nn

from lmkit.grading import exercise

__all__ = [
    "COURSE_QA",
    "SQUAD_SETS",
    "QAExample",
    "QAFeatures",
    "SpanQA",
    "answer",
    "best_sentence",
    "best_span",
    "check_span_logits",
    "course_questions",
    "encode_qa",
    "evaluate",
    "exact_match",
    "f1",
    "fine_tune_qa",
    "load_squad",
    "normalize_answer",
    "predict_spans",
    "span_loss",
    "spans_to_text",
    "squad_scores",
]


# ------------------------------------------------------------------ 13.1 the loss


def check_span_logits(
    start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor | None
) -> None:
    """Raise a ``ValueError`` unless the start and end logits are the same ``(B, T)`` and
    ``context_mask``, if given, is a ``(B, T)`` bool tensor. Use it in 13.1 and 13.2."""
    for name, t in (("start_logits", start_logits), ("end_logits", end_logits)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} should be (B, T), got {got}")
    if start_logits.shape != end_logits.shape:
        raise ValueError(
            f"start_logits {tuple(start_logits.shape)} and end_logits "
            f"{tuple(end_logits.shape)} should have the same shape (B, T)"
        )
    if context_mask is not None and (
        context_mask.shape != start_logits.shape or context_mask.dtype != torch.bool
    ):
        raise ValueError(
            f"context_mask should be a bool tensor {tuple(start_logits.shape)}, got "
            f"{context_mask.dtype} {tuple(context_mask.shape)}"
        )


@exercise("13.1")
def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    context_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of a span head: the mean of the start and the end cross-entropies.

    Each row's start logits are a distribution over its ``T`` positions (a softmax over
    the *positions*, not over the batch); the loss of a row is
    ``(−log p_start[start] − log p_end[end]) / 2``, and the result is its mean over the
    batch — BERT's SQuAD loss. With ``context_mask``, positions outside the context (the
    question, ``[CLS]``, ``[SEP]``, padding) get probability 0: their logits are set to
    ``−inf`` before the softmax, so the model cannot spend probability on them.

    Args:
        start_logits, end_logits: ``(B, T)``.
        start, end: ``(B,)`` int64, the token index of the first and of the last token of
            the answer (``end`` is inclusive: a one-token answer has ``start == end``).
        context_mask: ``(B, T)`` bool, True at the tokens of the context, or ``None`` (every
            position allowed).

    Returns:
        A 0-dim tensor.

    Raises:
        ValueError: if the shapes disagree; if a ``start`` or ``end`` is outside
            ``0 … T−1`` or ``end < start``; or if an answer token lies outside the context
            (``context_mask`` False there: the answer was truncated away, or the labels
            are wrong — a loss of ``+inf`` would only hide it).
    """
    raise NotImplementedError(
        "Exercise 13.1: validate the shapes and spans; fill the logits outside the context "
        "with -inf; (F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end)) / 2"
    )


# ------------------------------------------------------------------ 13.2 decoding


@exercise("13.2")
def best_span(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    context_mask: torch.Tensor | None = None,
    max_length: int = 30,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best span of each row: ``argmax over i ≤ j < i + max_length`` of
    ``start_logits[i] + end_logits[j]``, both ``i`` and ``j`` inside the context.

    Taking the best start and the best end separately can give an end before the start
    (an empty answer) or a span of half the page; the sum of the two logits is the log of
    the span's (unnormalised) probability, so the search is over pairs. Ties go to the
    earliest start, then the earliest end (what ``argmax`` of the flattened
    ``(i, j)`` table gives).

    Args:
        start_logits, end_logits: ``(B, T)``.
        context_mask: ``(B, T)`` bool, True at the context's tokens; ``None``: all.
        max_length: the longest answer, in tokens (``j − i + 1 ≤ max_length``).

    Returns:
        ``(start, end)``, two ``(B,)`` int64 tensors, ``start ≤ end``.

    Raises:
        ValueError: on shapes that disagree, ``max_length < 1``, or a row whose context
            mask is all False (no span to choose).
    """
    raise NotImplementedError(
        "Exercise 13.2: scores[b, i, j] = start[b, i] + end[b, j]; keep i <= j <= i + "
        "max_length - 1 inside the context (torch.triu / tril of a ones matrix), -inf "
        "elsewhere; argmax of the flattened (T·T) table, divmod by T"
    )


# ------------------------------------------------------------------ the model


class SpanQA(nn.Module):
    """An encoder with a span head: ``(idx, segments, padding_mask) → (start, end)`` logits.

    ``encoder`` is chapter 9's :class:`~lmkit.bert.BERT` (or anything with its ``encode``);
    ``head`` is ``Linear(C, 2)``: column 0 scores starts, column 1 scores ends, ``(B, T)``
    each. The head is the only new part; it starts at N(0, 0.02) like BERT's."""

    def __init__(self, encoder: nn.Module, d_model: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(d_model, 2)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        idx: torch.Tensor,
        segments: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder.encode(idx, segments, padding_mask)  # (B, T, C)
        start, end = self.head(h).unbind(-1)
        return start, end


# ------------------------------------------------------------------ data


@dataclass(frozen=True)
class QAExample:
    """One SQuAD question: its ``context``, and every reference answer as
    ``(text, character offset in the context)``."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]


#: Passages and questions written for the course (facts, not SQuAD text; CC BY 4.0 like the
#: book), each answer a span of its passage: what chapter 13's notebook runs on when it is
#: graded, since SQuAD is a 358 MB download that not every machine can make.
COURSE_QA: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "The Rhine rises in the Swiss Alps and flows for about 1,230 kilometres to the North "
        "Sea. It passes Basel, Strasbourg, Cologne and Düsseldorf before it reaches the "
        "Netherlands, where it splits into several branches. Barges have carried coal, grain "
        "and timber along it since the Middle Ages.",
        (
            ("Where does the Rhine rise?", "in the Swiss Alps"),
            ("How long is the Rhine?", "about 1,230 kilometres"),
            ("Into which sea does the Rhine flow?", "the North Sea"),
            ("Where does the Rhine split into several branches?", "the Netherlands"),
            ("Since when have barges carried goods on the Rhine?", "since the Middle Ages"),
        ),
    ),
    (
        "The Eiffel Tower stands on the Champ de Mars in Paris. It was designed and built by "
        "the engineering company of Gustave Eiffel and completed in 1889 for the World's Fair "
        "that marked the centenary of the French Revolution. At 330 metres including its "
        "antennas, it was the tallest man-made structure in the world until the Chrysler "
        "Building in New York was finished in 1930.",
        (
            ("Where does the Eiffel Tower stand?", "the Champ de Mars"),
            ("When was the Eiffel Tower completed?", "1889"),
            ("Whose company built the Eiffel Tower?", "Gustave Eiffel"),
            ("Which building became taller than the Eiffel Tower?", "the Chrysler Building"),
        ),
    ),
    (
        "Plants make their food by photosynthesis. In the chloroplasts of their leaves, the "
        "green pigment chlorophyll absorbs light, mostly red and blue light. The energy of "
        "that light turns carbon dioxide and water into glucose, and oxygen is released as a "
        "by-product.",
        (
            ("Which pigment absorbs the light?", "chlorophyll"),
            ("Where in the leaf does photosynthesis take place?", "the chloroplasts"),
            ("What do carbon dioxide and water become?", "glucose"),
            ("Which gas is released?", "oxygen"),
        ),
    ),
    (
        "Marie Curie was born in Warsaw in 1867 and moved to Paris to study physics and "
        "mathematics at the Sorbonne. With her husband Pierre she discovered two elements, "
        "polonium and radium. She was the first woman to win a Nobel Prize, and she remains "
        "the only person to have won Nobel Prizes in two different sciences: physics in 1903 "
        "and chemistry in 1911.",
        (
            ("Where was Marie Curie born?", "Warsaw"),
            ("Which elements did the Curies discover?", "polonium and radium"),
            ("When did Marie Curie win the Nobel Prize in chemistry?", "1911"),
            ("Where did she study in Paris?", "the Sorbonne"),
        ),
    ),
    (
        "On 20 July 1969 the lunar module Eagle of the Apollo 11 mission landed in the Sea of "
        "Tranquillity. Neil Armstrong stepped onto the surface first, followed by Buzz "
        "Aldrin, while Michael Collins stayed in orbit in the command module Columbia. The "
        "crew returned to Earth four days later and splashed down in the Pacific Ocean.",
        (
            ("Who stepped onto the Moon first?", "Neil Armstrong"),
            ("Where did Eagle land?", "the Sea of Tranquillity"),
            ("Who stayed in orbit?", "Michael Collins"),
            ("Where did the crew splash down?", "the Pacific Ocean"),
        ),
    ),
    (
        "Python is a programming language created by Guido van Rossum, who released its first "
        "version in 1991. It is named after the British comedy group Monty Python, not after "
        "the snake. Python marks blocks of code with indentation instead of braces, and its "
        "standard library is large enough that programmers say it comes with batteries "
        "included.",
        (
            ("Who created Python?", "Guido van Rossum"),
            ("When was the first version of Python released?", "1991"),
            ("What is Python named after?", "the British comedy group Monty Python"),
            ("What marks blocks of code in Python?", "indentation"),
        ),
    ),
    (
        "A honey bee colony has one queen, thousands of female workers and, in summer, a few "
        "hundred male drones. Workers tell each other where flowers are with the waggle dance: "
        "its angle gives the direction of the food relative to the sun, and its length gives "
        "the distance. Bees make honey from nectar by evaporating most of its water.",
        (
            ("How many queens does a colony have?", "one"),
            ("What are the male bees called?", "drones"),
            ("How do workers tell each other where flowers are?", "with the waggle dance"),
            ("What is honey made from?", "nectar"),
        ),
    ),
    (
        "The Transformer was introduced in 2017 by researchers at Google in the paper "
        "Attention Is All You Need. It replaced recurrence with self-attention, which lets "
        "every position of a sequence look at every other position in one step. The first "
        "Transformers translated from English into German and French, and the base model "
        "reached a BLEU score of 27.3 on English to German.",
        (
            ("When was the Transformer introduced?", "2017"),
            ("What did the Transformer replace recurrence with?", "self-attention"),
            ("What was the paper called?", "Attention Is All You Need"),
            ("What BLEU score did the base model reach?", "27.3"),
        ),
    ),
)


def course_questions() -> list[QAExample]:
    """The questions of :data:`COURSE_QA` as :class:`QAExample` s (ids ``course-P-Q``), each
    answer's offset that of its first occurrence as whole words in the passage ("one" is
    not the "one" inside "honey")."""
    out = []
    for p, (context, questions) in enumerate(COURSE_QA):
        for q, (question, text) in enumerate(questions):
            found = re.search(rf"\b{re.escape(text)}\b", context)
            if found is None:
                raise ValueError(f"course answer {text!r} is not in passage {p}")
            answers = ((text, found.start()),)
            out.append(QAExample(f"course-{p}-{q}", question, context, answers))
    return out


#: BIG-bench's sdist on PyPI (358 MB; it holds SQuAD in ``squad_shifts/``); only the JSON
#: files are kept, in the cache. Do not ``pip install`` it: it would build a 1.9 GB wheel.
BIGBENCH_SDIST = (
    "https://files.pythonhosted.org/packages/95/f8/"
    "c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/bigbench-1.0.0.tar.gz"
)
BIGBENCH_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
_SQUAD_FOLDER = "bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/"

#: The sets :func:`load_squad` knows: name → (file, questions, SHA-256 of the file).
#: SQuAD v1.1 dev (CC BY-SA 4.0) and the four SQuADShifts sets (CC BY 4.0 by their
#: dataset card). BIG-bench removed 5 + 2 + 9 + 36 + 8 questions of the originals.
SQUAD_SETS: dict[str, tuple[str, int, str]] = {
    "squad_dev": (
        "squaddev_v1.1.json",
        10_565,
        "45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a",
    ),
    "new_wiki": (
        "new_wiki_v1.0.json",
        7_936,
        "428104b87438d9059eb5df2883267cf9d30f6f4fcaed92e72107c8b913eaea40",
    ),
    "nyt": (
        "nyt_v1.0.json",
        10_056,
        "a770cdc1b460e3bd256a9f95aae021ed6502768b1713be777f3dd8740a4a1965",
    ),
    "reddit": (
        "reddit_v1.0.json",
        9_767,
        "db57c9269e4965fdb5dc045afb00e02f03668790ad6f66ab0354bf74b0fc63fe",
    ),
    "amazon": (
        "amazon_reviews_v1.0.json",
        9_877,
        "3d3b16b874aefef754d04c1cbd64457b3a6456aa2e946a6132b8254c17e34c4a",
    ),
}


def _squad_file(name: str, download_if_missing: bool) -> Path:
    from lmkit.data import CorpusUnavailable, _sha256_matches, cached_file, data_dir

    file, _, digest = SQUAD_SETS[name]
    path = data_dir() / f"squad-{file}"
    if path.is_file() and _sha256_matches(path, digest):
        return path
    sdist = cached_file(
        "bigbench-1.0.0.tar.gz",
        BIGBENCH_SDIST,
        BIGBENCH_SHA256,
        name="BIG-bench's sdist (it ships SQuAD's JSON files)",
        download_if_missing=download_if_missing,
        missing_hint="or copy bigbench-1.0.0.tar.gz (from PyPI) into the cache",
    )
    # One streaming pass extracts all five sets (1.9 GB uncompressed: a few seconds).
    wanted = {_SQUAD_FOLDER + f: data_dir() / f"squad-{f}" for f, _, _ in SQUAD_SETS.values()}
    with tarfile.open(sdist, "r|gz") as tf:
        for member in tf:
            if member.name in wanted and member.isfile():
                target = wanted[member.name]
                tmp = target.with_suffix(".part")
                tmp.write_bytes(tf.extractfile(member).read())
                tmp.replace(target)
    if not (path.is_file() and _sha256_matches(path, digest)):
        raise CorpusUnavailable(f"{file} is missing from {sdist}, or is not the expected file")
    sdist.unlink()  # the JSON files are all the course needs: 36 MB instead of 358
    return path


def load_squad(name: str = "squad_dev", download_if_missing: bool = True) -> list[QAExample]:
    """The questions of one SQuAD-format set of :data:`SQUAD_SETS`, in file order.

    The JSON files are extracted once from BIG-bench's sdist into the cache
    (``$LMKIT_DATA_DIR``), each checked against its SHA-256; the sdist is downloaded from
    PyPI if it is not already there, then deleted.

    Raises:
        KeyError: an unknown set (the message lists the known ones).
        CorpusUnavailable: offline and not cached.
    """
    if name not in SQUAD_SETS:
        raise KeyError(f"unknown SQuAD set {name!r}; known: {', '.join(SQUAD_SETS)}")
    data = json.loads(_squad_file(name, download_if_missing).read_text(encoding="utf-8"))
    examples = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = tuple((a["text"], int(a["answer_start"])) for a in qa["answers"])
                examples.append(QAExample(qa["id"], qa["question"], context, answers))
    return examples


@dataclass
class QAFeatures:
    """Questions and contexts encoded for :class:`SpanQA`: ``[CLS] question [SEP] context
    [SEP]``, right-padded. ``idx``, ``segments`` (0 = question, 1 = context), ``padding_mask``
    and ``context_mask`` are ``(N, T)``; ``start``/``end`` ``(N,)`` the first reference
    answer's first and last token (−1 where it was truncated away); ``offsets`` the
    character span of every token in its context (to read the answer back out)."""

    idx: torch.Tensor
    segments: torch.Tensor
    padding_mask: torch.Tensor
    context_mask: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    offsets: list[list[tuple[int, int]]]

    def __len__(self) -> int:
        return self.idx.shape[0]

    def rows(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, ...]:
        """The model's inputs and the labels of some rows, cut to their longest row."""
        width = max(int(self.padding_mask[index].sum(1).max()), 1)
        return tuple(
            t[index, :width]
            for t in (self.idx, self.segments, self.padding_mask, self.context_mask)
        ) + (self.start[index], self.end[index])


def encode_qa(tokenizer, examples: Sequence[QAExample], max_length: int = 256) -> QAFeatures:
    """Encode ``examples`` with :func:`lmkit.bert.load_minilm`'s WordPiece tokenizer.

    The context is truncated (the question never is) to fit ``max_length`` tokens; an
    answer that does not fit whole gets ``start = end = −1`` (leave such rows out of training;
    at test time they count as misses). Character offsets are mapped to tokens with the
    tokenizer's offsets: the answer's tokens are those whose characters overlap it."""
    tokenizer = _with_truncation(tokenizer, max_length)
    encodings = tokenizer.encode_batch([(e.question, e.context) for e in examples])
    n, width = len(examples), max((len(e.ids) for e in encodings), default=0)
    idx = torch.zeros(n, width, dtype=torch.long)
    segments = torch.zeros(n, width, dtype=torch.long)
    padding = torch.zeros(n, width, dtype=torch.bool)
    context = torch.zeros(n, width, dtype=torch.bool)
    start = torch.full((n,), -1, dtype=torch.long)
    end = torch.full((n,), -1, dtype=torch.long)
    offsets = []
    for row, (example, enc) in enumerate(zip(examples, encodings, strict=True)):
        T = len(enc.ids)
        idx[row, :T] = torch.tensor(enc.ids)
        segments[row, :T] = torch.tensor(enc.type_ids)
        padding[row, :T] = True
        in_context = [s == 1 for s in enc.sequence_ids]
        context[row, :T] = torch.tensor(in_context)
        spans = [o if c else (0, 0) for o, c in zip(enc.offsets, in_context, strict=True)]
        offsets.append(spans)
        text, char_start = example.answers[0]
        char_end = char_start + len(text)
        inside = [
            t for t, (a, b) in enumerate(spans) if in_context[t] and a < char_end and b > char_start
        ]
        last = max((b for (a, b), c in zip(spans, in_context, strict=True) if c), default=0)
        if inside and last >= char_end:  # the whole answer survived the truncation
            start[row], end[row] = inside[0], inside[-1]
    return QAFeatures(idx, segments, padding, context, start, end, offsets)


def _with_truncation(tokenizer, max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer.to_str())  # a copy: the caller's stays as it was
    tok.no_padding()
    tok.enable_truncation(max_length, strategy="only_second")
    return tok


# ------------------------------------------------------------------ training and reading out


@torch.no_grad()
def predict_spans(
    model: SpanQA, features: QAFeatures, *, batch_size: int = 32, max_length: int = 30
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best span (:func:`best_span`, inside the context) of every row: ``(start, end)``,
    two ``(N,)`` token-index tensors."""
    was_training = model.training
    model.eval()
    starts, ends = [], []
    for lo in range(0, len(features), batch_size):
        idx, seg, pad, ctx, _, _ = features.rows(slice(lo, lo + batch_size))
        s, e = model(idx, seg, pad)
        i, j = best_span(s, e, ctx, max_length)
        starts.append(i)
        ends.append(j)
    model.train(was_training)
    return torch.cat(starts), torch.cat(ends)


def spans_to_text(
    examples: Sequence[QAExample], features: QAFeatures, start: torch.Tensor, end: torch.Tensor
) -> list[str]:
    """The answers as text: the context's characters from the start token's first to the end
    token's last (WordPiece offsets), so spacing and case are the context's own."""
    out = []
    for row, example in enumerate(examples):
        a = features.offsets[row][int(start[row])][0]
        b = features.offsets[row][int(end[row])][1]
        out.append(example.context[a:b])
    return out


def answer(model: SpanQA, tokenizer, question: str, context: str, max_length: int = 256) -> str:
    """The model's answer to one question about one context (an empty context raises a
    ``ValueError``: there is nothing to point at)."""
    if not context.strip():
        raise ValueError("the context is empty: an extractive model needs a text to answer from")
    example = QAExample("q", question, context, (("", 0),))
    features = encode_qa(tokenizer, [example], max_length)
    start, end = predict_spans(model, features)
    return spans_to_text([example], features, start, end)[0]


def evaluate(model: SpanQA, examples: Sequence[QAExample], features: QAFeatures, **kwargs) -> dict:
    """SQuAD's exact match and F1 (percent) of ``model`` on ``examples``."""
    start, end = predict_spans(model, features, **kwargs)
    predictions = spans_to_text(examples, features, start, end)
    return squad_scores(predictions, [[text for text, _ in e.answers] for e in examples])


def fine_tune_qa(
    model: SpanQA,
    train: QAFeatures,
    val: tuple[Sequence[QAExample], QAFeatures],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-4,
    warmup_steps: int = 50,
    weight_decay: float = 0.01,
    clip: float = 1.0,
    eval_every: int = 100,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train ``model``'s trainable parameters with :func:`span_loss` (chapter 7's recipe:
    AdamW, warmup and cosine decay to ``lr / 10``, clipping) on random mini-batches of the
    ``train`` rows whose answer survived truncation; every ``eval_every`` steps measure F1 on
    ``val``, keep the best weights and put them back at the end. Returns ``{"history":
    [[step, train_loss, val_em, val_f1], …], "best_step", "best_f1"}``."""
    from lmkit.optim import AdamW, clip_grad_norm_, param_groups, set_cosine_lr

    usable = torch.nonzero(train.start >= 0).flatten()
    if len(usable) < batch_size:
        raise ValueError(f"{len(usable)} answerable training rows cannot fill a batch")
    opt = AdamW(param_groups(model, weight_decay), lr=lr)
    g = torch.Generator().manual_seed(seed)
    history, best, best_state, running = [], (0, -1.0), None, []
    for step in range(1, steps + 1):
        model.train()
        set_cosine_lr(opt, step - 1, lr=lr, warmup_steps=warmup_steps, max_steps=steps)
        rows = usable[torch.randint(len(usable), (batch_size,), generator=g)]
        idx, seg, pad, ctx, start, end = train.rows(rows)
        s, e = model(idx, seg, pad)
        loss = span_loss(s, e, start, end, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
        opt.step()
        running.append(loss.item())
        if step % eval_every == 0 or step == steps:
            scores = evaluate(model, *val)
            history.append([step, sum(running) / len(running), scores["exact_match"], scores["f1"]])
            running = []
            if log:
                log(
                    f"step {step:5d}  loss {history[-1][1]:.3f}  val EM {scores['exact_match']:.1f}"
                    f"  F1 {scores['f1']:.1f}"
                )
            if scores["f1"] > best[1]:
                best = (step, scores["f1"])
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_step": best[0], "best_f1": best[1]}


def best_sentence(question: str, context: str) -> str:
    """The baseline that reads no neural network: the sentence of ``context`` that shares
    the most normalised words with ``question`` (the first such sentence on a tie)."""
    words = set(normalize_answer(question).split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", context) if s.strip()] or [context]
    return max(sentences, key=lambda s: len(words & set(normalize_answer(s).split())))


# ------------------------------------------------------------------ SQuAD's scores


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles (a, an, the),
    whitespace collapsed — so "The Broncos." and "broncos" are the same answer."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = frozenset(string.punctuation)


def exact_match(prediction: str, references: Iterable[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(r) for r in references))


def f1(prediction: str, references: Iterable[str]) -> float:
    """The best, over the references, of the F1 of the bags of normalised words."""
    p = normalize_answer(prediction).split()
    best = 0.0
    for reference in references:
        r = normalize_answer(reference).split()
        common = sum((Counter(p) & Counter(r)).values())
        if common:
            precision, recall = common / len(p), common / len(r)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def squad_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """``{"exact_match", "f1"}`` in percent, averaged over the questions (SQuAD v1.1)."""
    if len(predictions) != len(references) or not predictions:
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} questions: need one each"
        )
    em = sum(exact_match(p, r) for p, r in zip(predictions, references, strict=True))
    f = sum(f1(p, r) for p, r in zip(predictions, references, strict=True))
    n = len(predictions)
    return {"exact_match": 100 * em / n, "f1": 100 * f / n}
