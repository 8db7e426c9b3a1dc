"""Chapter 2 — from text to token ids: a character tokenizer and byte-level BPE.

Exercises 2.1–2.3 live here (:func:`get_pair_counts`, :func:`merge`, :func:`train_bpe`).
:class:`BPETokenizer` trains with your :func:`train_bpe` and encodes with a fast
merge-by-rank loop; :class:`CharTokenizer` is the character-level baseline of
nanoGPT's Shakespeare models.
"""

from __future__ import annotations

import heapq
import html
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from lmkit.grading import exercise

__all__ = [
    "ENDOFTEXT",
    "GPT2_PATTERN",
    "BPETokenizer",
    "CharTokenizer",
    "get_pair_counts",
    "merge",
    "render_tokens",
    "train_bpe",
    "train_bpe_chunks",
]

#: GPT-2's end-of-document token.
ENDOFTEXT = "<|endoftext|>"

#: GPT-2's pre-tokenisation pattern (Radford et al., 2019): contractions, words with their
#: leading space, numbers, punctuation runs, whitespace. BPE merges never cross its pieces.
#: It needs the ``regex`` package (``\p{L}`` is a Unicode letter, ``\p{N}`` a number).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

Pair = tuple[int, int]


# ----------------------------------------------------------------------------- exercises


@exercise("2.1")
def get_pair_counts(ids: list[int]) -> dict[tuple[int, int], int]:
    """Count how often each pair of *adjacent* ids occurs in ``ids``.

    Every adjacent position counts, overlaps included: in ``[5, 5, 5]`` the pair
    ``(5, 5)`` occurs twice (at positions 0 and 1).

    Args:
        ids: a list of token ids (ints), possibly empty.

    Returns:
        ``{(a, b): count}`` with tuple keys of two ints, one entry per distinct pair that
        occurs. A list with fewer than two ids has no pairs: ``{}``.

    Example:
        ``get_pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}``
    """
    raise NotImplementedError(
        "Exercise 2.1: count each (ids[i], ids[i + 1]) over every adjacent position"
    )


