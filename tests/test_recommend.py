"""Chapter 13's recommendation section (lmkit.recommend): MovieLens 100K as item sequences (counts,
checksum, order, the download and offline routes), the leave-one-out split and its short users,
the ranking metric against brute force, seen-item exclusion, the two baselines, and the GPT over
items (chapter 6's model, causal right padding, a loss that falls, validation-chosen weights).
Tests that read the real ratings skip when neither recbole nor the cache has them."""

from __future__ import annotations

import hashlib
import io
import math
import zipfile

import pytest
import torch

from lmkit import data, recommend
from lmkit.data import CorpusUnavailable
from lmkit.model import GPT
from lmkit.recommend import (
    PAD,
    bootstrap_interval,
    build_sequences,
    cooccurrence_counts,
    cooccurrence_scores,
    evaluate_ranking,
    exclude_seen,
    fit,
    gpt_scores,
    hit_rate_and_ndcg,
    item_gpt,
    leave_one_out,
    load_movielens,
    most_popular_scores,
    movielens_path,
    next_item_loss,
    popularity,
    training_batch,
)

pytestmark = pytest.mark.usefixtures("reference_solutions")


def _have_movielens() -> bool:
    try:
        for kind in recommend.MOVIELENS_FILES:
            movielens_path(kind, download_if_missing=False)
    except CorpusUnavailable:
        return False
    return True


needs_data = pytest.mark.skipif(
    not _have_movielens(),
    reason="MovieLens 100K not installed (pip install --no-deps recbole==1.2.1) nor cached",
)


# ------------------------------------------------------------------ the data


@needs_data
def test_movielens_counts_and_checksum():
    path = movielens_path("inter")
    assert data.sha256_of(path) == (
        "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
    )
    with open(path, encoding="utf-8") as f:
        assert f.readline().split() == [
            "user_id:token", "item_id:token", "rating:float", "timestamp:float"
        ]  # fmt: skip
    ml = load_movielens()
    assert (ml.n_users, ml.n_items, ml.n_interactions) == (943, 1682, 100_000)
    assert sum(len(s) for s in ml.sequences) == 100_000
    assert min(len(s) for s in ml.sequences) == 20  # every ML-100K user rated at least 20
    assert ml.item_ids[:3] == ["1", "2", "3"] and ml.item_ids[-1] == "1682"
    assert ml.titles[0] == "<pad>" and ml.titles[1] == "Toy Story (1995)"
    assert all(len(set(s)) == len(s) for s in ml.sequences)  # a movie is rated once


@needs_data
def test_sequences_follow_the_timestamps_ties_by_item_id():
    rows = recommend._read_inter(movielens_path("inter"))
    ml = load_movielens()
    for user in ("1", "196", "943"):
        mine = sorted((t, int(i)) for u, i, t in rows if u == user)
        assert ml.sequences[ml.user_ids.index(user)] == [i for _, i in mine]


def test_build_sequences_orders_by_time_then_item_numerically():
    rows = [("2", "10", 5.0), ("2", "9", 5.0), ("10", "1", 1.0), ("2", "3", 1.0)]
    sequences, users, items = build_sequences(rows)
    assert users == ["2", "10"] and items == ["1", "3", "9", "10"]  # numeric, not text, order
    # user "2": item 3 at t=1, then items 9 and 10 at t=5 (tie: the smaller id first)
    assert sequences == [[2, 3, 4], [1]]


def _fake_files(tmp_path):
    inter = b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t1\t5\t10\n"
    item = b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    files = {"inter": ("ml-100k.inter", inter), "item": ("ml-100k.item", item)}
    shas = {}
    for kind, (name, body) in files.items():
        (tmp_path / name).write_bytes(body)
        shas[kind] = (name, data.sha256_of(tmp_path / name))
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, body in files.values():
            zf.writestr(f"recbole/{recommend.MOVIELENS_SUBDIR}/{name}", body)
    return shas, wheel.getvalue()


