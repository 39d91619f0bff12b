"""Models built offline for the embedder tests: a tiny decoder-only (Llama-architecture) model
with seeded random weights, saved as a sentence-transformers folder with last-token pooling and
an instruction prompt; its tokenizer is the WordPiece tokenizer shipped with all-MiniLM-L6-v2.

``build_decoder_folder`` is the mechanism underneath, for any decoder config: ``bench/gpu_check.py``
builds a Qwen2-7B-shaped one (``QWEN2_7B``) with it, in bfloat16 on the GPU."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTRUCTION = "Instruct: classify the topic of the text\nQuery: "


QWEN2_7B = {"num_hidden_layers": 28, "hidden_size": 3584, "intermediate_size": 18944,
            "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1e6}
"""The shape of Qwen2-7B (e.g. gte-Qwen2-7B-instruct's backbone), for ``qwen2_config``."""


def minilm_tokenizer():
    """The WordPiece tokenizer shipped with all-MiniLM-L6-v2 (offline), padding on the left."""
    from transformers import AutoTokenizer

    from workers.embedders import resolve_model
    from workers.specs import EmbedderSpec

    minilm = resolve_model(EmbedderSpec(name="m", model="all-MiniLM-L6-v2")).location
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    tokenizer.padding_side = "left"
    return tokenizer


def qwen2_config(tokenizer, **shape):
    """A Qwen2 config: ``QWEN2_7B`` with ``shape`` overriding it; a vocabulary at least the
    tokenizer's, its pad token, no cache, sdpa attention."""
    from transformers import Qwen2Config

    values = {**QWEN2_7B, **shape}
    values["vocab_size"] = max(values["vocab_size"], tokenizer.vocab_size)
    return Qwen2Config(**values, pad_token_id=tokenizer.pad_token_id, use_cache=False,
                       tie_word_embeddings=False, attn_implementation="sdpa")


def build_decoder_folder(hf_dir: Path, config, tokenizer, seed: int = 0, *, device: str = "cpu",
                         dtype=None) -> Path:
    """A plain transformers folder (no pooling defined) of the decoder ``config`` with seeded
    random weights, built on ``device`` in ``dtype`` (None: float32) and saved with
    ``tokenizer``. Deterministic in ``seed`` (on one device)."""
    import torch
    from transformers import AutoModel

    if (hf_dir / "config.json").is_file():
        return hf_dir
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModel.from_config(config, dtype=dtype or torch.float32).eval()
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    del model
    return hf_dir


def build_tiny_decoder(root: Path, seed: int = 0, *, layers: int = 2, hidden: int = 64) -> Path:
    """``root/st`` (sentence-transformers folder: lasttoken pooling, a 'query' prompt) and
    ``root/hf`` (the plain transformers folder, no pooling defined). Deterministic in ``seed``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import LlamaConfig

    st_dir, hf_dir = root / "st", root / "hf"
    if (st_dir / "modules.json").is_file():
        return st_dir
    tokenizer = minilm_tokenizer()
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
    )
    build_decoder_folder(hf_dir, config, tokenizer, seed)
    transformer = Transformer(str(hf_dir), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    st = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu",
                             prompts={"query": INSTRUCTION})
    st.save(str(st_dir))
    return st_dir


def manual_last_token(hf_dir: Path, texts: list[str], prompt: str):
    """The reference: plain transformers, left padding, hidden state of the last token, L2-norm."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir, padding_side="left")
    model = AutoModel.from_pretrained(hf_dir, dtype=torch.float32).eval()
    batch = tokenizer([prompt + t for t in texts], padding=True, truncation=True, max_length=128,
                      return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state[:, -1]
    x = hidden.numpy().astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
