"""Chapter 12's sentence pairs (lmkit.data) without the network and without the dictionary:
the extraction rules on hand-written lines in the Ding format, a small .deb built here for
the download-and-extract route, checksums, the offline error and the splits. The Ding
dictionary is GPL, so no line of it is in this file; one test reads the real file when the
machine has it."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from lmkit import data
from lmkit.data import (
    CorpusUnavailable,
    ding_path,
    extract_sentence_pairs,
    load_translation_pairs,
    translation_splits,
)

# Made-up entries in the Ding format: "German :: English", sub-entries " | ", alternatives "; ".
LINES = [
    "# Version :: test 2026-01-01",
    "# License :: made up for the tests",
    "Teekanne {f} | Teekannen {pl} | Die Kanne des Roboters ist blau. :: teapot | teapots | "
    "The robot's pot is blue.",
    "Der Roboter gießt Tee.; Der Roboter schenkt ein. :: The robot pours tea.; It pours.",
    "Das ist {n} ein <Probe> Testsatz [geh.]. :: This is [formal] a test line {adj}.",
    "Mag der Roboter Tee? [ugs.] :: Does the robot like tea? [coll.]",
    "blaue Teekanne hier! :: Blue teapot here!",  # German side lower case
    "Blaue Teekanne hier! :: blue teapot here!",  # English side lower case
    "Blaue Teekanne hier :: Blue teapot here",  # no sentence end
    "Teekannenroboter! :: Teapot-robot!",  # one word
    "Die ~ ist blau. :: The ~ is blue.",  # Ding's stand-in for the headword
    "Er/Sie trinkt Tee. :: He/She drinks tea.",  # slash alternatives
    "Die Kanne / Der Topf ist grün. :: The pot is green.",
    "Eins | Zwei Kannen stehen hier. :: Two pots stand here.",  # not aligned: skipped
    "Ohne Trenner ist das nichts.",  # no " :: "
    "Die Kanne des Roboters ist blau. :: The robot's pot is blue.",  # a repeat: kept once
    "Der Roboter summt leise. :: The robot hums quietly.",
    "Der Roboter summt leise. :: The robot is humming.",  # same German: both kept
    "Die Maschine summt. :: The robot is humming.",
]
EXPECTED = [
    ("Die Kanne des Roboters ist blau.", "The robot's pot is blue."),
    ("Der Roboter gießt Tee.", "The robot pours tea."),
    ("Das ist ein Testsatz.", "This is a test line."),
    ("Mag der Roboter Tee?", "Does the robot like tea?"),
    ("Der Roboter summt leise.", "The robot hums quietly."),
    ("Der Roboter summt leise.", "The robot is humming."),
    ("Die Maschine summt.", "The robot is humming."),
]
TEXT = ("\n".join(LINES) + "\n").encode("utf-8")
TEXT_SHA = hashlib.sha256(TEXT).hexdigest()
DEB_NAME = "trans-de-en_1.9-6_all.deb"


def test_extraction_rules():
    assert extract_sentence_pairs(LINES) == EXPECTED


def test_extraction_keeps_slashes_when_asked():
    pairs = extract_sentence_pairs(LINES, drop_slashes=False)
    assert pairs[:4] == EXPECTED[:4]
    assert ("Er/Sie trinkt Tee.", "He/She drinks tea.") in pairs
    assert ("Die Kanne / Der Topf ist grün.", "The pot is green.") in pairs
    assert len(pairs) == len(EXPECTED) + 2


def test_extraction_details():
    # Line ends, and the space a tag leaves before punctuation, do not survive.
    assert extract_sentence_pairs(["Da ist die Kanne [Ös.]. :: There is the pot [Br.].\r\n"]) == [
        ("Da ist die Kanne.", "There is the pot.")
    ]
    # A tag before the sentence, and only the first alternative decides.
    assert extract_sentence_pairs(["[übtr.] Es regnet Tee. :: It rains tea.; Tea rains."]) == [
        ("Es regnet Tee.", "It rains tea.")
    ]
    assert extract_sentence_pairs(["regnet Tee; Es regnet Tee. :: It rains tea."]) == []
    assert extract_sentence_pairs(iter([])) == []


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _ar(members: list[tuple[str, bytes]], gnu_names: bool = False) -> bytes:
    """An ar archive, as dpkg writes it (or GNU ar, whose names end with '/')."""
    out = [b"!<arch>\n"]
    for name, content in members:
        name = name + "/" if gnu_names else name
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n"
        assert len(header) == 60
        out += [header.encode("ascii"), content, b"\n" * (len(content) % 2)]
    return b"".join(out)


def make_deb(content: bytes = TEXT, member: str = "./usr/share/trans/de-en", **kw) -> bytes:
    control = _tar_xz({"./control": b"Package: trans-de-en\n"})
    payload = _tar_xz({"./usr/share/doc/trans-de-en/copyright": b"test\n", member: content})
    return _ar(
        [("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", payload)], **kw
    )


@pytest.fixture
def ding(tmp_path, monkeypatch):
    """A machine without the Debian package whose 'network' serves a small .deb: returns
    the cache directory; ``ding.fetches`` lists the URLs fetched, ``ding.deb`` the bytes."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LMKIT_DATA_DIR", str(cache))
    monkeypatch.setattr(data, "DING_SYSTEM_PATH", tmp_path / "usr_share_trans" / "de-en")
    monkeypatch.setattr(data, "DING_SHA256", TEXT_SHA)
    monkeypatch.setattr(data, "DING_DEB_URL", f"https://example.invalid/pool/{DEB_NAME}")

    class Served:
        fetches: list[str] = []
        deb = make_deb()

    monkeypatch.setattr(data, "DING_DEB_SHA256", hashlib.sha256(Served.deb).hexdigest())

    def fake_fetch(url, dest):
        Served.fetches.append(url)
        dest.write(Served.deb)

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    Served.fetches = []
    Served.cache = cache
    return Served