def test_files_are_read_out_of_the_checked_wheel(tmp_path, monkeypatch):
    shas, wheel = _fake_files(tmp_path)
    monkeypatch.setattr(recommend, "_recbole_dir", lambda: None)
    monkeypatch.setattr(recommend, "MOVIELENS_FILES", shas)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "cache"))
    served = {"bytes": b"not a wheel"}
    monkeypatch.setattr(data, "_fetch", lambda url, dest: dest.write(served["bytes"]))
    with pytest.raises(CorpusUnavailable, match="corrupted"):
        movielens_path("inter")
    assert not list((tmp_path / "cache").rglob("*.whl")), "a bad download must not be kept"
    served["bytes"] = wheel
    monkeypatch.setattr(recommend, "RECBOLE_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    path = movielens_path("inter")
    assert path == tmp_path / "cache" / "ml-100k" / "ml-100k.inter"
    assert data.sha256_of(path) == shas["inter"][1]
    assert (tmp_path / "cache" / "ml-100k" / "ml-100k.item").exists()
    assert not list((tmp_path / "cache").rglob("*.whl")), "the wheel is deleted after use"


def test_offline_error_names_the_pip_line(tmp_path, monkeypatch):
    monkeypatch.setattr(recommend, "_recbole_dir", lambda: None)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "cache"))

    def offline(url, dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(CorpusUnavailable) as info:
        movielens_path("inter")
    assert "pip install --no-deps recbole==1.2.1" in str(info.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    with pytest.raises(CorpusUnavailable, match="recbole==1.2.1"):
        movielens_path("item", download_if_missing=False)


def test_a_bad_cached_copy_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(recommend, "_recbole_dir", lambda: None)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "ml-100k.inter").write_text("edited\n")
    with pytest.raises(CorpusUnavailable, match="delete it"):
        movielens_path("inter")
    with pytest.raises(ValueError, match="kind"):
        movielens_path("ratings")


# ------------------------------------------------------------------ the split


def test_leave_one_out_rules():
    split = leave_one_out([[1, 2, 3, 4], [5, 1, 2]], n_items=5)
    assert split.train == [[1, 2], [5]]
    assert split.users == [0, 1]
    assert split.valid.tolist() == [3, 1] and split.test.tolist() == [4, 2]
    assert split.history("valid") == [[1, 2], [5]]
    assert split.history("test") == [[1, 2, 3], [5, 1]]  # the validation item is history now
    assert split.targets("test") is split.test
    with pytest.raises(ValueError, match="stage"):
        split.history("train")


@pytest.mark.parametrize("seq", [[7], [7, 8]])
def test_short_users_are_a_clear_error_by_default(seq):
    with pytest.raises(ValueError) as info:
        leave_one_out([[1, 2, 3], seq], n_items=9)
    message = str(info.value)
    assert "user 1" in message and f"{len(seq)} item" in message and "at least 3" in message


def test_short_users_can_train_without_being_evaluated():
    split = leave_one_out([[1, 2, 3], [7], []], n_items=9, short="train")
    assert split.users == [0] and split.train == [[1], [7], []]
    assert split.test.tolist() == [3]


def test_item_ids_outside_the_catalogue_are_refused():
    with pytest.raises(ValueError, match="0 is padding"):
        leave_one_out([[1, 0, 2]], n_items=3)
    with pytest.raises(ValueError, match="1 … 3"):
        leave_one_out([[1, 4, 2]], n_items=3)


# ------------------------------------------------------------------ the metric


def _brute(scores, target, k):
    hits = gains = 0.0
    for row, t in zip(scores.tolist(), target.tolist(), strict=True):
        rank = sum(1 for j, s in enumerate(row) if j != t and s >= row[t])
        if rank < k and row[t] != -math.inf:
            hits += 1
            gains += 1 / math.log2(rank + 2)
    return hits / len(scores), gains / len(scores)


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_metric_equals_brute_force(k):
    g = torch.Generator().manual_seed(k)
    scores = torch.randint(0, 6, (30, 40), generator=g).double()  # many ties
    scores[scores == 0] = -math.inf  # and excluded items
    target = torch.randint(0, 40, (30,), generator=g)
    hr, ndcg = hit_rate_and_ndcg(scores, target, k)
    want = _brute(scores, target, k)
    assert math.isclose(hr, want[0]) and math.isclose(ndcg, want[1], rel_tol=1e-12)


def test_metric_textbook_values():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
    hr, ndcg = hit_rate_and_ndcg(scores, torch.tensor([0, 1, 2]), k=2)
    assert hr == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((1 + 1 / math.log2(3)) / 3)
    # Constant scores: every other item ties with the target, so it ranks last (pessimistic).
    flat = torch.zeros(4, 100)
    assert hit_rate_and_ndcg(flat, torch.arange(4), k=10) == (0.0, 0.0)
    assert hit_rate_and_ndcg(flat, torch.arange(4), k=100)[0] == 1.0


@pytest.mark.parametrize(
    "scores, target, k, words",
    [
        (torch.zeros(2, 5), torch.tensor([0, 1]), 6, ("k = 6", "5")),
        (torch.zeros(2, 5), torch.tensor([0, 1]), 0, ("k = 0",)),
        (torch.zeros(2, 5), torch.tensor([0, 1, 2]), 3, ("(2,)",)),
        (torch.zeros(2, 5), torch.tensor([0.0, 1.0]), 3, ("integer",)),
        (torch.zeros(2, 5), torch.tensor([0, 5]), 3, ("outside",)),
        (torch.tensor([[0.0, math.nan]]), torch.tensor([0]), 1, ("NaN",)),
        (torch.zeros(5), torch.tensor([0]), 1, ("(B, n_items)",)),
    ],
)
def test_metric_bad_input_is_a_clear_value_error(scores, target, k, words):
    with pytest.raises(ValueError) as info:
        hit_rate_and_ndcg(scores, target, k)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_exclude_seen_masks_padding_and_history_on_a_copy():
    scores = torch.arange(12.0).reshape(2, 6)
    out = exclude_seen(scores, [[1, 3], [5]])
    assert torch.isinf(out[:, PAD]).all()
    assert torch.isinf(out[0, [1, 3]]).all() and torch.isinf(out[1, 5])
    assert torch.isfinite(out).sum() == 12 - 2 - 3
    assert torch.equal(scores, torch.arange(12.0).reshape(2, 6))  # the input is untouched


def test_bootstrap_interval_covers_the_mean_and_pairs():
    values = [1.0] * 30 + [0.0] * 70
    lo, hi = bootstrap_interval(values)
    assert lo < 0.3 < hi and hi - lo < 0.25
    assert bootstrap_interval(values, values) == (0.0, 0.0)


# ------------------------------------------------------------------ the baselines

TOY = [[1, 2, 3, 4], [1, 2, 3], [2, 3, 4, 1], [4, 2, 3]]


def test_popularity_and_most_popular_ranking():
    pop = popularity(TOY, 5)
    assert pop.tolist() == [0, 3, 4, 4, 3, 0]
    scores = most_popular_scores(TOY, 5, [[2], [4]])
    # equal counts are ordered by item id: 3 before 1 before 4 for user 0 (who saw 2)
    assert scores[0].argsort(descending=True)[:3].tolist() == [3, 1, 4]
    assert scores[1].argsort(descending=True)[:2].tolist() == [2, 3]
    assert len(set(scores[0, 1:].tolist()) - {-math.inf}) == 4  # no ties left


def test_cooccurrence_counts_by_window():
    c1 = cooccurrence_counts(TOY, 5, window=1)
    assert c1[2, 3] == 4 and c1[3, 4] == 2 and c1[1, 3] == 0 and c1.sum() == 10
    c2 = cooccurrence_counts(TOY, 5, window=2)
    assert c2[1, 3] == 2 and c2.sum() == 10 + 6
    scores = cooccurrence_scores(c1, popularity(TOY, 5), [[1, 2]])
    assert int(scores[0].argmax()) == 3  # 2 is followed by 3 four times
    with pytest.raises(ValueError, match="window"):
        cooccurrence_counts(TOY, 5, window=0)


@needs_data
def test_baselines_on_movielens_are_sane():
    ml = load_movielens()
    split = leave_one_out(ml.sequences, ml.n_items)
    hist = split.history("test")
    popular = evaluate_ranking(most_popular_scores(split.train, ml.n_items, hist), split.test)
    counts = cooccurrence_counts(split.train, ml.n_items, window=3)
    cooc = evaluate_ranking(
        cooccurrence_scores(counts, popularity(split.train, ml.n_items), hist), split.test
    )
    chance = 10 / (ml.n_items - 100)  # about 0.006: ten guesses among the unseen items
    assert 4 * chance < popular["hr"] < 0.15
    assert cooc["hr"] > popular["hr"] + 0.05  # the last item carries real information
    assert len(popular["hits"]) == 943 and sum(popular["hits"]) == round(popular["hr"] * 943)


# ------------------------------------------------------------------ the model


def test_item_gpt_is_chapter_6s_gpt_over_items():
    model = item_gpt(20, block_size=8, n_layer=1, n_head=2, n_embd=16)
    assert type(model) is GPT and model.config.vocab_size == 21
    assert model.head.weight is model.embed.tok.weight  # tied: one vector per item


def test_training_batch_pads_after_the_items_and_shifts_targets():
    train = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]]
    x, y = training_batch(train, 4, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 4)
    for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
        n = sum(v != PAD for v in yr)
        assert xr[n:] == [PAD] * (4 - n) and yr[n:] == [PAD] * (4 - n)
        assert xr[1:n] == yr[: n - 1]  # the target of position t is the input at t + 1
        assert 11 not in xr  # a user with one training item has no next-item target
    with pytest.raises(ValueError, match="2 training items"):
        training_batch([[1], []], 4, 2, torch.Generator())


