"""Models built offline for the embedder tests: a tiny decoder-only (Llama-architecture) model
with seeded random weights, saved as a sentence-transformers folder with last-token pooling and
an instruction prompt; its tokenizer is the WordPiece tokenizer shipped with all-MiniLM-L6-v2."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTRUCTION = "Instruct: classify the topic of the text\nQuery: "


def build_tiny_decoder(root: Path, seed: int = 0, *, layers: int = 2, hidden: int = 64) -> Path:
    """``root/st`` (sentence-transformers folder: lasttoken pooling, a 'query' prompt) and
    ``root/hf`` (the plain transformers folder, no pooling defined). Deterministic in ``seed``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from workers.embedders import resolve_model
    from workers.specs import EmbedderSpec

    st_dir, hf_dir = root / "st", root / "hf"
    if (st_dir / "modules.json").is_file():
        return st_dir
    minilm = resolve_model(EmbedderSpec(name="m", model="all-MiniLM-L6-v2")).location
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaModel(config).eval()
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(hf_dir)
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