def test_download_extracts_the_file_and_deletes_the_deb(ding):
    path = ding_path()
    assert path == ding.cache / "de-en" and path.read_bytes() == TEXT
    assert sorted(p.name for p in ding.cache.iterdir()) == ["de-en"]  # no .deb, no .part
    assert ding_path() == path and load_translation_pairs() == EXPECTED
    assert ding.fetches == [data.DING_DEB_URL]  # once: later calls read the cache


def test_gnu_ar_names_and_a_member_without_dot_slash(ding, monkeypatch):
    ding.deb = make_deb(member="usr/share/trans/de-en", gnu_names=True)
    monkeypatch.setattr(data, "DING_DEB_SHA256", hashlib.sha256(ding.deb).hexdigest())
    assert ding_path().read_bytes() == TEXT


def test_the_installed_file_comes_first(ding):
    system = data.DING_SYSTEM_PATH
    system.parent.mkdir(parents=True)
    system.write_bytes(TEXT)
    assert ding_path() == system and ding.fetches == []
    first = load_translation_pairs()
    first.clear()  # the caller's list: the process's copy is not changed
    assert load_translation_pairs() == EXPECTED
    assert not ding.cache.exists()


def test_an_installed_file_of_another_release_is_passed_over(ding):
    system = data.DING_SYSTEM_PATH
    system.parent.mkdir(parents=True)
    system.write_bytes(TEXT + b"Neue Kanne hier. :: New pot here.\n")
    with pytest.raises(CorpusUnavailable, match="installed but is not 1.9-6's"):
        ding_path(download_if_missing=False)
    assert ding_path() == ding.cache / "de-en"
    assert ding.fetches == [data.DING_DEB_URL]


def test_a_hand_placed_file_is_used_and_checked(ding):
    ding.cache.mkdir()
    (ding.cache / "de-en").write_bytes(TEXT)
    assert ding_path(download_if_missing=False) == ding.cache / "de-en"
    (ding.cache / "de-en").write_bytes(TEXT.replace(b"blau", b"rot"))
    with pytest.raises(CorpusUnavailable, match="delete it"):
        ding_path()
    assert ding.fetches == []


def test_a_hand_placed_deb_is_used_offline(ding, monkeypatch):
    ding.cache.mkdir()
    (ding.cache / DEB_NAME).write_bytes(ding.deb)
    monkeypatch.setattr(data, "_fetch", _offline)
    assert ding_path().read_bytes() == TEXT
    assert sorted(p.name for p in ding.cache.iterdir()) == ["de-en"]


def test_a_corrupted_deb_is_refused(ding, monkeypatch):
    monkeypatch.setattr(data, "DING_DEB_SHA256", "0" * 64)
    with pytest.raises(CorpusUnavailable, match="corrupted") as info:
        ding_path()
    assert "apt-get install trans-de-en" in str(info.value)
    assert list(ding.cache.iterdir()) == []


def test_an_extracted_file_with_the_wrong_checksum_is_refused(ding, monkeypatch):
    monkeypatch.setattr(data, "DING_SHA256", "0" * 64)
    with pytest.raises(CorpusUnavailable, match="expected 0000"):
        ding_path()
    assert list(ding.cache.iterdir()) == []