def test_gpt_scores_read_the_last_real_position():
    torch.manual_seed(0)
    model = item_gpt(12, block_size=6, n_layer=1, n_head=2, n_embd=16, dropout=0.0).eval()
    history = [3, 1, 4, 1, 5]
    got = gpt_scores(model, [history, [2, 7, 1, 8, 2, 8, 1, 8]])
    with torch.no_grad():
        logits, _ = model(torch.tensor([history]))
        longer, _ = model(torch.tensor([[1, 8, 2, 8, 1, 8]]))  # the last block_size items
    torch.testing.assert_close(got[0], logits[0, -1].double())
    torch.testing.assert_close(got[1], longer[0, -1].double())
    with pytest.raises(ValueError, match="empty"):
        gpt_scores(model, [[]])


def test_loss_decreases_and_the_model_learns_a_rule():
    # Every user walks the catalogue in steps of one (from a random start): next = item + 1.
    g = torch.Generator().manual_seed(0)
    train = []
    for _ in range(64):
        start = int(torch.randint(1, 10, (1,), generator=g))
        train.append([(start + i - 1) % 30 + 1 for i in range(12)])
    torch.manual_seed(0)
    model = item_gpt(30, block_size=8, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
    x, y = training_batch(train, 8, 32, torch.Generator().manual_seed(1))
    before = next_item_loss(model, x, y).item()
    assert math.isclose(before, math.log(30), rel_tol=0.05)  # a fresh model: about uniform
    out = fit(model, train, steps=150, batch_size=32, lr=1e-2, warmup_steps=10, log_every=50)
    assert out["losses"][-1] < out["losses"][0] < before
    histories = [[5, 6, 7], [12, 13]]
    hr, _ = hit_rate_and_ndcg(gpt_scores(model, histories), torch.tensor([8, 14]), k=1)
    assert hr == 1.0


def test_fit_keeps_the_weights_chosen_on_validation():
    train = [[1, 2, 3, 4, 5]] * 8
    torch.manual_seed(0)
    model = item_gpt(5, block_size=4, n_layer=1, n_head=1, n_embd=8, dropout=0.0)
    seen = []

    def validate(m):  # best at the first evaluation, worse afterwards
        seen.append({n: t.clone() for n, t in m.state_dict().items()})
        return -len(seen)

    out = fit(model, train, steps=30, batch_size=4, log_every=10, validate=validate)
    assert out["valid"] == [-1, -2, -3] and out["best_step"] == 10
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, seen[0][name])