@exercise("2.2")
def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by the single id ``new_id``.

    Scan left to right; when ``ids[i], ids[i + 1] == pair``, emit ``new_id`` and skip
    both. Occurrences therefore never overlap: ``merge([7, 7, 7], (7, 7), 99)`` is
    ``[99, 7]`` (not ``[99, 99]``, not ``[7, 99]``). Ids not in an occurrence are
    copied unchanged, in order.

    Args:
        ids: token ids; not modified.
        pair: the two adjacent ids ``(a, b)`` to merge.
        new_id: the id that stands for ``a`` followed by ``b``.

    Returns:
        A new list of ids, shorter by the number of occurrences merged.

    Example:
        ``merge([5, 6, 6, 7, 9, 1], (6, 7), 99) == [5, 6, 99, 9, 1]``
    """
    raise NotImplementedError(
        "Exercise 2.2: scan left to right, emit new_id for each pair and skip both ids"
    )


@exercise("2.3")
def train_bpe(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    """Learn byte-level BPE merges from ``text`` until the vocabulary has ``vocab_size`` ids.

    Start from the UTF-8 bytes of ``text`` (``list(text.encode("utf-8"))``): ids 0–255
    are the 256 byte values. Then repeat: count the adjacent pairs, take the most frequent
    one — on a tie the *smallest* pair, comparing ``(a, b)`` tuples, so that training is
    deterministic — give it the next id (256, 257, …) and merge it everywhere, left to
    right (:func:`merge`).

    Args:
        text: the training text, a non-empty ``str``.
        vocab_size: the size of the final vocabulary, > 256: ``vocab_size - 256`` merges.
            If the text runs out of pairs first (it has become a single token), training
            stops early with fewer merges.

    Returns:
        ``{(a, b): new_id}`` in the order the merges were learned, new ids 256, 257, …

    Raises:
        TypeError: ``text`` is not a ``str`` (or ``vocab_size`` not an ``int``).
        ValueError: ``text`` is empty, or ``vocab_size <= 256``.

    Example:
        ``train_bpe("aaabdaaabac", 259) == {(97, 97): 256, (97, 98): 257, (256, 257): 258}``
    """
    raise NotImplementedError(
        "Exercise 2.3: from UTF-8 bytes, merge the most frequent pair (smallest on ties) "
        "vocab_size - 256 times, new ids from 256"
    )


# ----------------------------------------------------------------- the fast trainer


def train_bpe_chunks(
    chunks: Iterable[bytes], vocab_size: int, weights: Iterable[int] | None = None
) -> dict[Pair, int]:
    """BPE merges learned from separate byte strings; merges never cross two chunks.

    The same rule as :func:`train_bpe` (most frequent pair, smallest on ties, new ids
    from 256) with each chunk counted ``weights[i]`` times: a pre-split text is trained
    on its *distinct* pieces with their frequencies, as Hugging Face ``tokenizers``
    does. Pair counts are updated incrementally around each merged occurrence (see
    ``solutions/tokenizers.py`` for the single-text version, explained).
    """
    chunks = list(chunks)
    weights = [1] * len(chunks) if weights is None else list(weights)
    if len(weights) != len(chunks):
        raise ValueError("weights must have one entry per chunk")
    if not isinstance(vocab_size, int) or vocab_size <= 256:
        raise ValueError(f"vocab_size must be an int > 256, got {vocab_size!r}")
    ids: list[int] = []
    wt: list[int] = []  # the weight of the chunk each position belongs to
    nxt: list[int] = []
    for chunk, w in zip(chunks, weights, strict=True):
        if not chunk:
            continue
        start = len(ids)
        ids.extend(chunk)
        wt.extend([w] * len(chunk))
        nxt.extend(range(start + 1, start + len(chunk)))
        nxt.append(-1)  # a chunk's last byte has no right neighbour
    prv = [-1] * len(ids)
    for i, j in enumerate(nxt):
        if j != -1:
            prv[j] = i

    where: defaultdict[Pair, list[int]] = defaultdict(list)  # pair -> left positions
    counts: defaultdict[Pair, int] = defaultdict(int)
    for i, j in enumerate(nxt):
        if j != -1:
            pair = (ids[i], ids[j])
            counts[pair] += wt[i]
            where[pair].append(i)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    push = heapq.heappush

    merges: dict[Pair, int] = {}
    new_id = 256
    while new_id < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair) != -neg:
            continue  # stale
        a, b = pair
        touched: set[Pair] = set()
        for i in sorted(where.pop(pair)):
            if ids[i] != a:
                continue
            j = nxt[i]
            if j == -1 or ids[j] != b:
                continue
            w, p, k = wt[i], prv[i], nxt[j]
            if p != -1:
                old, new = (ids[p], a), (ids[p], new_id)
                counts[old] -= w
                counts[new] += w
                where[new].append(p)
                touched.add(old)
                touched.add(new)
            if k != -1:
                old, new = (b, ids[k]), (new_id, ids[k])
                counts[old] -= w
                counts[new] += w
                where[new].append(i)
                touched.add(old)
                touched.add(new)
            counts[pair] -= w
            ids[i], ids[j] = new_id, -1
            nxt[i] = k
            if k != -1:
                prv[k] = i
        touched.add(pair)
        for q in touched:  # one heap entry per changed pair and merge, not per occurrence
            if counts[q] > 0:
                push(heap, (-counts[q], q))
            else:
                del counts[q]
        merges[pair] = new_id
        new_id += 1
    return merges


# ------------------------------------------------------------------------ tokenizers


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"expected text as a str, got {type(text).__name__}")
    return text


def _compile(pattern: str):
    try:
        import regex
    except ImportError as err:  # pragma: no cover - regex is a dependency of lmkit
        raise ImportError("a pre-split pattern needs the 'regex' package") from err
    return regex.compile(pattern)


def _encode_piece(ids: list[int], ranks: dict[Pair, int]) -> list[int]:
    """Apply merges in the order they were learned; ``ranks[pair]`` is the new id.

    Merging the lowest-ranked pair present, left to right, is what training did. A heap
    of ``(rank, position)`` does it in O(n log n) for long pieces: a merge only creates
    pairs that contain the new id, whose rank is larger, so the heap order is right.
    """
    n = len(ids)
    if n < 2:
        return list(ids)
    if n <= 16:  # short pieces (pre-split words): the plain loop is faster
        ids = list(ids)
        while len(ids) > 1:
            best = min(pairwise(ids), key=lambda p: ranks.get(p, 1 << 62))
            new = ranks.get(best)
            if new is None:
                break
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ids[i] == best[0] and ids[i + 1] == best[1]:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids
    ids = list(ids)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    heap = [(r, i) for i in range(n - 1) if (r := ranks.get((ids[i], ids[i + 1]))) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        j = nxt[i]
        if ids[i] < 0 or j == -1 or ranks.get((ids[i], ids[j])) != r:
            continue  # stale: the pair at i has changed
        ids[i], ids[j] = r, -1
        k = nxt[j]
        nxt[i] = k
        if k != -1:
            prv[k] = i
            if (rk := ranks.get((r, ids[k]))) is not None:
                heapq.heappush(heap, (rk, i))
        p = prv[i]
        if p != -1 and (rp := ranks.get((ids[p], r))) is not None:
            heapq.heappush(heap, (rp, p))
    return [t for t in ids if t >= 0]


class CharTokenizer:
    """One id per character of a fixed alphabet (nanoGPT's shakespeare_char: 65 chars).

    ``CharTokenizer.train(text)`` takes the sorted set of characters of ``text``; a
    character outside it cannot be encoded (``ValueError``), which is the main weakness
    of character vocabularies.
    """

    def __init__(self, chars: Iterable[str], special_tokens: Iterable[str] = ()) -> None:
        self.chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ValueError("chars must be single characters")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("chars must be distinct")
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.special_tokens = {s: len(self.chars) + i for i, s in enumerate(special_tokens)}
        self.itos = dict(enumerate(self.chars)) | {i: s for s, i in self.special_tokens.items()}

    @classmethod
    def train(cls, text: str, special_tokens: Iterable[str] = ()) -> CharTokenizer:
        """The vocabulary is the sorted set of the characters of ``text``."""
        if not _check_text(text):
            raise ValueError("cannot build a character vocabulary from empty text")
        return cls(sorted(set(text)), special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        text = _check_text(text)
        out = []
        for pos, c in enumerate(text):
            i = self.stoi.get(c)
            if i is None:
                raise ValueError(
                    f"character {c!r} (U+{ord(c):04X}) at position {pos} is not in this "
                    f"CharTokenizer's vocabulary of {len(self.chars)} characters: train it "
                    "on text that contains it, or use a byte-level BPETokenizer, which "
                    "encodes any text"
                )
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        try:
            return "".join(self.itos[int(i)] for i in ids)
        except KeyError as err:
            raise ValueError(
                f"unknown token id {err.args[0]} (vocab_size {self.vocab_size})"
            ) from None

    def save(self, path: str | Path) -> None:
        doc = {"kind": "char", "chars": self.chars, "special_tokens": list(self.special_tokens)}
        Path(path).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("kind") != "char":
            raise ValueError(f"{path} is not a saved CharTokenizer")
        return cls(doc["chars"], doc["special_tokens"])


class BPETokenizer:
    """Byte-level BPE: ids 0–255 are bytes, then one id per merge, then special tokens.

    Any text round-trips (``decode(encode(s)) == s``) because every string is a sequence
    of UTF-8 bytes. With ``pattern`` (e.g. :data:`GPT2_PATTERN`) the text is first split
    into pieces and merges never cross two pieces, as in GPT-2.
    """

    def __init__(
        self,
        merges: dict[Pair, int],
        special_tokens: Iterable[str] = (),
        pattern: str | None = None,
    ) -> None:
        self.merges = dict(merges)
        for k, (pair, new) in enumerate(self.merges.items()):
            if new != 256 + k or not all(0 <= t < new for t in pair):
                raise ValueError(
                    "merges must be {(a, b): new_id} with new ids 256, 257, … in order"
                )
        self.vocab = {i: bytes([i]) for i in range(256)}
        for (a, b), new in self.merges.items():
            self.vocab[new] = self.vocab[a] + self.vocab[b]
        first = 256 + len(self.merges)
        self.special_tokens = {s: first + i for i, s in enumerate(special_tokens)}
        self.pattern = pattern
        self._split = _compile(pattern).findall if pattern else None
        self._special_re = (
            re.compile("(" + "|".join(map(re.escape, self.special_tokens)) + ")")
            if self.special_tokens
            else None
        )
        self._cache: dict[bytes, list[int]] = {}

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Iterable[str] = (),
        pattern: str | None = None,
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (special tokens come on top).

        Without ``pattern`` this is your :func:`train_bpe` (Exercise 2.3); with one, the
        distinct pieces are trained with their counts (:func:`train_bpe_chunks`).
        """
        text = _check_text(text)
        if pattern is None:
            return cls(train_bpe(text, vocab_size), special_tokens)
        if not text:
            raise ValueError("text is empty: there is nothing to learn merges from")
        counts: dict[bytes, int] = {}
        for piece in _compile(pattern).findall(text):
            key = piece.encode("utf-8")
            counts[key] = counts.get(key, 0) + 1
        merges = train_bpe_chunks(counts.keys(), vocab_size, counts.values())
        return cls(merges, special_tokens, pattern)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    def _encode_ordinary(self, text: str) -> list[int]:
        if self._split is None:
            return _encode_piece(list(text.encode("utf-8")), self.merges)
        out: list[int] = []
        cache = self._cache
        for piece in self._split(text):
            key = piece.encode("utf-8")
            ids = cache.get(key)
            if ids is None:
                ids = _encode_piece(list(key), self.merges)
                if len(cache) < 100_000:
                    cache[key] = ids
            out.extend(ids)
        return out

    def encode(self, text: str, allowed_special: str = "all") -> list[int]:
        """Token ids of ``text``.

        ``allowed_special="all"`` turns each special token (``<|endoftext|>``) found in
        the text into its id; ``"none"`` encodes it as ordinary text.
        """
        text = _check_text(text)
        if allowed_special not in ("all", "none"):
            raise ValueError("allowed_special must be 'all' or 'none'")
        if self._special_re is None or allowed_special == "none":
            return self._encode_ordinary(text)
        out: list[int] = []
        for k, part in enumerate(self._special_re.split(text)):
            if k % 2:  # the captured separators are the special tokens
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self._encode_ordinary(part))
        return out

    def token_bytes(self, i: int) -> bytes:
        """The bytes that id ``i`` stands for."""
        i = int(i)
        if i in self.vocab:
            return self.vocab[i]
        for s, j in self.special_tokens.items():
            if j == i:
                return s.encode("utf-8")
        raise ValueError(f"unknown token id {i} (vocab_size {self.vocab_size})")

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; invalid UTF-8 (a cut multi-byte character) becomes '�'."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def pieces(self, text: str) -> list[str]:
        """How ``text`` splits: the text of each of its tokens.

        A token that holds part of a multi-byte character shows its bytes as ``\\xNN``.
        """
        return [
            self.token_bytes(i).decode("utf-8", errors="backslashreplace")
            for i in self.encode(text)
        ]

    def save(self, path: str | Path) -> None:
        doc = {
            "kind": "byte-bpe",
            "pattern": self.pattern,
            "merges": [[a, b] for a, b in self.merges],
            "special_tokens": list(self.special_tokens),
        }
        Path(path).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("kind") != "byte-bpe":
            raise ValueError(f"{path} is not a saved BPETokenizer")
        merges = {(a, b): 256 + k for k, (a, b) in enumerate(doc["merges"])}
        return cls(merges, doc["special_tokens"], doc["pattern"])


_COLORS = ("#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f0f7")


def render_tokens(pieces: Iterable[str]) -> str:
    """HTML that shows each token on its own coloured background (spaces as '·')."""
    spans = []
    for k, p in enumerate(pieces):
        shown = html.escape(p.replace(" ", "·").replace("\n", "↵"))
        spans.append(
            f'<span style="background:{_COLORS[k % len(_COLORS)]};padding:1px 0;'
            f'font-family:monospace">{shown}</span>'
        )
    return '<div style="line-height:1.9">' + "".join(spans) + "</div>"
