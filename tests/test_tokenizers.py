"""Chapter 2's tokenizers against independent references: a recount-everything BPE trainer,
Hugging Face ``tokenizers`` (GPT-2's pre-split, tokens per byte), and round trips over
varied Unicode."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from lmkit.data import CorpusUnavailable, corpus_path
from lmkit.grading import use_reference
from lmkit.tokenizers import (
    ENDOFTEXT,
    GPT2_PATTERN,
    BPETokenizer,
    CharTokenizer,
    render_tokens,
    train_bpe_chunks,
)
from solutions.tokenizers import get_pair_counts, merge, train_bpe


def naive_train(chunks: list[bytes], vocab_size: int, weights=None) -> dict:
    """Recount every pair of every chunk for every merge."""
    seqs = [list(c) for c in chunks]
    weights = weights or [1] * len(seqs)
    merges = {}
    for new_id in range(256, vocab_size):
        counts = Counter()
        for s, w in zip(seqs, weights, strict=True):
            for p in pairwise(s):
                counts[p] += w
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        seqs = [merge(s, pair, new_id) for s in seqs]
    return merges


def naive_encode(text: str, merges: dict) -> list[int]:
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = merge(ids, pair, new_id)
    return ids


def _random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    alphabets = ["ab", "abc", "aab ", "xyz 12", "ä日b", "aaaa b", "🙂a", "ab\n"]
    return [
        "".join(rng.choice(rng.choice(alphabets)) for _ in range(rng.randint(1, 400)))
        for _ in range(n)
    ]


TEXTS = [
    "aaabdaaabac",
    "abcdcdab",  # a tie on the first merge
    "aaaaaaaaa",  # overlapping occurrences during training
    "ab",
    "x",
    "to be, or not to be, that is the question " * 5,
    "naïve café — 你好，你好！🙂🙂🙂 e\u0301 \t\t  \n\n",
    *_random_texts(0, 25),
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("vocab_size", [257, 262, 300, 420])
def test_incremental_trainer_equals_recount(text, vocab_size):
    want = naive_train([text.encode()], vocab_size)
    assert list(train_bpe(text, vocab_size).items()) == list(want.items())
    assert list(train_bpe_chunks([text.encode()], vocab_size).items()) == list(want.items())


def test_worked_example_and_ties():
    assert train_bpe("aaabdaaabac", 259) == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    # (97, 98) and (99, 100) both occur twice: the smaller pair wins.
    assert next(iter(train_bpe("abcdcdab", 257))) == (97, 98)
    assert train_bpe("ab", 300) == {(97, 98): 256}  # runs out of pairs


@pytest.mark.parametrize("seed", range(4))
def test_weighted_chunks_equal_recount(seed):
    rng = random.Random(seed)
    chunks = [t.encode() for t in _random_texts(seed + 100, 12)] + [b"", b"a"]
    weights = [rng.randint(1, 5) for _ in chunks]
    got = train_bpe_chunks(chunks, 330, weights)
    assert list(got.items()) == list(naive_train(chunks, 330, weights).items())


def test_pair_counts_and_merge_match_plain_python():
    for text in TEXTS:
        ids = list(text.encode())
        assert get_pair_counts(ids) == dict(Counter(pairwise(ids)))
    assert merge([7, 7, 7], (7, 7), 99) == [99, 7]
    assert merge([7, 7, 7, 7], (7, 7), 99) == [99, 99]


@pytest.mark.parametrize("bad", [b"bytes", None, 3])
def test_train_bpe_rejects_non_str(bad):
    with pytest.raises(TypeError):
        train_bpe(bad, 300)


@pytest.mark.parametrize("text, vocab_size", [("", 300), ("abc", 256), ("abc", 10)])
def test_train_bpe_rejects_bad_values(text, vocab_size):
    with pytest.raises(ValueError):
        train_bpe(text, vocab_size)


# Varied Unicode: ASCII, Latin with combining marks, CJK, emoji with ZWJ and skin tones,
# RTL scripts, whitespace runs, control characters, NUL, the replacement character.
POOLS = [
    "abcdefghij ,.!?'\"",
    "éèêëñçåøœß\u0301\u0308\u0327",
    "你好世界中文字符漢字カタカナひらがな한국어",
    "🙂😀👍🏽👨\u200d👩\u200d👧🇫🇷❤️\ufe0f",
    "שלוםمرحبا",
    " \t\n\r\u00a0\u2003\u3000",
    "\x00\x01\x7f\ufffd",
    "0123456789٠١٢",
]


def _unicode_samples(n: int) -> list[str]:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        pools = rng.sample(POOLS, rng.randint(1, 4))
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 80))))
    return out


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, BPETokenizer]:
    corpus = "".join(_unicode_samples(40)) + "the cat sat on the mat. " * 20
    use_reference("2")
    try:
        plain = BPETokenizer.train(corpus, 400, special_tokens=[ENDOFTEXT])
    finally:
        use_reference(None)
    split = BPETokenizer.train(corpus, 400, special_tokens=[ENDOFTEXT], pattern=GPT2_PATTERN)
    return {"plain": plain, "gpt2-split": split}


@pytest.mark.parametrize("kind", ["plain", "gpt2-split"])
def test_round_trip_any_unicode(tokenizers, kind):
    tok = tokenizers[kind]
    for s in [*_unicode_samples(200), "", " ", "  \n\n\t ", "a" * 100, "\U0010ffff"]:
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert all(0 <= i < tok.vocab_size for i in ids)


@pytest.mark.parametrize("kind", ["plain", "gpt2-split"])
def test_encode_applies_merges_in_order(tokenizers, kind):
    tok = tokenizers[kind]
    for s in _unicode_samples(50):
        if tok.pattern is None:
            assert tok.encode(s) == naive_encode(s, tok.merges)
        else:
            import regex

            want = [i for p in regex.findall(GPT2_PATTERN, s) for i in naive_encode(p, tok.merges)]
            assert tok.encode(s) == want


def test_special_tokens(tokenizers, tmp_path):
    tok = tokenizers["gpt2-split"]
    eot = tok.special_tokens[ENDOFTEXT]
    assert eot == 256 + len(tok.merges) == tok.vocab_size - 1
    ids = tok.encode(f"hello{ENDOFTEXT} world")
    assert ids.count(eot) == 1 and tok.decode(ids) == f"hello{ENDOFTEXT} world"
    assert eot not in tok.encode(ENDOFTEXT, allowed_special="none")
    assert tok.decode(tok.encode(ENDOFTEXT, allowed_special="none")) == ENDOFTEXT
    with pytest.raises(ValueError):
        tok.decode([tok.vocab_size])
    with pytest.raises(TypeError):
        tok.encode(b"bytes")


def test_save_load(tokenizers, tmp_path):
    for kind, tok in tokenizers.items():
        path = tmp_path / f"{kind}.json"
        tok.save(path)
        again = BPETokenizer.load(path)
        assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
        s = f"héllo 世界 🙂{ENDOFTEXT}!"
        assert again.encode(s) == tok.encode(s)
    ch = CharTokenizer.train("hello", special_tokens=[ENDOFTEXT])
    ch.save(tmp_path / "char.json")
    assert CharTokenizer.load(tmp_path / "char.json").encode("hole") == ch.encode("hole")
    with pytest.raises(ValueError):
        BPETokenizer.load(tmp_path / "char.json")


def test_gpt2_pieces_never_merge_across_words(tokenizers):
    """With GPT-2's pre-split a token is whitespace, or text with at most a leading space."""
    tok = tokenizers["gpt2-split"]
    for i in range(256, 256 + len(tok.merges)):
        s = tok.vocab[i].decode("utf-8", errors="ignore")
        if s.strip():
            assert not any(c.isspace() for c in s[1:]), repr(s)
    plain = tokenizers["plain"]  # without it, merges cross word boundaries
    assert any(
        " " in plain.vocab[i].decode("utf-8", errors="ignore").strip()
        for i in range(256, 256 + len(plain.merges))
    )


