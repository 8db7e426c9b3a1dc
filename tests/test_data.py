"""lmkit.data without the network: downloads from file:// URLs and a monkeypatched fetch,
checksum failures that leave nothing cached, splits and uint16 memory-mapped files."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lmkit import data
from lmkit.data import (
    CORPORA,
    Corpus,
    CorpusUnavailable,
    corpus_path,
    data_dir,
    download,
    read_bin,
    to_uint16,
    train_val_split,
    write_bin,
)

CONTENT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMKIT_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.txt"
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def toy_corpus(monkeypatch, source):
    corpus = Corpus("toy", source.as_uri(), SHA, "toy.txt", len(CONTENT))
    monkeypatch.setitem(CORPORA, "toy", corpus)
    return corpus


def test_data_dir_env_override_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LMKIT_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("LMKIT_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "lmkit"


def test_download_from_file_url(cache, source):
    path = download(source.as_uri(), cache / "x.txt", SHA)
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in cache.iterdir()) == ["x.txt"]  # no temporary file left


def test_checksum_mismatch_caches_nothing(cache, source):
    with pytest.raises(CorpusUnavailable, match="corrupted") as info:
        download(source.as_uri(), cache / "x.txt", "0" * 64)
    assert "Nothing was cached" in str(info.value)
    assert list(cache.iterdir()) == []


def test_interrupted_download_caches_nothing(cache, monkeypatch):
    def cut(url, dest):
        dest.write(CONTENT[:10])
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(data, "_fetch", cut)
    with pytest.raises(CorpusUnavailable):
        download("https://example.invalid/x.txt", cache / "x.txt", SHA)
    assert list(cache.iterdir()) == []


def test_offline_error_says_where_to_put_the_file(cache, monkeypatch):
    def offline(url, dest):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(CorpusUnavailable) as info:
        corpus_path("tinyshakespeare")
    msg = str(info.value)
    assert "offline" in msg and str(cache / "tinyshakespeare.txt") in msg
    assert CORPORA["tinyshakespeare"].sha256 in msg and "LMKIT_DATA_DIR" in msg
    assert not (cache / "tinyshakespeare.txt").exists()


def test_monkeypatched_fetch_downloads_once(cache, toy_corpus, monkeypatch):
    calls = []

    def fake(url, dest):
        calls.append(url)
        dest.write(CONTENT)

    monkeypatch.setattr(data, "_fetch", fake)
    assert corpus_path("toy").read_bytes() == CONTENT
    assert data.load_text("toy") == CONTENT.decode()
    assert calls == [toy_corpus.url]  # the second use reads the cache


def test_corpus_from_file_url(cache, toy_corpus):
    assert corpus_path("toy") == cache / "toy.txt"
    assert (cache / "toy.txt").read_bytes() == CONTENT


def test_wrong_cached_file_is_reported(cache, toy_corpus):
    cache.mkdir()
    (cache / "toy.txt").write_bytes(b"something else")
    with pytest.raises(CorpusUnavailable, match="delete it"):
        corpus_path("toy")


def test_no_download_when_asked(cache, toy_corpus):
    with pytest.raises(CorpusUnavailable, match="put"):
        corpus_path("toy", download_if_missing=False)
    with pytest.raises(KeyError, match="tinyshakespeare"):
        corpus_path("no-such-corpus")


def test_canonical_tiny_shakespeare_entry():
    ts = CORPORA["tinyshakespeare"]
    assert ts.url.endswith("karpathy/char-rnn/master/data/tinyshakespeare/input.txt")
    assert ts.size == 1_115_394
    assert ts.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def test_tiny_shakespeare_when_cached():
    try:
        path = corpus_path(download_if_missing=False)
    except CorpusUnavailable:
        pytest.skip("tiny-shakespeare is not in the lmkit cache (make data)")
    text = path.read_text(encoding="utf-8")
    assert len(text) == path.stat().st_size == 1_115_394
    train, val = train_val_split(text)
    assert len(train) == 1_003_854 and train + val == text  # nanoGPT's split


def test_split_on_any_sequence():
    train, val = train_val_split(np.arange(10))
    assert train.tolist() == list(range(9)) and val.tolist() == [9]
    assert train_val_split("abcdefghij", 0.5) == ("abcde", "fghij")
    with pytest.raises(ValueError):
        train_val_split("abc", 1.0)


def test_uint16_and_memmap_round_trip(tmp_path):
    ids = [0, 1, 255, 256, 50256, 65535]
    arr = to_uint16(ids)
    assert arr.dtype == np.uint16 and arr.tolist() == ids
    path = write_bin(ids, tmp_path / "sub" / "train.bin")
    assert path.stat().st_size == 2 * len(ids)  # two bytes per token
    back = read_bin(path)
    assert isinstance(back, np.memmap) and back.dtype == np.uint16 and back.tolist() == ids
    assert read_bin(write_bin([], tmp_path / "empty.bin")).tolist() == []
    for bad in ([65536], [-1]):
        with pytest.raises(ValueError, match="uint16"):
            to_uint16(bad)
    with pytest.raises(ValueError, match="1-D"):
        to_uint16([[1, 2]])


def test_review_splits_are_disjoint_balanced_and_keep_the_test_set_first():
    splits = data.review_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 1000, "val": 1000, "test": 2000}
    texts = {k: {t for t, _ in v} for k, v in splits.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"]
    assert not texts["val"] & texts["test"]
    for rows in splits.values():
        assert 0.45 < sum(y for _, y in rows) / len(rows) < 0.55, "the shuffle mixes the labels"
    assert data.review_splits() == splits, "the same seed gives the same splits"
    other = data.review_splits(n_test=100, n_train=50, n_val=20, seed=1)
    assert [len(other[k]) for k in ("test", "train", "val")] == [100, 50, 20]
    assert other["test"] != splits["test"][:100]
    with pytest.raises(ValueError, match="add up to at most"):
        data.review_splits(n_test=8000, n_train=1000)
    with pytest.raises(ValueError, match="≥ 1"):
        data.review_splits(n_val=0)


def test_installed_package_dir_finds_a_package_without_importing_it():
    from pathlib import Path

    from lmkit.data import installed_package_dir

    assert installed_package_dir("lmkit") == Path(__file__).resolve().parents[1] / "lmkit"
    assert installed_package_dir("no_such_package_here") is None
    assert installed_package_dir("lmkit.no_such_module") is None