@pytest.mark.parametrize(
    "deb, message",
    [
        (b"not an ar archive", "not a .deb"),
        (make_deb()[:100], "truncated"),
        (_ar([("debian-binary", b"2.0\n")]), "no data.tar"),
        (make_deb(member="./usr/share/trans/en-de"), "does not contain"),
        (_ar([("data.tar.xz", b"garbage!")]), "could not read"),
    ],
)
def test_a_damaged_deb_is_refused(ding, monkeypatch, deb, message):
    ding.deb = deb
    monkeypatch.setattr(data, "DING_DEB_SHA256", hashlib.sha256(deb).hexdigest())
    with pytest.raises(CorpusUnavailable, match=message):
        ding_path()
    assert list(ding.cache.iterdir()) == []


def _offline(url, dest):
    raise OSError("[Errno -3] Temporary failure in name resolution")


def _assert_hints(message: str, cache) -> None:
    assert "apt-get install trans-de-en" in message
    assert str(cache / "de-en") in message and "LMKIT_DATA_DIR" in message


def test_offline_error_names_the_fixes(ding, monkeypatch):
    monkeypatch.setattr(data, "_fetch", _offline)
    with pytest.raises(CorpusUnavailable) as info:
        load_translation_pairs()
    _assert_hints(str(info.value), ding.cache)
    assert "offline" in str(info.value)
    assert list(ding.cache.iterdir()) == []


def test_no_download_when_asked(ding):
    with pytest.raises(CorpusUnavailable) as info:
        ding_path(download_if_missing=False)
    _assert_hints(str(info.value), ding.cache)
    assert ding.fetches == []


def _toy_pairs(n: int = 300) -> list[tuple[str, str]]:
    pairs = [(f"Satz {i}.", f"Sentence {i}.") for i in range(n)]
    # Sentences with several translations, on either side, and a chain joining three pairs.
    pairs += [("Kanne eins.", "Pot one."), ("Kanne eins.", "Pot 1.")]
    pairs += [("Topf eins.", "Pot 1."), ("Kanne zwei.", "Pot two."), ("Kanne 2.", "Pot two.")]
    return pairs


def test_splits_are_disjoint_and_deterministic():
    pairs = _toy_pairs()
    train, val, test = translation_splits(pairs, n_val=20, n_test=40, seed=0)
    assert (len(train), len(val), len(test)) == (len(pairs) - 60, 20, 40)
    assert sorted(train + val + test) == sorted(pairs)
    assert translation_splits(pairs, n_val=20, n_test=40, seed=0) == (train, val, test)
    assert translation_splits(pairs, n_val=20, n_test=40, seed=1) != (train, val, test)
    train, val, test = translation_splits(pairs, n_val=0, n_test=0)
    assert sorted(train) == sorted(pairs) and val == test == []
    with pytest.raises(ValueError):
        translation_splits(pairs, n_val=len(pairs), n_test=1)


@pytest.mark.parametrize("seed", range(20))
def test_a_sentence_of_val_or_test_is_never_in_train(seed):
    pairs = _toy_pairs(30)
    train, val, test = translation_splits(pairs, n_val=8, n_test=8, seed=seed)
    assert sorted(train + val + test) == sorted(pairs)
    for held_out in (val, test):
        for side in (0, 1):
            assert not {p[side] for p in held_out} & {p[side] for p in train}
    assert not {p[0] for p in val} & {p[0] for p in test}
    groups = [{p for p in pairs if p[0] in ("Kanne eins.", "Topf eins.")}]
    groups.append({p for p in pairs if p[1] == "Pot two."})
    for group in groups:  # each group lies whole in one of the sets
        assert sum(group <= set(part) for part in (train, val, test)) == 1


# Two sample pairs of the real dictionary (one statement, one question), by their SHA-256 of
# "German<TAB>English" in UTF-8: the GPL sentences themselves are not copied into the course.
SAMPLE_SHAS = (
    "105d045346e2eab78144cdfbd9b2176d9b7afc82b297da9bb14f179ea6047b8b",
    "fcd5b107fea07c1c865953cbc6f1ee32e1b56c0d7096b83e9a7164b920930a89",
)


def _pair_sha(pair: tuple[str, str]) -> str:
    return hashlib.sha256("\t".join(pair).encode("utf-8")).hexdigest()


def test_the_real_dictionary_when_available():
    try:
        ding_path(download_if_missing=False)
    except CorpusUnavailable as err:
        pytest.skip(f"the Ding dictionary is not on this machine: {err}")
    pairs = load_translation_pairs()
    assert len(pairs) == 17_361 and len(set(pairs)) == len(pairs)
    hashes = {_pair_sha(pair) for pair in pairs}
    assert set(SAMPLE_SHAS) <= hashes
    train, val, test = translation_splits(pairs)
    assert (len(train), len(val), len(test)) == (15_861, 500, 1_000)
    for held_out in (val, test):
        for side in (0, 1):
            assert not {p[side] for p in held_out} & {p[side] for p in train}