def test_gpt2_pattern_splits_like_hugging_face():
    pre = pytest.importorskip("tokenizers").pre_tokenizers.ByteLevel(
        add_prefix_space=False, use_regex=True
    )
    for s in ["Hello world! It's 2024, isn't it?  Yes\n\n  no", *_unicode_samples(30)]:
        import regex

        ours = regex.findall(GPT2_PATTERN, s)
        theirs = [s[a:b] for _, (a, b) in pre.pre_tokenize_str(s)]
        assert ours == theirs, s


def test_render_tokens_escapes():
    out = render_tokens(["<b>", " x", "\n"])
    assert "&lt;b&gt;" in out and "·x" in out and "↵" in out


def test_char_tokenizer():
    tok = CharTokenizer.train("hello world")
    assert tok.vocab_size == 8 and tok.decode(tok.encode("hello")) == "hello"
    with pytest.raises(ValueError, match="not in this CharTokenizer"):
        tok.encode("hellö")
    with pytest.raises(TypeError):
        tok.encode(["h"])
    with pytest.raises(ValueError):
        CharTokenizer.train("")
    with pytest.raises(ValueError):
        tok.decode([99])


@pytest.fixture(scope="module")
def shakespeare() -> str:
    try:
        return corpus_path(download_if_missing=False).read_text(encoding="utf-8")
    except CorpusUnavailable:
        pytest.skip("tiny-shakespeare is not in the lmkit cache (make data)")


def test_char_vocabulary_of_tiny_shakespeare(shakespeare):
    tok = CharTokenizer.train(shakespeare)
    assert tok.vocab_size == 65  # nanoGPT's shakespeare_char
    assert tok.decode(tok.encode(shakespeare[:1000])) == shakespeare[:1000]


def test_tokens_per_byte_close_to_hugging_face(shakespeare):
    """Same text, same vocabulary size, GPT-2 pre-split: compression within a few %."""
    hf = pytest.importorskip("tokenizers")
    text = shakespeare[:200_000]
    vocab_size = 512
    ours = BPETokenizer.train(text, vocab_size, pattern=GPT2_PATTERN)
    model = hf.Tokenizer(hf.models.BPE())
    model.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    model.train_from_iterator([text], trainer)
    held_out = shakespeare[200_000:260_000]
    n_bytes = len(held_out.encode())
    ours_tpb = len(ours.encode(held_out)) / n_bytes
    hf_ids = model.encode(held_out).ids
    theirs_tpb = len(hf_ids) / n_bytes
    assert model.get_vocab_size() == vocab_size
    assert model.decode(hf_ids) == held_out
    assert abs(ours_tpb - theirs_tpb) / theirs_tpb < 0.03, (ours_tpb, theirs_tpb)
