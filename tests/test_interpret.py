"""Chapter 15's logit lens (lmkit.interpret): its last readout is the model's own logits, the
stream it reads is the one the blocks pass on, and on SmolLM2 the answer to a factual prompt
appears in the later layers (skipped where SmolLM2's file is not installed)."""

from __future__ import annotations

import pytest
import torch

from lmkit.interpret import lens_report, logit_lens
from lmkit.llama import Llama, LlamaConfig

pytestmark = pytest.mark.usefixtures("reference_solutions")


def test_the_last_readout_is_the_models_logits_and_the_first_the_embeddings():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=40, n_layer=3, d_model=32, n_head=4, n_kv_head=2, d_ff=48, block_size=16
    )
    model = Llama(config).eval()
    idx = torch.randint(40, (2, 6))
    lens = logit_lens(model, idx)
    assert lens.shape == (4, 2, 6, 40) and not lens.requires_grad
    torch.testing.assert_close(lens[-1], model(idx)[0])
    with torch.no_grad():
        torch.testing.assert_close(lens[0], model.head(model.norm(model.embed(idx))))


def test_smollm2_finds_paris_in_its_later_layers():
    from lmkit.data import CorpusUnavailable
    from lmkit.gguf import load_tokenizer, smollm2_path

    try:
        path = smollm2_path(download_if_missing=False)
    except CorpusUnavailable as err:
        pytest.skip(str(err))
    model = Llama.from_gguf(path, fast_attention=True)
    rows = lens_report(model, load_tokenizer(path), "The capital of France is", " Paris")
    assert len(rows) == model.config.n_layer + 1
    assert rows[-1][1] == " Paris" and rows[-1][3] == 0
    assert rows[0][3] > 100  # the embeddings alone do not know it
